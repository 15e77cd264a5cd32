"""The private worker subprocess of bench e2e and eval --through-pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.errors import StreamError
from streams.settings import Settings
from streams.worker.spawn import SpawnedWorker, private_settings, worker_env


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


def test_a_sigterm_to_the_parent_stops_the_spawned_worker_too(tmp_path: Path) -> None:
    """The worker runs in a session of its own (the terminal's Ctrl-C does not reach it), so
    the parent must stop it on the way out: after SIGTERM too, not only after Ctrl-C."""
    import os
    import signal
    import time

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from streams.settings import Settings\n"
            "from streams.worker.spawn import spawned_worker\n"
            "with spawned_worker(Settings(), Path(sys.argv[1]), Path(sys.argv[1]),\n"
            "                    module='tests.streams.worker.sleeper') as worker:\n"
            "    print(worker.process.pid, flush=True)\n"
            "    time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(Path.cwd())},
    )
    assert parent.stdout is not None
    with parent.stdout:
        child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return  # stopped, and reaped by the parent
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the spawned worker outlived its parent")
