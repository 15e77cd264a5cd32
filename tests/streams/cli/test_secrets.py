"""Secrets (the Qdrant API key, the Kafka SASL password) never reach logs or printed output,
on the paths where a connection fails and an error names what failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.settings import Settings
from tests.streams.kafka_helpers import free_port

QDRANT_KEY = "qdrant-key-5f1e0c7b9a"
SASL_PASSWORD = "sasl-password-8d2c4e6a1b"


def secret_env(bootstrap: str, tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_")}
    return base | {
        "INTEREST_KAFKA_BOOTSTRAP": bootstrap,
        "INTEREST_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "INTEREST_KAFKA_SASL_MECHANISM": "PLAIN",
        "INTEREST_KAFKA_SASL_USERNAME": "someone",
        "INTEREST_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "INTEREST_QDRANT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
        "INTEREST_QDRANT_API_KEY": QDRANT_KEY,
        "INTEREST_MODEL_DIR": str(tiny_model_dir),
        "INTEREST_DATA_DIR": str(tmp_path / "data"),
        "INTEREST_METRICS_PORT": str(free_port()),
        "INTEREST_LOG_LEVEL": "debug",
        "INTEREST_TOPIC_PREFIX": "secrets.",
    }


def assert_no_secret(text: str) -> None:
    assert QDRANT_KEY not in text
    assert SASL_PASSWORD not in text


def test_settings_never_show_secrets() -> None:
    s = Settings(
        qdrant_api_key=SecretStr(QDRANT_KEY),
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="someone",
        kafka_sasl_password=SecretStr(SASL_PASSWORD),
    )
    assert_no_secret(repr(s) + str(s) + str(s.model_dump()) + s.model_dump_json())


@pytest.mark.kafka
@pytest.mark.slow
def test_failing_connections_log_no_secret(kafka_broker, tiny_model_dir: Path, tmp_path: Path):
    """SASL against a plaintext broker and a Qdrant that is not there: the worker logs its
    failures at debug level, the one-shot commands print theirs; no secret in any of it."""
    env = secret_env(kafka_broker.bootstrap, tmp_path, tiny_model_dir)
    outputs = []
    for args in (["topics", "--json"], ["recommend", "1", "--json"], ["switch", "v1"]):
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0, args  # each fails: it cannot connect
        outputs.append(done.stdout + done.stderr)
    log = tmp_path / "worker.log"
    with log.open("wb") as fh:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env | {"INTEREST_LOG_FORMAT": "json"},
            cwd=tmp_path,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        time.sleep(20)  # connection attempts, retries, their log lines
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    outputs.append(log.read_text(errors="replace"))
    assert any("qdrant" in o.lower() or "kafka" in o.lower() for o in outputs)
    for text in outputs:
        assert_no_secret(text)


def test_each_security_protocol_gives_the_worker_its_credentials() -> None:
    import faust

    from streams.kafka.client import broker_credentials

    assert broker_credentials(Settings()) is None
    tls = broker_credentials(Settings(kafka_security_protocol="SSL"))
    assert isinstance(tls, faust.SSLCredentials) and tls.context is not None
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        sasl = broker_credentials(
            Settings(
                kafka_security_protocol=protocol,
                kafka_sasl_mechanism="SCRAM-SHA-512",
                kafka_sasl_username="someone",
                kafka_sasl_password=SecretStr(SASL_PASSWORD),
            )
        )
        assert isinstance(sasl, faust.SASLCredentials)
        assert sasl.mechanism.value == "SCRAM-SHA-512" and sasl.password == SASL_PASSWORD
        assert (sasl.ssl_context is not None) == (protocol == "SASL_SSL")


@pytest.mark.parametrize(
    "options",
    [
        {"kafka_security_protocol": "SASL_SSL"},  # SASL without a mechanism
        {"kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "u"},  # a mechanism, no SASL
    ],
)
def test_sasl_settings_must_agree(options: dict) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="SASL_PLAINTEXT or SASL_SSL"):
        Settings(**options)
