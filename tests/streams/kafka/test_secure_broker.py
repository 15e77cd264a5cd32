"""The worker and the commands against a broker that wants SASL/SCRAM over TLS.

A second local broker (the same jars) gets a SASL_SSL listener with a self-signed key and one
SCRAM-SHA-256 user; clients reach it only through the security settings (README: Security).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.kafka.broker import LocalBroker, SecureListener, make_keystore
from streams.kafka.groups import wait_caught_up
from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.store import open_store
from tests.streams.kafka_helpers import WorkerProcess, free_port, produce
from tests.streams.worker.test_worker import click, item_records

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USER, PASSWORD = "alice", "scram-secret-3b9d71"
KEYSTORE_PASSWORD = "keystore-secret-c42e"


def _two_free_ports() -> int:
    """A port p with p + 1 free too (the controller's)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def secure_broker(kafka_broker, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("secure-kafka")
    (home / "libs").symlink_to(kafka_broker.libs.parent)  # the jars the main broker fetched
    keystore, cafile = make_keystore(home / "tls", KEYSTORE_PASSWORD)
    listener = SecureListener(free_port(), keystore, KEYSTORE_PASSWORD, {USER: PASSWORD})
    broker = LocalBroker(home, port=_two_free_ports(), heap="384m", secure=listener)
    broker.start()
    yield broker, cafile
    broker.stop()


def secure_settings(broker: LocalBroker, cafile: Path, password: str = PASSWORD, **kw) -> Settings:
    return Settings(
        kafka_bootstrap=broker.secure_bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(password),
        kafka_ssl_cafile=cafile,
        **kw,
    )


def secure_env(settings: Settings, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_")}
    password = settings.kafka_sasl_password
    assert password is not None
    return (
        base
        | {
            "INTEREST_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "INTEREST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "INTEREST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "INTEREST_KAFKA_SASL_USERNAME": USER,
            "INTEREST_KAFKA_SASL_PASSWORD": password.get_secret_value(),
            "INTEREST_KAFKA_SSL_CAFILE": str(settings.kafka_ssl_cafile),
            "INTEREST_TOPIC_PREFIX": settings.topic_prefix,
        }
        | extra
    )


def test_the_worker_runs_through_sasl_scram_over_tls(
    secure_broker, tiny_model_dir: Path, tmp_path: Path
) -> None:
    broker, cafile = secure_broker
    prefix = f"s{uuid.uuid4().hex[:8]}."
    settings = secure_settings(broker, cafile, topic_prefix=prefix)
    ensure_topics(settings)
    env = secure_env(
        settings,
        INTEREST_MODEL_DIR=str(tiny_model_dir),
        INTEREST_DATA_DIR=str(tmp_path / "data"),
        INTEREST_CONSUMER_GROUP=f"g-{prefix}",
        INTEREST_WINDOW_MS="100",
        INTEREST_ENCODER_PROVIDER="cpu",
        INTEREST_METRICS_PORT=str(free_port()),
        INTEREST_LOG_FORMAT="json",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        items = item_records(prefix, 3)
        clicks = [click(prefix, f"e{k}", "u1", k % 3, 1.6e9 + k) for k in range(5)]
        produce(broker.secure_bootstrap, items, settings)
        wait_caught_up(settings, f"g-{prefix}", [f"{prefix}items"], timeout=120)
        produce(broker.secure_bootstrap, clicks, settings)
        wait_caught_up(settings, f"g-{prefix}", [f"{prefix}clicks"], timeout=120)
    finally:
        worker.stop()
    data = Settings(data_dir=tmp_path / "data")
    store = open_store(path=data.qdrant_location, backend=data.qdrant_backend)
    try:
        user = store.user("u1")
        assert user is not None and user.payload["event_count"] == 5
    finally:
        store.close()
    log = (tmp_path / "worker.log").read_text()
    assert PASSWORD not in log and KEYSTORE_PASSWORD not in log


def test_a_wrong_password_or_no_tls_is_a_clear_error_without_the_secret(
    secure_broker, tmp_path: Path
) -> None:
    broker, cafile = secure_broker
    wrong = "not-the-password-77a1"
    cases = {
        "wrong password": secure_env(secure_settings(broker, cafile, password=wrong)),
        "plaintext client": {
            k: v
            for k, v in secure_env(secure_settings(broker, cafile)).items()
            if not k.startswith("INTEREST_KAFKA_S")
        },
    }
    cases["missing CA file"] = secure_env(secure_settings(broker, tmp_path / "no-such-ca.pem"))
    expected = {
        "wrong password": "refused the login",
        "plaintext client": "no Kafka broker at",
        "missing CA file": "no-such-ca.pem: no such file",
    }
    for label, env in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "streams.cli", "topics", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        out = done.stdout + done.stderr
        assert done.returncode != 0, label
        assert "error" in out.lower() and "Traceback" not in out, (label, out)
        assert wrong not in out and PASSWORD not in out, label
        assert expected[label] in out, (label, out)
