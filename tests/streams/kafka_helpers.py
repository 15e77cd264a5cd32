"""Helpers for tests against the real broker: produce, wait for commits, run a worker."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.kafka.client import kafka_security
from streams.kafka.groups import wait_caught_up
from streams.settings import Settings


def produce(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | dict, bytes | None]],
    settings: Settings | None = None,
) -> None:
    """Send (topic, value, key) in order and wait until the broker has them all.
    ``settings``: the SASL / TLS options to connect with (default: plaintext)."""
    security = kafka_security(settings) if settings is not None else {}

    async def main() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            max_request_size=16 * 1024 * 1024,
            **security,
        )
        await producer.start()
        try:
            for topic, value, key in records:
                raw = value if isinstance(value, bytes) else orjson.dumps(value)
                await producer.send(topic, raw, key=key)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(main())


def wait_committed(bootstrap: str, group: str, topics: list[str], timeout: float = 90) -> None:
    """Block until the group has committed every record of ``topics``."""
    wait_caught_up(Settings(kafka_bootstrap=bootstrap), group, topics, timeout)


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list:
    async def main() -> list:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        out: list = []
        try:
            deadline = time.monotonic() + timeout
            while len(out) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000)
                for msgs in batch.values():
                    out.extend(msgs)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(main())


class WorkerProcess:
    """``interest-stream worker`` in a subprocess, with its own environment and log file."""

    def __init__(self, env: dict[str, str], log: Path, module: str = "streams.cli") -> None:
        self.env = env
        self.log = log
        self.module = module  # tests.streams.faulty_store: the worker with injected faults
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_url = ""  # set by fixtures that give the worker a metrics port

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "worker", "--loglevel", "info"],
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def free_port() -> int:
    """A TCP port nothing listens on right now (for a worker's metrics endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def topic_names(bootstrap: str) -> list[str]:
    """Every topic on the broker."""

    async def main() -> list[str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            return sorted(await consumer.topics())
        finally:
            await consumer.stop()

    return asyncio.run(main())


def partitions(
    bootstrap: str, topics: list[str], settings: Settings | None = None
) -> dict[str, int]:
    """How many partitions each topic has (``settings``: the login, if the broker wants one)."""

    async def main() -> dict[str, int]:
        security = kafka_security(settings) if settings is not None else {}
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **security)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            return {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
        finally:
            await consumer.stop()

    return asyncio.run(main())
