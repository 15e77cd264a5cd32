"""Guard against records that go missing between Kafka and the agents.

faust-streaming can lose records around a rebalance or a restart: records fetched while the
table recovers are cleared from the stream queues while the fetch position has moved past
them, and its gap handling can then commit offsets over them (faust-streaming #596). Seen
here as one event missing after ``kill -9`` and a restart. The agents therefore check that
each partition's records arrive without holes:

    guard = GapGuard()
    verdict = guard.check(tp, offset, committed)   # per record, in stream order
    if verdict.seek_to is not None:                # a hole: read the partition again from there
        await consumer.seek_wait({tp: verdict.seek_to})  # in the consumer's thread
    if verdict.take:                               # else leave the record out, unacknowledged

A hole at the very end of a partition has no later record to reveal it; a timer asks
:meth:`GapGuard.stalled` about each partition while the agent is idle.

A record whose offset lies beyond the next expected one (the last offset taken + 1, or the
group's committed offset for a partition not seen yet) opens a hole, unless the group has
already committed past it (another worker handled it). The guard then asks for a seek back
to the first missing offset and leaves out this partition's records until the re-read
begins (the offsets step back) or the group has committed past the hole; records left out
are never acknowledged, so no commit can pass the hole. Each hole is retried once: a hole
that is still there after a re-read is a real one (transaction markers, compaction) and is
accepted.

A re-read whose first record lies beyond every offset left out so far (the hole held no
record at all) cannot be told from a record fetched before the seek. So while records are
left out, the seek is asked again every ``REASK_AFTER_S``: the next re-read brings back a
record already left out, the offsets step back, and the wait ends. Without that, such a
partition would leave out every later record, forever.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Hashable

RETRIED_MEMORY = 1024  # holes remembered per guard (each is retried once)
REASK_AFTER_S = 5.0  # a re-read that has not begun after this long is asked for again


@dataclasses.dataclass(frozen=True)
class Verdict:
    take: bool
    seek_to: int | None = None


TAKE = Verdict(True)


class GapGuard:
    def __init__(self) -> None:
        self.expected: dict[Hashable, int] = {}  # partition -> next offset to take
        # partition -> (offset the re-read starts at, last offset left out before it began)
        self.waiting: dict[Hashable, tuple[int, int]] = {}
        self._asked: dict[Hashable, float] = {}  # partition -> when its re-read was asked
        self._retried: deque[tuple[Hashable, int]] = deque(maxlen=RETRIED_MEMORY)
        self.holes = 0  # holes found (each triggered one re-read)
        self.reasked = 0  # re-reads asked again (REASK_AFTER_S)
        self.last_taken: dict[Hashable, float] = {}  # partition -> monotonic time
        self.started = time.monotonic()

    def check(self, tp: Hashable, offset: int, committed: int | None) -> Verdict:
        """``committed``: the group's committed offset for ``tp`` (next to read), or None."""
        if tp in self.waiting:
            start, last = self.waiting[tp]
            if offset > last and offset > max(start, committed or 0):
                self.waiting[tp] = (start, offset)  # still a record fetched before the seek
                now = time.monotonic()
                if now - self._asked[tp] < REASK_AFTER_S:
                    return Verdict(False)
                self._asked[tp] = now
                self.reasked += 1
                return Verdict(False, seek_to=start)
            # The re-read has begun (offsets stepped back), or the group committed past it.
            del self.waiting[tp], self._asked[tp]
            self.expected[tp] = offset + 1
            self.last_taken[tp] = time.monotonic()
            return TAKE
        expected = self.expected.get(tp, committed)
        if expected is not None and offset > expected:
            first_missing = max(expected, committed or 0)
            if offset > first_missing and (tp, first_missing) not in self._retried:
                self._retried.append((tp, first_missing))
                self._wait(tp, first_missing, offset)
                return Verdict(False, seek_to=first_missing)
        self.expected[tp] = max(self.expected.get(tp, 0), offset + 1)
        self.last_taken[tp] = time.monotonic()
        return TAKE

    def stalled(
        self, tp: Hashable, end: int | None, committed: int | None, idle_s: float
    ) -> int | None:
        """For an idle agent: the offset to read ``tp`` again from, or None.

        A hole at the end of a partition has no later record to reveal it. When the log
        ends (``end``: the next offset Kafka will write) beyond the next expected offset and
        nothing was taken from the partition for ``idle_s`` while the agent was idle, those
        records were fetched and lost on the way: read them again (once per hole).
        """
        expected = self.expected.get(tp, committed)
        if end is None or expected is None or end <= expected or tp in self.waiting:
            return None
        if time.monotonic() - self.last_taken.get(tp, self.started) < idle_s:
            return None
        if (tp, expected) in self._retried:
            return None
        self._retried.append((tp, expected))
        self._wait(tp, expected, expected - 1)
        return expected

    def _wait(self, tp: Hashable, start: int, last: int) -> None:
        """A re-read of ``tp`` from ``start`` is asked; ``last``: the last offset left out."""
        self.waiting[tp] = (start, last)
        self._asked[tp] = time.monotonic()
        self.holes += 1
