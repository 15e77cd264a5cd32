"""The local KRaft broker manager, against the real broker."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import pytest

from streams.kafka import broker as broker_module
from streams.kafka.broker import BrokerError, LocalBroker

pytestmark = pytest.mark.kafka


def test_start_is_idempotent_and_the_broker_round_trips_a_record(kafka_broker) -> None:
    first = kafka_broker.status()
    again = kafka_broker.start()
    assert first["running"] and again["pid"] == first["pid"]

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"smoke-{uuid.uuid4().hex[:8]}"

    async def main() -> bytes:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"hello", key=b"u1")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_broker.bootstrap,
            auto_offset_reset="earliest",
            group_id=topic,
        )
        await consumer.start()
        try:
            return (await asyncio.wait_for(consumer.getone(), 30)).value
        finally:
            await consumer.stop()

    assert asyncio.run(main()) == b"hello"


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_module.shutil, "which", lambda tool: None)
    with pytest.raises(BrokerError, match="`java` not found"):
        LocalBroker(tmp_path, port=_free_port()).start()


def test_missing_maven_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = broker_module.shutil.which
    monkeypatch.setattr(
        broker_module.shutil, "which", lambda tool: None if tool == "mvn" else real(tool)
    )
    with pytest.raises(BrokerError, match="`mvn` not found"):
        LocalBroker(tmp_path, port=_free_port()).fetch()


def test_a_taken_port_is_refused(kafka_broker, tmp_path: Path) -> None:
    other = LocalBroker(tmp_path, port=_free_port())
    other.libs.parent.mkdir(parents=True)
    other.libs.symlink_to(kafka_broker.libs)  # reuse the jars: no second download
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", other.port))
        squatter.listen()
        with pytest.raises(BrokerError, match="taken"):
            other.start()
    assert not other.status()["running"]


def test_a_cluster_id_starting_with_a_dash_formats(
    kafka_broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # base64url of a UUID whose first byte is 0xf8 starts with "-": not an option.
    monkeypatch.setattr(broker_module.uuid, "uuid4", lambda: uuid.UUID(bytes=b"\xf8" + b"\0" * 15))
    other = LocalBroker(tmp_path, port=_free_port())
    other.libs.parent.mkdir(parents=True)
    other.libs.symlink_to(kafka_broker.libs)
    other._write_config()
    other._format(broker_module.shutil.which("java") or "java")
    assert "cluster.id=-" in (other.data / "meta.properties").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
