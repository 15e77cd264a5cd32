"""A roll-out inside one worker: both versions written, the new one backfilled, then served.

    source = rollout_from(settings, version, store)       # the served version, or None
    dual = DualWrite(new=processor, old=old_processor)    # what the agents process with
    await Rollout(settings, dual, store, retry, holds_all, topic_kinds, on_progress).run()

With ``INTEREST_ROLLOUT=true`` and CURRENT newer than the version the aliases serve, every
live record goes to both versions. The old one (still served) answers the metrics and the
feedback: its states hold the whole history until the switch. The new one gets its items at
once from the backfill; its event windows wait for them (an event needs its item's vector
in the new version: a window held here holds back the stream, nothing is skipped). Then,
once this worker holds every partition, the backfill rebuilds its users from the topics
(streams/rollout/backfill.py), and the aliases point at it. The worker keeps writing the old
version until it restarts, so a roll-back serves fresh vectors.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence

from streams.errors import StreamError
from streams.processor import EventProcessor, Outcome, RawRecord
from streams.rollout.backfill import Backfill
from streams.settings import Settings
from streams.store import Store
from streams.worker.retry import Retry

log = logging.getLogger(__name__)


def rollout_from(settings: Settings, version: str, store: Store) -> str | None:
    """With ``settings.rollout``: the version the aliases serve, when it is another one than
    ``version`` (CURRENT) and its model is in the models root; else None."""
    if not settings.rollout:
        return None
    serving = store.serving()
    if serving is None or serving == version:
        log.info("roll-out: the aliases serve %s already; nothing to roll out", serving)
        return None
    if not (settings.models_root / serving).is_dir():
        raise StreamError(
            f"roll-out from {serving} to {version}: the served version's model is not in "
            f"{settings.models_root} (it is written too until the switch)"
        )
    log.info("roll-out from %s to %s: writing both, backfilling %s", serving, version, version)
    return serving


class DualWrite:
    """The agents' processing during a roll-out: every record to both versions."""

    def __init__(self, new: EventProcessor, old: EventProcessor) -> None:
        self.new = new
        self.old = old
        self.lock = asyncio.Lock()  # the new version's states: live windows vs the backfill
        self.items_ready = asyncio.Event()  # the new version has every item
        self.live_items: set[str] = set()  # items the live stream wrote to the new version

    async def items(self, records: Sequence[RawRecord]) -> Outcome:
        async with self.lock:
            await self.new.items(records, written=self.live_items)
        return await self.old.items(records)

    async def events(self, records: Sequence[RawRecord]) -> Outcome:
        await self.items_ready.wait()
        async with self.lock:
            await self.new.events(records)
        return await self.old.events(records)

    async def feedback(self, records: Sequence[RawRecord]) -> Outcome:
        return await self.old.feedback(records)


class Rollout:
    """Backfill the new version (items, then users once this worker holds every partition),
    then point the aliases at it."""

    def __init__(
        self,
        settings: Settings,
        dual: DualWrite,
        store: Store,
        retry: Retry,
        holds_all: Callable[[Mapping[str, str]], bool],
        topic_kinds: Mapping[str, str],
        on_progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.dual = dual
        self.store = store
        self.retry = retry
        self.holds_all = holds_all  # this worker is assigned every partition of these topics
        # The topics the backfill reads: feedback rebuilds no vector.
        self.topic_kinds = {t: k for t, k in topic_kinds.items() if k != "feedback"}
        self.on_progress = on_progress

    async def run(self) -> None:
        new = self.dual.new
        progress = functools.partial(self.on_progress, new.version) if self.on_progress else None
        backfill = Backfill(
            self.settings,
            self.settings.consumer_group,
            new,
            self.dual.lock,
            kinds=self.topic_kinds,
            chunk=self.settings.backfill_chunk,
            on_progress=progress,
        )
        backfill.live_items = self.dual.live_items
        await self.retry(backfill.run_items, "backfill of the items")
        self.dual.items_ready.set()
        while not self.holds_all(self.topic_kinds):
            await asyncio.sleep(1.0)
        await self.retry(backfill.run_users, "backfill of the users")
        switch = functools.partial(asyncio.to_thread, self.store.switch, new.version)
        await self.retry(switch, "switch")
        log.warning(
            "roll-out: the aliases now serve %s; this worker keeps writing %s too (a roll-back "
            "stays fresh) until it restarts",
            new.version,
            self.dual.old.version,
        )
