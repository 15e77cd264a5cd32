"""User state in Faust tables: one table per model version, changelogged to Kafka.

    table = state_table(app, version, partitions=4)     # "user-state-<version>"
    # changelog topic: "<topic prefix><consumer group>-user-state-<version>-changelog"
    states = TableStates(table)                         # user_id -> state bytes
    await table.delivered()                             # before a window is acknowledged

The state's sums are made of one model's vectors, so each version has its own table: a
worker started on another version never folds new vectors into sums of the old one. The
table is keyed by the user id's UTF-8 bytes and partitioned by the same partitioner as the
event topics, so each user's state lives in the partition of its events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.stores.rocksdb import Store as RocksDBStore
from yarl import URL


class StateTable(faust.Table):
    """A Faust table that remembers its changelog records until the broker has them.

    Faust commits offsets after flushing its producer buffer, but that flush gives up after
    0.1 s without a delivery (faust ``ProducerBuffer.flush_atmost``): under load a commit
    can overtake the changelog record of the state it covers, and a crash then loses that
    state. The agents therefore wait for :meth:`delivered` before they acknowledge a window.
    """

    def __init__(self, *args: Any, topic_prefix: str = "", **kwargs: Any) -> None:
        self.topic_prefix = topic_prefix  # before Faust names the changelog topic
        super().__init__(*args, **kwargs)
        self.in_flight: list[asyncio.Future[Any]] = []

    def _new_store_by_url(self, url: str | URL) -> Any:
        if URL(url).scheme != "rocksdb":
            return super()._new_store_by_url(url)
        return KeyedRocksDBStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )

    def _changelog_topic_name(self) -> str:
        """Faust's name (``<app id>-<table>-changelog``) behind the stream's topic prefix,
        so that two deployments on one cluster never share a changelog."""
        return self.topic_prefix + super()._changelog_topic_name()

    def info(self) -> dict[str, Any]:  # what Faust's clone() passes back to __init__
        return {**super().info(), "topic_prefix": self.topic_prefix}

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        fut = super().send_changelog(*args, **kwargs)
        self.in_flight.append(fut)
        return fut

    async def delivered(self) -> None:
        """Wait until every changelog record sent so far is acknowledged by the broker."""
        if self.in_flight:
            await asyncio.gather(*list(self.in_flight))
            self.in_flight = [f for f in self.in_flight if not f.done()]


class KeyedRocksDBStore(RocksDBStore):
    """Faust's RocksDB store, writing each state into the database of the partition its
    changelog record goes to (the key's, by Kafka's default partitioner).

    Faust's own store writes into the partition of the record being processed. A window
    here holds records of several partitions, so a state could land in another
    partition's database; after a restart the changelog restores the state into its own
    partition, and a read that finds the stale copy elsewhere first would fold onto it (a
    test with kill -9 lost half of a user's events that way).
    """

    def _set(self, key: bytes, value: bytes | None) -> None:
        assert self.table.partitions, "state tables are made with their partition count"
        partitions = list(range(self.table.partitions))
        partition = DefaultPartitioner()(key, partitions, partitions)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)


def state_table(
    app: faust.App,
    version: str,
    partitions: int,
    topic_prefix: str = "",
    topic_configs: dict[str, str] | None = None,
) -> StateTable:
    """The table of one model version's user states, added to ``app``; its changelog topic
    named behind ``topic_prefix`` and created with ``topic_configs`` besides compaction."""
    table = StateTable(
        app,
        topic_prefix=topic_prefix,
        extra_topic_configs=topic_configs or {},
        name=f"user-state-{version}",
        default=None,
        beacon=app.tables.beacon,
        key_type=bytes,  # bytes keys and values: Faust picks its raw codec for both
        value_type=bytes,  # InterestState.to_bytes()
        partitions=partitions,
        use_partitioner=True,
    )
    app.tables.add(table)
    return table


class TableStates(MutableMapping[str, Any]):
    """A Faust table seen as ``user_id -> state bytes`` (keys stored as UTF-8 bytes)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self.table)

    def __len__(self) -> int:
        return len(self.table)
