"""The window runner and the retry policy, without a broker: a list of records as the
stream, a fake output, a real processor over a store that fails."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import orjson
import pytest

from encoder.service import Encoder
from streams.errors import InvalidJson, StreamError
from streams.parking import parked_at, retry_at, unparked
from streams.processor import EventProcessor, Outcome, RawRecord
from streams.records import Example, ForgetMarker
from streams.store import QdrantStore, StoreError
from streams.worker.metrics import Metrics
from streams.worker.retry import Retry
from streams.worker.windows import Parking, WindowRunner
from tests.encoder.fakes import FakeModel
from tests.streams.test_processor import T0, config

KINDS = {"t.clicks": "clicks", "t.views": "views", "t.items": "items"}


@dataclasses.dataclass(frozen=True)
class Message:
    topic: str
    offset: int
    value: bytes
    key: bytes | None = None
    partition: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: float = T0

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


@dataclasses.dataclass(frozen=True)
class Event:
    message: Message


def click(offset: int, user: str = "u1", item: int = 1, topic: str = "t.clicks") -> Event:
    value = {"event_id": f"e{offset}", "user_id": user, "item_id": item, "ts": T0 + offset}
    return Event(Message(topic, offset, orjson.dumps(value), user.encode()))


class FakeOutput:
    """Records what the runner sends, in order, into ``log`` (shared with the acks)."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.letters: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.sent: list[Example | ForgetMarker] = []
        self.parked: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []

    async def dead_letter(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.letters.append((key, value, headers))
        self.log.append("dead letter")

    async def examples(self, records: Any) -> None:
        self.sent.extend(records)
        self.log.append("examples")

    async def park(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.parked.append((key, value, headers))
        self.log.append("parked")

    async def changelog_delivered(self) -> None:
        self.log.append("changelog")


class Acks:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def __call__(self, event: Event) -> None:
        self.log.append(("ack", event.message.offset))


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def runner_with(work: Any, log: list[Any], **kw: Any) -> tuple[WindowRunner, FakeOutput, Metrics]:
    metrics = Metrics()
    output = FakeOutput(log)
    runner = WindowRunner("events", KINDS, work, output, Retry(metrics, sleep=no_sleep), **kw)
    return runner, output, metrics


def test_bad_records_are_dead_lettered_and_every_record_acked_after_the_output(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[Any] = []
    seen: list[list[RawRecord]] = []

    async def work(records):
        seen.append(list(records))
        out = Outcome()
        out.dead.append((records[1], InvalidJson("bad")))
        out.examples.append(ForgetMarker("u1", T0))
        return out

    told: list[tuple[str, int]] = []
    runner, output, _ = runner_with(
        work,
        log,
        observe=lambda agent, outcome, produced, acked: told.append((agent, len(produced))),
    )
    window = [click(0), Event(Message("t.views", 1, b"{not json", b"u1")), click(2)]
    with caplog.at_level(logging.WARNING, logger="streams.worker.windows"):
        outcome = asyncio.run(runner.window(window, Acks(log)))
    assert "events window: 1 of 3 records dead-lettered (1 InvalidJson)" in caplog.text
    assert outcome is not None
    assert [r.topic_kind for r in seen[0]] == ["clicks", "views", "clicks"]
    key, value, headers = output.letters[0]
    assert key == b"u1"  # the record's own key, kept
    assert value == b"{not json" and ("dlq.error-type", b"InvalidJson") in headers
    assert output.sent == [ForgetMarker("u1", T0)]
    assert told == [("events", 3)]
    # The changelog, the dead letter and the examples are out before any record is acked.
    assert log == ["changelog", "dead letter", "examples", ("ack", 0), ("ack", 1), ("ack", 2)]


def test_an_event_without_its_item_is_parked_with_its_key_and_acked_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The parked copy keeps the key, value and headers, says its kind and where it came
    from; taken again and still without its item, it keeps its first parking time."""
    log: list[Any] = []
    now = [T0]

    async def work(records):
        out = Outcome()
        out.parked.extend(records)  # as the processor does when the item is not there
        return out

    parking = Parking(max_s=60.0, retry_s=5.0, clock=lambda: now[0])
    runner, output, _ = runner_with(work, log, parking=parking)
    first = click(7)
    first = Event(dataclasses.replace(first.message, headers=(("trace", b"t1"),)))
    with caplog.at_level(logging.WARNING, logger="streams.worker.windows"):
        asyncio.run(runner.window([first], Acks(log)))
    assert "events window: 1 of 1 records parked" in caplog.text
    assert log == ["changelog", "parked", ("ack", 7)]
    key, value, headers = output.parked[0]
    assert key == b"u1" and value == first.message.value
    copy = RawRecord("parked", value, "t.parked", 0, 0, tuple(headers), key)
    assert ("trace", b"t1") in headers and ("park.source", b"t.clicks/0/7") in headers
    assert parked_at(copy) == T0 and retry_at(copy) == T0 + 5.0
    assert unparked(copy).topic_kind == "clicks"

    now[0] = T0 + 30.0  # taken again, the item still missing: parked again, same first time
    again = Event(Message("t.clicks", 8, value, key, headers=tuple(headers)))
    asyncio.run(runner.window([again], Acks(log)))
    _, _, headers2 = output.parked[1]
    copy2 = RawRecord("parked", value, "t.parked", 0, 0, tuple(headers2), key)
    assert parked_at(copy2) == T0 and retry_at(copy2) == T0 + 35.0
    assert [h for h in headers2 if h[0] == "park.source"] == [("park.source", b"t.clicks/0/7")]
    assert not output.letters


def test_an_event_parked_longer_than_the_limit_is_dead_lettered_as_unknown_item() -> None:
    log: list[Any] = []

    async def work(records):
        out = Outcome()
        out.parked.extend(records)
        return out

    parking = Parking(max_s=60.0, retry_s=5.0, clock=lambda: T0 + 61.0)
    runner, output, _ = runner_with(work, log, parking=parking)
    headers = (("park.kind", b"clicks"), ("park.parked-at", repr(T0).encode()))
    event = Event(Message("t.clicks", 3, b'{"event_id": "e3"}', b"u1", headers=headers))
    outcome = asyncio.run(runner.window([event], Acks(log)))
    assert outcome is not None and not outcome.parked and not output.parked
    key, _, letter = output.letters[0]
    assert key == b"u1" and ("dlq.error-type", b"UnknownItem") in letter
    assert "INTEREST_PARK_MAX_S" in dict(letter)["dlq.error-message"].decode()
    assert log == ["changelog", "dead letter", ("ack", 3)]


def test_a_record_of_a_topic_the_agent_does_not_read_is_an_error_not_a_click() -> None:
    async def work(records):
        raise AssertionError("never reached")

    runner, _, _ = runner_with(work, [])
    with pytest.raises(StreamError, match=r"'t\.other'"):
        asyncio.run(runner.window([click(0, topic="t.other")], Acks([])))


def test_a_failing_store_is_retried_until_it_answers_and_nothing_is_acked_before() -> None:
    """A real processor over a store that refuses twice: the window is retried with
    back-off, the event counted once, and acknowledged only after the write."""

    async def body() -> None:
        store = QdrantStore.connect()
        states: dict = {}
        async with Encoder(FakeModel(dimension=8, max_length=64), max_wait_ms=1) as enc:
            proc = EventProcessor(enc, store, states, config())
            await proc.start()
            item = RawRecord("items", orjson.dumps({"item_id": 1, "text": "a movie"}))
            await proc.items([item])
            real, refusals = store.upsert_users, [2]

            def flaky(*args, **kwargs):
                if refusals[0]:
                    refusals[0] -= 1
                    raise StoreError("Qdrant upsert: connection refused (injected)")
                return real(*args, **kwargs)

            store.upsert_users = flaky  # type: ignore[method-assign]
            log: list[Any] = []

            async def work(records):
                log.append("work")
                return await proc.events(records)

            runner, _, metrics = runner_with(work, log)
            outcome = await runner.window([click(0)], Acks(log))
            assert outcome is not None and outcome.written == 1
            assert log == ["work", "work", "work", "changelog", ("ack", 0)]
            assert metrics.retries.labels("events window")._value.get() == 2
            assert metrics.qdrant_errors._value.get() == 2
            assert metrics.unexpected.labels("events window")._value.get() == 0
            got = store.user("u1", proc.version)
            assert got is not None and got.payload["event_count"] == 1

    asyncio.run(body())


def test_an_unexpected_error_is_logged_with_its_traceback_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = [0]

    async def work(records):
        calls[0] += 1
        if calls[0] == 1:
            return 1 / 0  # a bug, not Qdrant away
        return Outcome()

    log: list[Any] = []
    runner, _, metrics = runner_with(work, log)
    with caplog.at_level(logging.WARNING, logger="streams.worker.retry"):
        asyncio.run(runner.window([click(0)], Acks(log)))
    [record] = [r for r in caplog.records if "unexpected" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError
    assert metrics.unexpected.labels("events window")._value.get() == 1
    assert metrics.retries.labels("events window")._value.get() == 0
    assert log == ["changelog", ("ack", 0)]


def test_a_transient_error_is_one_warning_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = [0]

    async def call() -> str:
        calls[0] += 1
        if calls[0] < 3:
            raise StoreError("Qdrant away")
        return "done"

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    retry = Retry(Metrics(), first_s=0.5, max_s=0.8, sleep=sleep)
    with caplog.at_level(logging.WARNING, logger="streams.worker.retry"):
        assert asyncio.run(retry(call, "start-up")) == "done"
    # Doubled, then capped: 0.5 s, then 0.8 s, slept in slices short enough to notice a stop.
    assert sum(waits) == pytest.approx(1.3) and max(waits) <= 0.25
    assert "retrying in 0.5 s" in caplog.text and "retrying in 0.8 s" in caplog.text
    assert all(r.exc_info is None and r.levelno == logging.WARNING for r in caplog.records)
    assert "start-up failed (Qdrant away); retrying in 0.5 s" in caplog.text


class Partitions:
    def __init__(self, committed: dict[Any, int]) -> None:
        self._committed = committed
        self.reread: list[tuple[Any, int]] = []

    def committed(self) -> dict[Any, int]:
        return self._committed

    async def read_again(self, tp: Any, offset: int, where: str) -> None:
        self.reread.append((tp, offset))


def test_a_hole_after_the_committed_offset_is_read_again_not_skipped() -> None:
    """The group committed up to offset 5; a window that starts at 8 lost 5..7."""
    processed: list[int] = []

    async def work(records):
        processed.extend(r.offset for r in records)
        return Outcome()

    partitions = Partitions({("t.clicks", 0): 5})
    log: list[Any] = []
    runner, _, _ = runner_with(work, log, partitions=partitions)
    assert asyncio.run(runner.window([click(8), click(9)], Acks(log))) is None
    assert partitions.reread == [(("t.clicks", 0), 5)]
    assert processed == [] and log == []  # nothing acked past the hole
    asyncio.run(runner.window([click(5), click(6)], Acks(log)))
    assert processed == [5, 6]


def test_a_bug_that_never_passes_dead_letters_only_its_record_and_the_partition_moves() -> None:
    """A record that makes the work raise a ZeroDivisionError every time: the window is
    retried a few times, then its records alone; the poison one goes to the dead-letter
    topic as UnexpectedError, the others are processed, and every record is acknowledged."""
    calls: list[list[int]] = []

    async def work(records):
        calls.append([r.offset for r in records])
        if any(b"poison" in r.value for r in records):
            raise ZeroDivisionError("float division by zero")
        out = Outcome()
        out.written = len(records)
        return out

    log: list[Any] = []
    runner, output, metrics = runner_with(work, log, unexpected_retries=2)
    poison = Event(Message("t.clicks", 1, b'{"poison": 1}', b"u1"))
    outcome = asyncio.run(runner.window([click(0), poison, click(2)], Acks(log)))
    assert outcome is not None and outcome.written == 2
    assert calls == [[0, 1, 2]] * 3 + [[0], [1], [2]]  # 1 try + 2 retries, then alone
    [(key, value, headers)] = output.letters
    assert key == b"u1" and value == b'{"poison": 1}'
    found = dict(headers)
    assert found["dlq.error-type"] == b"UnexpectedError"
    assert found["dlq.error-message"].startswith(b"ZeroDivisionError: float division by zero at ")
    assert [entry for entry in log if isinstance(entry, tuple)] == [
        ("ack", 0),
        ("ack", 1),
        ("ack", 2),
    ]
    assert metrics.unexpected.labels("events window")._value.get() == 3
    assert metrics.unexpected.labels("events record")._value.get() == 1


def test_a_transient_failure_is_never_given_up_on() -> None:
    calls = [0]

    async def work(records):
        calls[0] += 1
        if calls[0] <= 6:
            raise StoreError("Qdrant away")
        return Outcome()

    log: list[Any] = []
    runner, output, _ = runner_with(work, log, unexpected_retries=1)
    asyncio.run(runner.window([click(0)], Acks(log)))
    assert calls[0] == 7 and output.letters == [] and log[-1] == ("ack", 0)


def test_a_stop_abandons_the_back_off_at_once() -> None:
    """SIGTERM while Qdrant is away: the retry gives the window up instead of sleeping on."""
    from streams.worker.retry import Stopping

    stopping = [False]
    slept: list[float] = []

    async def call() -> None:
        raise StoreError("Qdrant away")

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        stopping[0] = len(slept) == 3  # the stop comes during the first back-off

    retry = Retry(Metrics(), first_s=30.0, sleep=sleep, stopping=lambda: stopping[0])
    with pytest.raises(Stopping):
        asyncio.run(retry(call, "events window"))
    assert sum(slept) == pytest.approx(0.75)  # three slices of 30 s, then it stopped
