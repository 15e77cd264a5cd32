"""Creating the pipeline's topics before the worker subscribes (the compose topic-init step).

created = ensure_topics(settings)    # names it created; existing topics are left alone
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import StreamError
from streams.kafka.client import LoggedErrors, kafka_security, unreachable
from streams.settings import Settings, load_settings

log = logging.getLogger(__name__)

EVENT_TOPICS = ("clicks", "views", "reviews", "forget")  # read together by the events agent
TOPICS = (*EVENT_TOPICS, "items", "feedback", "dlq", "examples", "parked")
TOPIC_CONFIGS = {
    # Training examples (the feedback agent's output): durable, and bounded by age and size.
    "examples": {"retention.ms": str(90 * 86_400_000), "retention.bytes": str(1 << 30)},
    # The catalogue: the latest text of each item (keyed by item_id), kept forever, since a
    # roll-out re-encodes every item from this topic.
    "items": {"cleanup.policy": "compact"},
}


def topic_configs(settings: Settings, kind: str) -> dict[str, str]:
    """The configs a topic of this kind is created with (min.insync.replicas included)."""
    configs = dict(TOPIC_CONFIGS.get(kind, {}))
    if settings.topic_min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    return configs


def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics (``INTEREST_TOPIC_PARTITIONS``, ``_REPLICATION``,
    ``_MIN_INSYNC_REPLICAS``); a one-line StreamError when no broker answers or the
    cluster cannot hold them."""
    with LoggedErrors() as logged:
        try:
            return asyncio.run(_ensure(settings))
        except (KafkaError, OSError) as exc:
            raise unreachable(settings, exc, logged.text) from exc


async def _ensure(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **kafka_security(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [kind for kind in TOPICS if settings.topic(kind) not in existing]
        if missing:
            new = [
                NewTopic(
                    settings.topic(kind),
                    num_partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replication,
                    topic_configs=topic_configs(settings, kind),
                )
                for kind in missing
            ]
            response = await admin.create_topics(new)
            refused = {
                topic: f"{message or 'no reason given'} (Kafka error {code})"
                for topic, code, *rest in response.topic_errors
                for message in [rest[0] if rest else None]
                if code not in (0, TopicAlreadyExistsError.errno)  # another worker won a race
            }
            if refused:
                raise StreamError(
                    f"the broker refused to create topics with {settings.topic_partitions} "
                    f"partitions and {settings.topic_replication} replicas "
                    "(INTEREST_TOPIC_PARTITIONS, INTEREST_TOPIC_REPLICATION, "
                    f"INTEREST_TOPIC_MIN_INSYNC_REPLICAS): "
                    + "; ".join(f"{t}: {why}" for t, why in sorted(refused.items()))
                )
            missing = [settings.topic(kind) for kind in missing]
            await _until_led(settings, missing)
        return missing
    finally:
        await admin.close()


def changelog_prefix(settings: Settings) -> str:
    """The prefix of this deployment's state changelog topics: the topic prefix, unless the
    cluster holds this consumer group's changelogs from a release that did not prefix them,
    and none with the prefix; then none, so that the states restore from those (with a
    warning: a roll-out to a new version moves them behind the prefix)."""
    if not settings.topic_prefix:
        return ""
    try:
        names = asyncio.run(_names(settings))
    except (KafkaError, OSError) as exc:
        raise StreamError(
            f"no Kafka broker at {settings.kafka_bootstrap} ({exc.__class__.__name__}: {exc})"
        ) from exc
    ours = f"{settings.consumer_group}-user-state-"
    if any(n.startswith(settings.topic_prefix + ours) for n in names):
        return settings.topic_prefix
    unprefixed = sorted(n for n in names if n.startswith(ours) and n.endswith("-changelog"))
    if unprefixed:
        log.warning(
            "state changelogs without the topic prefix %r found (%s): restoring from them; "
            "a roll-out to a new model version writes its changelog behind the prefix",
            settings.topic_prefix,
            ", ".join(unprefixed),
        )
        return ""
    return settings.topic_prefix


async def _names(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **kafka_security(settings)
    )
    await admin.start()
    try:
        return list(await admin.list_topics())
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
