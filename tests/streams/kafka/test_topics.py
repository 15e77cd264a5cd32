"""The topics the stream creates, on the real local broker: their configs, what a cluster
cannot hold, and the names of the state changelogs."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.errors import StreamError
from streams.kafka.topics import TOPICS, changelog_prefix, ensure_topics
from streams.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.kafka


def settings_for(kafka_broker, **kw) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    return Settings(kafka_bootstrap=kafka_broker.bootstrap, topic_prefix=prefix, **kw)


async def _admin(bootstrap: str, work):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await work(admin)
    finally:
        await admin.close()


def configs_of(bootstrap: str, topic: str) -> dict[str, str]:
    async def work(admin):
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [(_, _, _, _, entries)] = response.resources
        return {name: value for name, value, *_ in entries}

    return asyncio.run(_admin(bootstrap, work))


def test_items_are_compacted_and_min_insync_replicas_is_set_on_every_topic(kafka_broker) -> None:
    settings = settings_for(kafka_broker, topic_min_insync_replicas=1)
    created = ensure_topics(settings)
    assert created == [settings.topic(t) for t in TOPICS]
    items = configs_of(kafka_broker.bootstrap, settings.topic("items"))
    assert items["cleanup.policy"] == "compact"  # the latest text of each item, forever
    clicks = configs_of(kafka_broker.bootstrap, settings.topic("clicks"))
    assert clicks["cleanup.policy"] == "delete"
    assert clicks["min.insync.replicas"] == items["min.insync.replicas"] == "1"
    examples = configs_of(kafka_broker.bootstrap, settings.topic("examples"))
    assert examples["retention.ms"] == str(90 * 86_400_000)
    assert ensure_topics(settings) == []  # existing topics are left alone


def test_more_replicas_than_brokers_is_a_clear_error_naming_the_setting(kafka_broker) -> None:
    settings = settings_for(kafka_broker, topic_replication=3)
    with pytest.raises(StreamError, match="INTEREST_TOPIC_REPLICATION") as err:
        ensure_topics(settings)
    assert settings.topic("clicks") in str(err.value)
    assert "3 replicas" in str(err.value)


def test_min_insync_above_the_replicas_is_refused_by_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTEREST_TOPIC_REPLICATION", "2")
    monkeypatch.setenv("INTEREST_TOPIC_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(SettingsError, match="INTEREST_TOPIC_MIN_INSYNC_REPLICAS"):
        load_settings()


def test_the_state_changelog_goes_behind_the_prefix_unless_an_unprefixed_one_holds_the_states(
    kafka_broker,
) -> None:
    settings = settings_for(kafka_broker, consumer_group=f"g{uuid.uuid4().hex[:8]}")
    assert changelog_prefix(Settings(topic_prefix="")) == ""  # no prefix: no broker asked
    assert changelog_prefix(settings) == settings.topic_prefix  # a fresh deployment

    legacy = f"{settings.consumer_group}-user-state-0123456789ab-changelog"

    async def make(admin):
        await admin.create_topics([NewTopic(legacy, 1, 1)])

    asyncio.run(_admin(kafka_broker.bootstrap, make))
    assert changelog_prefix(settings) == ""  # an older release's states: restored from there
