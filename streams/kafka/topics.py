"""Creating the pipeline's topics before the worker subscribes (the compose topic-init step).

created = ensure_topics(settings)    # names it created; existing topics are left alone
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import StreamError
from streams.kafka.client import kafka_security
from streams.settings import Settings, load_settings

EVENT_TOPICS = ("clicks", "views", "reviews")  # read together by the events agent
TOPICS = (*EVENT_TOPICS, "items", "feedback", "dlq", "examples", "parked")
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


if __name__ == "__main__":
    created = ensure_topics(load_settings())
    print("created", created or "nothing (all topics exist)")
