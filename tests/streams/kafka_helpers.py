"""Helpers for tests against the real broker: produce, wait for commits, run a worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


def produce(bootstrap: str, records: Iterable[tuple[str, bytes | dict, bytes]]) -> None:
    """Send (topic, value, key) in order and wait until the broker has them all."""

    async def main() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024
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

    async def lagging() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await consumer.start()
        await admin.start()
        try:
            parts = [
                TopicPartition(t, p)
                for t in topics
                for p in (consumer.partitions_for_topic(t) or await _parts(consumer, t))
            ]
            if not parts:
                return -1  # the topics are not there yet
            ends = await consumer.end_offsets(parts)
            committed = await admin.list_consumer_group_offsets(group)
            return sum(
                max(0, ends[tp] - (committed[tp].offset if tp in committed else 0)) for tp in parts
            )
        finally:
            await consumer.stop()
            await admin.close()

    deadline = time.monotonic() + timeout
    left = -1
    while time.monotonic() < deadline:
        left = asyncio.run(lagging())
        if left == 0:
            return
        # left < 0: topics unknown yet; left > 0: records still to commit
        time.sleep(1)
    raise TimeoutError(f"group {group} still has {left} records to commit")


async def _parts(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # metadata of new topics
    return consumer.partitions_for_topic(topic) or set()


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

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
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
