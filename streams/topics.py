"""Creating the pipeline's topics before the worker subscribes (the compose topic-init step).

created = ensure_topics(settings)    # names it created; existing topics are left alone
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import StreamError
from streams.settings import Settings

EVENT_TOPICS = ("clicks", "views", "reviews")  # read together by the events agent
TOPICS = (*EVENT_TOPICS, "items", "feedback", "dlq", "examples")
# Training examples (the feedback agent's output): durable, and bounded by age and size.
TOPIC_CONFIGS = {
    "examples": {"retention.ms": str(90 * 86_400_000), "retention.bytes": str(1 << 30)},
}


def ensure_topics(settings: Settings, replication: int = 1) -> list[str]:
    """Create the missing topics; a one-line StreamError when no broker answers."""
    try:
        return asyncio.run(_ensure(settings, replication))
    except (KafkaError, OSError) as exc:
        raise StreamError(
            f"no Kafka broker at {settings.kafka_bootstrap} ({exc.__class__.__name__}: {exc}); "
            "start one with `interest-stream kafka start`"
        ) from exc


async def _ensure(settings: Settings, replication: int) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **kafka_security(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic(t) for t in TOPICS]
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                await admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=settings.topic_partitions,
                            replication_factor=replication,
                            topic_configs=TOPIC_CONFIGS.get(
                                t.removeprefix(settings.topic_prefix), {}
                            ),
                        )
                        for t in missing
                    ]
                )
            await _until_led(settings, missing)
        return missing
    finally:
        await admin.close()


async def _until_led(settings: Settings, topics: list[str], timeout: float = 30.0) -> None:
    """Wait until the broker leads every partition of freshly created ``topics``.

    A broker answers create_topics before it has become the partitions' leader; a producer
    started in that moment logs "not found in cluster metadata" and NotLeaderForPartition
    until it has. Listing the partitions' end offsets succeeds only once they are led.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, **kafka_security(settings)
    )
    await consumer.start()
    deadline = time.monotonic() + timeout
    try:
        while True:
            await consumer._client.force_metadata_update()
            parts = [
                TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
            ]
            if all(consumer.partitions_for_topic(t) for t in topics):
                try:
                    await asyncio.wait_for(consumer.end_offsets(parts), timeout=5.0)
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
            elif time.monotonic() > deadline:
                raise TimeoutError(f"topics {topics} have no leader after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the CA file if given, else the system's)."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return create_ssl_context(cafile=cafile)


def kafka_security(settings: Settings) -> dict[str, object]:
    """aiokafka keyword arguments for the configured SASL / TLS options."""
    options: dict[str, object] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


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


if __name__ == "__main__":
    created = ensure_topics(Settings())
    print("created", created or "nothing (all topics exist)")
