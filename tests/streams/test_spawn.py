"""The private worker subprocess of bench e2e and eval --through-pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.errors import StreamError
from streams.settings import Settings
from streams.spawn import SpawnedWorker, private_settings, worker_env


def test_every_setting_reaches_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        half_life_short_s=3600,
        window_ms=100,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password=SecretStr("p"),
        data_dir=Path("relative"),
    )
    env = worker_env(settings)
    assert env["INTEREST_KAFKA_SASL_PASSWORD"] == "p"  # the value, not "**********"
    assert Path(env["INTEREST_DATA_DIR"]).is_absolute()
    assert "INTEREST_QDRANT_URL" not in env  # None: left to the default
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    again = Settings()
    assert (
        again.model_dump()
        == settings.model_copy(update={"data_dir": Path("relative").absolute()}).model_dump()
    )


def test_a_dead_worker_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as fh:
        process = subprocess.Popen(
            [sys.executable, "-c", "print('cannot load the model'); raise SystemExit(3)"],
            stdout=fh,
        )
        process.wait()
    worker = SpawnedWorker(process, log, tmp_path / "q", tmp_path / "s.json")
    with pytest.raises(StreamError, match=r"(?s)exited with code 3.*cannot load the model"):
        worker.check()


def test_without_a_broker_it_says_how_to_start_one() -> None:
    with pytest.raises(StreamError, match=r"no Kafka broker at 127\.0\.0\.1:9 .*kafka start"):
        private_settings(Settings(kafka_bootstrap="127.0.0.1:9"), "x")


@pytest.mark.kafka
def test_the_bench_baseline_worker_consumes_and_commits_every_event(
    kafka_broker, tmp_path: Path
) -> None:
    """bench e2e's ceiling: the same Faust app and windows, every record acknowledged."""
    from streams.bench_e2e import _ceiling

    settings = Settings(kafka_bootstrap=kafka_broker.bootstrap, window_ms=50)
    per_s = _ceiling(settings, tmp_path, events=300, users=20, items=10, progress=False)
    assert per_s > 0  # _ceiling returns only once the group has committed all 300
    assert "Traceback" not in (tmp_path / "worker.log").read_text(errors="replace")
