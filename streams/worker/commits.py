"""Two corrections to faust-streaming's offset commits, installed by the worker.

Faust commits, per partition, the end of the first run of consecutive acknowledged offsets
(``Consumer._new_offset``). Offsets it never sees, such as a compacted topic's holes, it
keeps as gaps (``Consumer._add_gap``) and counts as acknowledged. Two faults, both seen
after ``kill -9`` and a restart:

* **Duplicates stall the commits.** Gap offsets are appended to the acknowledged list
  without looking at what is in it. After a restart, records fetched before Faust's seek
  to the committed offsets arrive after it. The read offset has stepped back, so the gap
  covers records that are already acknowledged. One duplicate splits every run of
  consecutive offsets: each commit then advances by one offset, once per commit interval
  (2.8 s). That was the slow kill -9 recovery, about 30 to 75 s instead of 7 s. The same
  fault is reported upstream (robinhood/faust #559, #625). Here the list keeps one entry
  per offset.
* **A gap counts its own record as done.** A gap is registered up to and including the
  record that revealed it, so that record counts as acknowledged before it is processed.
  A commit can then pass it, and a crash before it is processed loses it (the same family
  as faust-streaming #606). Here a gap ends just before that record.

    install()   # once, before the app starts: idempotent
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.utils.functional import consecutive_numbers

_FAUST_ADD_GAP = Consumer._add_gap


def new_offset(self: Any, tp: Any) -> int | None:
    """The offset to commit for ``tp`` (Faust's ``_new_offset``, with one entry per offset):
    the end of the first run of consecutive acknowledged offsets, gaps included, or None
    while the run does not start at the committed offset (a record before it is in flight;
    Faust lets a single missing offset pass, as a compacted hole)."""
    acked: list[int] = self._acked[tp]
    if not acked:
        return None
    gaps = self._gap[tp]
    if gaps:
        highest = max(acked)
        covered = sorted(gaps.overlap(0, highest), key=lambda interval: interval.begin)
        if covered:
            offsets = [o for interval in covered for o in range(interval.begin, interval.end)]
            acked.extend(offsets)
            gaps.chop(0, max(offsets[-1], highest + 1))
    acked[:] = sorted(set(acked))
    committed = self._committed_offset[tp]
    if committed and acked[0] - committed > 1:
        return None
    run = next(consecutive_numbers(acked))
    del acked[: len(run)]
    self._acked_index[tp].difference_update(run)
    return int(run[-1]) + 1


async def add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    """Faust calls this with ``offset_to`` the offset of the record that revealed the gap;
    the gap ends before that record."""
    await _FAUST_ADD_GAP(self, tp, offset_from, offset_to - 1)


def install() -> None:
    Consumer._new_offset = new_offset  # type: ignore[method-assign]
    Consumer._add_gap = add_gap  # type: ignore[method-assign]
