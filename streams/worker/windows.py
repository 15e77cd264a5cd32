"""The agents' loop: a window of Kafka records in, its acknowledgement out.

    runner = WindowRunner("events", topic_kinds, processing.events, output, retry)
    await runner.run(stream, events=256, within_s=0.1)       # an agent's whole body
    outcome = await runner.window(records, ack)              # one window (unit tests)

For each window (``events`` records or ``within_s`` seconds, whichever comes first):

1. keep the records that continue their partitions: a hole Faust can leave around a
   restart or a rebalance is read again (streams/worker/gaps.py);
2. process them (the processor's work for this agent), under the retry policy; a window
   that keeps failing with a bug is processed record by record, and a record that fails
   alone is dead-lettered as ``UnexpectedError`` (with the error and where it was raised);
3. wait until the changelog records of the states the window changed are delivered;
4. send its bad records to the dead-letter topic, its events whose item is not in the
   catalogue yet to the parked topic (streams/parking.py; those parked for longer than
   ``Parking.max_s`` to the dead-letter topic as ``UnknownItem``) and its examples to the
   examples topic, each acknowledged by the broker;
5. tell the observer (metrics, statistics, the fine-tuning trigger);
6. acknowledge the window's records: offsets are committed only after what covers them.

Everything that leaves the runner goes through a :class:`WindowOutput`, so a unit test
passes a fake output and a list of records, and needs no broker.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, Protocol

from streams.deadletter import dead_letter
from streams.errors import StreamError, UnexpectedError, UnknownItem
from streams.parking import park_headers, parked_at
from streams.processor import Outcome, RawRecord
from streams.records import Example, ForgetMarker
from streams.worker.gaps import GapGuard
from streams.worker.retry import GaveUp, Retry, Stopping

log = logging.getLogger(__name__)
Agent = Literal["items", "events", "feedback", "parked"]
MAX_RECORD_BYTES = 16 * 1024 * 1024  # the broker's and the producer's limit
DEAD_LETTER_BYTES = MAX_RECORD_BYTES - 64 * 1024  # room for the error headers

Work = Callable[[Sequence[RawRecord]], Awaitable[Outcome]]
Ack = Callable[[Any], Awaitable[Any]]
Observer = Callable[[Agent, Outcome, list[float], float], None]


class WindowOutput(Protocol):
    """Where a window's results go besides the store (Kafka, in the worker)."""

    async def dead_letter(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        """Send one dead letter, with the record's own key, and wait until the broker has it."""

    async def examples(self, records: Sequence[Example | ForgetMarker]) -> None:
        """Send training examples and wait until the broker has them."""

    async def park(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        """Send one record to the parked topic and wait until the broker has it."""

    async def changelog_delivered(self) -> None:
        """Wait until the changelog records of the states changed so far are delivered."""


class Partitions(Protocol):
    """Where the consumer stands: committed offsets, and reading a partition again."""

    def committed(self) -> Mapping[Hashable, int | None]: ...

    async def read_again(self, tp: Any, offset: int, where: str) -> None: ...


@dataclasses.dataclass(frozen=True)
class Parking:
    """How long an event waits for its item (INTEREST_PARK_MAX_S), and how often it looks
    (INTEREST_PARK_RETRY_S)."""

    max_s: float = 3600.0
    retry_s: float = 5.0
    clock: Callable[[], float] = time.time


class WindowRunner:
    def __init__(
        self,
        agent: Agent,
        topic_kinds: Mapping[str, str],
        work: Work,
        output: WindowOutput,
        retry: Retry,
        *,
        partitions: Partitions | None = None,
        observe: Observer | None = None,
        unexpected_retries: int = 3,
        parking: Parking = Parking(),
    ) -> None:
        self.agent = agent
        self.topic_kinds = topic_kinds  # full topic name -> its kind: clicks, items, ...
        self.work = work
        self.output = output
        self.retry = retry
        self.partitions = partitions  # None: no hole checks (tests, tools)
        self.observe = observe
        self.unexpected_retries = unexpected_retries  # then the records one by one
        self.parking = parking
        self.guard = GapGuard()
        self.busy = False  # inside a window (the idle-partition check leaves it alone)

    async def run(self, stream: Any, events: int, within_s: float) -> None:
        """Take ``stream`` (a Faust stream) window by window, forever."""
        windows = stream.noack_take(events, within=within_s)
        try:
            async for window in windows:
                self.busy = True
                try:
                    await self.window(window, stream.ack)
                finally:
                    self.busy = False
        except Stopping:  # the window's records stay unacknowledged: read again at restart
            log.info("%s agent stopped during a retry", self.agent)
            # Faust's shutdown waits until no unacknowledged record is referenced any more;
            # the stream and the generator's frame hold the last one taken.
            stream.current_event = None
            await windows.aclose()

    async def window(self, window: Sequence[Any], ack: Ack) -> Outcome | None:
        """One window of Faust events (each with a ``.message``); None if none was kept."""
        events = await self._without_holes(window)
        if not events:
            return None
        records = [RawRecord.of(self._kind(e.message.topic), e.message) for e in events]
        what = f"{self.agent} window"
        try:
            outcome = await self.retry(
                functools.partial(self.work, records), what, self.unexpected_retries
            )
        except GaveUp:
            outcome = await self._one_by_one(records)
        await self.output.changelog_delivered()
        acked_s = time.time()
        to_park = self._expire(outcome)
        for rec, error in outcome.dead:
            value, headers = dead_letter(
                rec.value,
                rec.headers,
                rec.topic,
                rec.partition,
                rec.offset,
                error,
                max_bytes=DEAD_LETTER_BYTES,
            )
            key = rec.key or None  # the original Kafka key: a consumer of dlq can route it
            await self.retry(
                functools.partial(self.output.dead_letter, key, value, headers), "dead letter"
            )
        if outcome.dead:
            kinds = Counter(type(error).__name__ for _, error in outcome.dead)
            log.warning(
                "%s window: %d of %d records dead-lettered (%s)",
                self.agent,
                len(outcome.dead),
                len(records),
                ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())),
            )
        for rec, headers in to_park:
            await self.retry(
                functools.partial(self.output.park, rec.key or None, rec.value, headers), "parking"
            )
        if to_park:
            again = sum(parked_at(rec) is not None for rec, _ in to_park)
            log.warning(
                "%s window: %d of %d records parked, their item not in the catalogue yet "
                "(%d parked before)",
                self.agent,
                len(to_park),
                len(records),
                again,
            )
        if outcome.examples:  # durable in the examples topic before the records are acked
            await self.retry(functools.partial(self.output.examples, outcome.examples), "examples")
        if self.observe is not None:
            self.observe(self.agent, outcome, [e.message.timestamp for e in events], acked_s)
        for event in events:
            await ack(event)
        return outcome

    def _expire(self, outcome: Outcome) -> list[tuple[RawRecord, list[tuple[str, bytes]]]]:
        """Split the window's parked events: those parked longer than ``parking.max_s`` join
        its dead letters as ``UnknownItem``; the rest, with the headers of their parked
        copies, are returned."""
        now = self.parking.clock()
        to_park = []
        for rec in outcome.parked:
            first = parked_at(rec)
            first = now if first is None else first
            if now - first >= self.parking.max_s:
                reason = (
                    f"its item did not reach the catalogue within INTEREST_PARK_MAX_S "
                    f"({self.parking.max_s:g} s) of the event's parking"
                )
                outcome.dead.append((rec, UnknownItem(reason)))
            else:
                to_park.append((rec, park_headers(rec, first, now + self.parking.retry_s)))
        outcome.parked = [rec for rec, _ in to_park]
        return to_park

    async def _one_by_one(self, records: list[RawRecord]) -> Outcome:
        """A window that keeps failing with a bug: each record alone (transient failures
        still retried); one that fails alone is dead-lettered with the error."""
        outcome = Outcome()
        for rec in records:
            try:
                part = await self.retry(
                    functools.partial(self.work, [rec]), f"{self.agent} record", 0
                )
            except GaveUp as exc:
                error = exc.error
                frame = traceback.extract_tb(error.__traceback__)[-1:]
                where = f" at {frame[0].filename}:{frame[0].lineno}" if frame else ""
                part = Outcome()
                message = f"{type(error).__name__}: {error}{where}"
                part.dead.append((rec, UnexpectedError(message)))
            outcome.add(part)
        return outcome

    def _kind(self, topic: str) -> str:
        kind = self.topic_kinds.get(topic)
        if kind is None:
            raise StreamError(
                f"the {self.agent} agent got a record of topic {topic!r}, not its own"
            )
        return kind

    async def _without_holes(self, window: Sequence[Any]) -> list[Any]:
        """The window's records that continue their partitions (streams/worker/gaps.py)."""
        if self.partitions is None:
            return list(window)
        committed = self.partitions.committed()
        taken = []
        for e in window:
            tp = e.message.tp
            verdict = self.guard.check(tp, e.message.offset, committed.get(tp))
            if verdict.seek_to is not None:
                where = f"before offset {e.message.offset}"
                await self.partitions.read_again(tp, verdict.seek_to, where)
            if verdict.take:
                taken.append(e)
        return taken
