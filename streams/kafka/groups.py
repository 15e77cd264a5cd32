"""Consumer groups: their committed offsets, their lag, and waiting until one caught up.

lag = asyncio.run(group_lag(settings, "interest-stream", ["clicks", "views"]))
wait_caught_up(settings, group, topics, timeout=120, check=worker.check)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.kafka.client import kafka_security
from streams.settings import Settings


def wait_caught_up(
    settings: Settings,
    group: str,
    topics: list[str],
    timeout: float,
    check: Callable[[], None] | None = None,
) -> None:
    """Block until ``group`` has committed every record of ``topics`` (full names).

    ``check`` is called between polls and may raise to give up early (a worker died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check is not None:
            check()
        try:
            if asyncio.run(group_lag(settings, group, topics)) == 0:
                return
        except KafkaError as exc:
            if not exc.retriable:  # e.g. the group coordinator of a new broker is not up yet
                raise
        time.sleep(0.2)
    raise TimeoutError(f"group {group} did not catch up within {timeout:.0f} s")


async def group_lag(settings: Settings, group: str, topics: list[str]) -> int:
    """Records not yet committed by ``group``; -1 while the topics are unknown."""
    progress = await group_progress(settings, group, topics)
    return -1 if progress is None else progress[1] - progress[0]


async def group_progress(
    settings: Settings, group: str, topics: list[str]
) -> tuple[int, int] | None:
    """(records committed by ``group``, records in ``topics``), summed over partitions;
    None while the topics are unknown."""
    offsets = await group_offsets(settings, group, topics)
    if not offsets:
        return None
    return sum(c for c, _ in offsets.values()), sum(e for _, e in offsets.values())


async def group_offsets(
    settings: Settings, group: str, topics: list[str]
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition of ``topics``: (offset committed by ``group``, 0 if none; end offset).
    Empty while the topics are unknown."""
    security = kafka_security(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **security)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **security)
    await consumer.start()
    await admin.start()
    try:
        await consumer._client.force_metadata_update()  # see topics made after start
        parts = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        if not parts:
            return {}
        ends = await consumer.end_offsets(parts)
        done = await admin.list_consumer_group_offsets(group)
        return {
            tp: (min(ends[tp], max(0, done[tp].offset)) if tp in done else 0, ends[tp])
            for tp in parts
        }
    finally:
        await consumer.stop()
        await admin.close()
