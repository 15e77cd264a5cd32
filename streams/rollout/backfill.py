"""A roll-out's backfill: the new version's items and users rebuilt from the topics, inside
the worker, while the live stream writes both versions (README: Roll-out).

During a roll-out (``INTEREST_ROLLOUT=true``, CURRENT newer than the version the aliases
serve) the worker folds every live event into both versions. The new version's processor
*stamps* each user's state with the offset of the first event it got live, per topic. The
backfill reads each topic from the beginning up to the group's committed offsets, taken
when it starts, and gives the new version what came before:

* items: each item's latest text, encoded by the new model, except items the live stream
  wrote meanwhile (those are newer). Until the items are in, the live stream holds its
  event windows (an event needs its item's vector in the new version);
* users: for each user, the events before its live stamp (all of them if it has none),
  folded into a fresh state, then merged into the live state (:func:`merge`). The merged
  state records, per topic, the highest offset merged (``backfilled_to``), so a backfill
  that starts again after a crash skips what it merged before: no event counts twice.

Records are read and merged ``chunk`` at a time under ``lock``, which the live stream's
new-version work also holds, so a user's state never changes between its read and its
write. Progress: a log line every ``log_every_s`` with counts, and ``on_progress(done,
total)`` (the worker's metrics).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.interest import InterestState, merge
from streams.kafka.client import kafka_security
from streams.kafka.groups import group_offsets
from streams.processor import EventProcessor, RawRecord
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BackfillStats:
    records: int = 0  # read from the topics
    total: int = 0  # to read
    items: int = 0  # item records given to the new version
    users: int = 0  # user states merged
    events: int = 0  # events folded in by the backfill
    seconds: float = 0.0


class Backfill:
    def __init__(
        self,
        settings: Settings,
        group: str,
        target: EventProcessor,
        lock: asyncio.Lock,
        *,
        kinds: dict[str, str],
        chunk: int = 2000,
        log_every_s: float = 10.0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.group = group
        self.target = target  # the new version's live processor (stamp_live=True)
        self.lock = lock
        self.kinds = kinds  # topic -> kind: clicks, views, reviews, items
        self.chunk = chunk
        self.log_every_s = log_every_s
        self.on_progress = on_progress
        self.live_items: set[str] = set()  # item ids the live stream wrote to the new version
        self.stats = BackfillStats()
        self._last_log = 0.0
        self._phase = ""
        self._totals: dict[str, int] = {}  # records to read, per phase (items, users)
        self._done: dict[str, int] = {}  # records read, per phase
        self._read_before = 0

    async def run_items(self) -> None:
        """The items, each with its latest text: first, the users' events need them."""
        started = time.monotonic()
        ends = await self._committed([t for t, k in self.kinds.items() if k == "items"])
        self._start("items", ends)
        await self._read(ends, self._items)
        self.stats.seconds += time.monotonic() - started
        log.info("backfill of %s: %d items in", self.target.version, self.stats.items)

    async def run_users(self) -> BackfillStats:
        """The users: every partition's events, merged user by user."""
        started = time.monotonic()
        ends = await self._committed([t for t, k in self.kinds.items() if k != "items"])
        self._start("users", ends)
        await self._read(ends, self._events)
        self.stats.seconds += time.monotonic() - started
        log.info(
            "backfill of %s done: %d records, %d items, %d users merged, %d events, %.1f s",
            self.target.version,
            self.stats.records,
            self.stats.items,
            self.stats.users,
            self.stats.events,
            self.stats.seconds,
        )
        return self.stats

    def _start(self, phase: str, ends: dict[TopicPartition, int]) -> None:
        """A phase (re)starts: its records count from 0 again (a retry reads them again)."""
        self._totals[phase] = sum(ends.values())
        self._read_before = sum(n for p, n in self._done.items() if p != phase)
        self._phase = phase
        self._done[phase] = 0
        self.stats.total = sum(self._totals.values())
        self._last_log = time.monotonic()
        log.info(
            "backfill of %s: %d records in %d partitions, up to the group's committed offsets",
            self.target.version,
            sum(ends.values()),
            len(ends),
        )

    async def _committed(self, topics: list[str]) -> dict[TopicPartition, int]:
        """The group's committed offset of every partition of ``topics`` (0 if none)."""
        offsets = await group_offsets(self.settings, self.group, topics)
        return {tp: committed for tp, (committed, _) in offsets.items()}

    async def _read(
        self,
        ends: dict[TopicPartition, int],
        handle: Callable[[list[RawRecord]], Any],
    ) -> None:
        """Every record before ``ends``, from the beginning, ``chunk`` at a time."""
        todo = {tp: end for tp, end in ends.items() if end > 0}
        if not todo:
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            **kafka_security(self.settings),
        )
        await consumer.start()
        try:
            consumer.assign(list(todo))
            await consumer.seek_to_beginning(*todo)
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=self.chunk)
                records = [
                    RawRecord.of(self.kinds[m.topic], m)
                    for tp, messages in batch.items()
                    for m in messages
                    if m.offset < todo[tp]
                ]
                for tp in list(todo):  # every partition: one whose records retention deleted
                    if await consumer.position(tp) >= todo[tp]:  # fetches nothing, yet is done
                        del todo[tp]
                        consumer.pause(tp)
                if records:
                    async with self.lock:
                        await handle(records)
                    self._done[self._phase] += len(records)
                    self.stats.records = self._read_before + self._done[self._phase]
                    self._progress()
        finally:
            await consumer.stop()

    async def _items(self, records: list[RawRecord]) -> None:
        self.stats.items += len(records)
        await self.target.items(records, skip=self.live_items)  # newer: written live

    async def _events(self, records: list[RawRecord]) -> None:
        """Fold each user's events before its live stamp into a fresh state, merge it into
        the live state, write both the point and the state."""
        by_user: dict[str, list[RawRecord]] = defaultdict(list)
        for rec in records:
            if rec.key:  # no key: dead-lettered when the stream met it
                by_user[rec.key.decode("utf-8", errors="replace")].append(rec)
        backfill = EventProcessor(
            self.target.encoder, self.target.store, {}, self.target.config, head=self.target.head
        )
        backfill.item_cache = self.target.item_cache
        live_states: dict[str, InterestState] = {}
        admitted: list[RawRecord] = []
        for user_id, recs in by_user.items():
            live = self.target.state(user_id)
            live_states[user_id] = live
            fresh = InterestState.empty(
                self.target.dimension,  # the head's when the version has one
                self.target.config.half_lives,
                self.target.config.dedupe_window,
            )
            fresh.forgotten_at = live.forgotten_at  # a forget seen live holds for history too
            fresh.seen.update(live.seen)  # an event the live stream folded is a duplicate here
            # (not the live floor: the history before the live stamp is the backfill's to fold)
            backfill.states[user_id] = fresh.to_bytes()
            admitted.extend(r for r in recs if _before(r, live))
        out, changed = await backfill.fold(admitted)
        self.stats.events += len(out.event_times)
        merged = {}
        for user_id, recs in by_user.items():
            live = live_states[user_id]
            older = changed.get(user_id) or backfill.state(user_id)
            for topic, offsets in _offsets(recs).items():
                older.backfilled_to[topic] = max(older.backfilled_to.get(topic, -1), offsets)
            merged[user_id] = merge(older, live, self.target.by_events)
        written = await self.target.save_merged(merged)
        self.stats.users += written

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats.records, self.stats.total)
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            log.info(
                "backfill of %s: %d of %d records, %d items, %d users merged",
                self.target.version,
                self.stats.records,
                self.stats.total,
                self.stats.items,
                self.stats.users,
            )


def _before(rec: RawRecord, live: InterestState) -> bool:
    """The backfill's share of a user's records: before its live stamp, after what an
    earlier backfill merged."""
    return (
        live.backfilled_to.get(rec.topic, -1) < rec.offset < live.live_from.get(rec.topic, 1 << 62)
    )


def _offsets(recs: Iterable[RawRecord]) -> dict[str, int]:
    """The highest offset per topic among ``recs``."""
    out: dict[str, int] = {}
    for r in recs:
        out[r.topic] = max(out.get(r.topic, -1), r.offset)
    return out
