"""``interest-stream rollout VERSION``: watch a new version's backfill, then switch to it.

A roll-out runs a worker on the new version with its own consumer group (by default
``<consumer group>-<version>``). A new group reads every topic from the beginning: it encodes
every item into ``items__<version>`` and rebuilds every user in ``users__<version>``, and then
keeps both fresh while the old group keeps the old version fresh. This command follows that
group: a progress bar and a log line every ``log_every_s`` with the records committed out of
the records in the topics, until its lag is at most ``max_lag`` on two polls in a row. With
``switch`` it then points the aliases at the version (one request: no query sees two
versions) and, after ``drop_old_after`` seconds, drops the old version's collections unless
the aliases were moved back meanwhile.

    watch_backfill(settings, "interest-stream-3fa9c2d1e0b4", timeout=3600)
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError
from tqdm import tqdm

from streams.errors import StreamError
from streams.kafka.groups import group_progress
from streams.kafka.topics import EVENT_TOPICS
from streams.settings import Settings

log = logging.getLogger(__name__)

# The topics a worker's group consumes; feedback is left out: it rebuilds no vector.
BACKFILL_TOPICS = (*EVENT_TOPICS, "items")

Progress = Callable[[], tuple[int, int] | None]  # (committed, total), None: topics unknown


def backfill_group(settings: Settings, version: str) -> str:
    """The consumer group a roll-out's worker uses unless told otherwise (README)."""
    return f"{settings.consumer_group}-{version}"


def watch_backfill(
    settings: Settings,
    group: str,
    *,
    timeout: float,
    max_lag: int = 0,
    poll_s: float = 1.0,
    log_every_s: float = 10.0,
    progress: Progress | None = None,
    show_bar: bool = True,
) -> dict[str, Any]:
    """Block until ``group`` has caught up (lag <= ``max_lag`` on two polls in a row); raise
    :class:`StreamError` after ``timeout`` seconds. Returns the last figures."""
    topics = [settings.topic(t) for t in BACKFILL_TOPICS]
    read = progress or (lambda: asyncio.run(group_progress(settings, group, topics)))
    started = last_log = time.monotonic()
    caught_up = 0
    committed = total = 0
    bar = tqdm(desc=f"backfill {group}", unit="rec", file=sys.stderr, disable=not show_bar)
    try:
        while True:
            try:
                figures = read()
            except KafkaError as exc:
                if not exc.retriable:
                    raise StreamError(f"cannot read the progress of {group}: {exc}") from exc
                figures = None
            if figures is not None:
                committed, total = figures
                bar.total = total
                bar.n = committed
                bar.refresh()
                caught_up = caught_up + 1 if total - committed <= max_lag else 0
                if caught_up >= 2:
                    break
            now = time.monotonic()
            if now - last_log >= log_every_s:
                log.info(
                    "backfill %s: %d of %d records committed, lag %d",
                    group,
                    committed,
                    total,
                    total - committed,
                )
                last_log = now
            if now - started > timeout:
                raise StreamError(
                    f"group {group} did not catch up within {timeout:.0f} s: {committed} of "
                    f"{total} records committed (is a worker on the new version running with "
                    "this consumer group?)"
                )
            time.sleep(poll_s)
    finally:
        bar.close()
    seconds = time.monotonic() - started
    log.info("backfill %s: caught up, %d records, %.1f s", group, total, seconds)
    return {
        "group": group,
        "committed": committed,
        "total": total,
        "lag": total - committed,
        "seconds": round(seconds, 1),
    }
