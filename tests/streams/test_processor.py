"""The per-batch pipeline with a fake encoder and the in-memory Qdrant store."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import orjson
import pytest

from encoder.service import Encoder
from streams.deadletter import dead_letter
from streams.errors import InvalidJson
from streams.interest import InterestState
from streams.processor import (
    DecodedStates,
    EventProcessor,
    ProcessorConfig,
    RawRecord,
    load_concepts,
)
from streams.records import ForgetMarker, Seen
from streams.store import QdrantStore, recent_items
from tests.encoder.fakes import FakeModel

HALF = {"short": 86_400.0, "long": 30 * 86_400.0}
WEIGHTS = {"click": 1.0, "view": 0.5, "review": 2.0, "negative": -1.0}
T0 = 1_600_000_000.0


def rec(kind: str, **fields) -> RawRecord:
    return RawRecord(kind, orjson.dumps(fields), topic=kind, partition=0, offset=0)


def config(**kw) -> ProcessorConfig:
    base = {
        "half_lives": HALF,
        "weights": WEIGHTS,
        "concept_labels": ("Comedy", "Drama"),
        "item_wait_s": 0.01,
    }
    return ProcessorConfig(**(base | kw))


def oracle(events, half_life: float) -> np.ndarray:
    now = max(t for t, _, _ in events)
    lam = math.log(2) / half_life
    s = sum(w * math.exp(-lam * (now - t)) * v for t, w, v in events)
    return s / np.linalg.norm(s)


async def with_processor(fn, **kw):
    model = FakeModel(dimension=8, max_length=64)
    store = QdrantStore.connect()
    states: dict = {}
    async with Encoder(model, max_wait_ms=1) as enc:
        proc = EventProcessor(enc, store, states, config(**kw))
        await proc.start()
        return await fn(proc, model, store, states)


def test_user_vectors_equal_the_oracle_with_out_of_order_and_duplicate_events() -> None:
    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=i, text=f"movie {i}") for i in range(5)])
        clicks = [(T0 + 3600 * k, k % 5) for k in (4, 1, 3, 0, 2)]  # out of order
        batch = [
            rec("clicks", event_id=f"c{k}", user_id="u1", item_id=i, ts=t)
            for k, (t, i) in enumerate(clicks)
        ]
        batch.append(batch[1])  # a duplicate
        review = rec(
            "reviews",
            event_id="r1",
            user_id="u1",
            item_id=0,
            ts=T0 + 100,
            text="great fun",
            rating=5,
        )
        first = await proc.events(batch[:3])
        second = await proc.events([*batch[3:], review])
        assert second.duplicates == 1 and first.written == second.written == 1

        expected = [(t, 1.0, model.expected(f"movie {i}")) for t, i in clicks]
        expected.append((T0 + 100, 2 ** ((5 - 3) / 2), model.expected("great fun")))
        point = store.user("u1")
        for name, h in HALF.items():
            np.testing.assert_allclose(point.vector[name], oracle(expected, h), atol=1e-5)
        assert point.payload["event_count"] == 6
        assert point.payload["model_version"] == "fake-a"
        assert len(point.payload["concepts"]) == 2
        assert InterestState.from_bytes(states["u1"]).event_count == 6
        assert recent_items(point.payload) == ["4", "1", "3", "2", "0"]  # seen last, last

    asyncio.run(with_processor(body))


def test_bad_records_are_returned_as_dead_letters_and_the_rest_is_processed() -> None:
    async def body(proc, model, store, states):
        await proc.items(
            [rec("items", item_id=1, text="a movie"), RawRecord("items", b"{broken", "items", 0, 7)]
        )
        out = await proc.events(
            [
                RawRecord("clicks", b"\xff", "clicks", 0, 1),
                rec("clicks", event_id="e1", user_id="u1", item_id=1, ts=float("1e300")),
                rec("clicks", event_id="e2", user_id="u1", item_id=1, ts=T0),
            ]
        )
        assert [type(e).__name__ for _, e in out.dead] == ["InvalidUtf8", "InvalidTimestamp"]
        assert out.written == 1

    asyncio.run(with_processor(body))


def test_an_event_keyed_by_another_id_or_by_none_is_dead_lettered() -> None:
    def keyed(key: bytes | None, event_id: str, user: str | int) -> RawRecord:
        fields = {"event_id": event_id, "user_id": user, "item_id": 1, "ts": T0}
        return RawRecord("clicks", orjson.dumps(fields), "clicks", 0, 0, (), key)

    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=1, text="a movie")])
        out = await proc.events(
            [
                keyed(b"u2", "e1", "u1"),  # would land in u2's partition
                keyed(b"", "e2", "u1"),  # no key: a random partition
                keyed(b"u1", "e3", "u1"),
                keyed(b"7", "e4", 7),  # an integer id keyed by its digits
            ]
        )
        errors = [str(e) for _, e in out.dead]
        assert [type(e).__name__ for _, e in out.dead] == ["KeyMismatch", "KeyMismatch"]
        assert "'u2' is not its user_id 'u1'" in errors[0] and "no key" in errors[1]
        assert out.written == 2 and set(states) == {"u1", "7"}
        assert InterestState.from_bytes(states["u1"]).event_count == 1

    asyncio.run(with_processor(body))


def test_feedback_becomes_examples_with_the_history_before_it() -> None:
    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=i, text=f"movie {i}") for i in range(5)])
        await proc.events(
            [
                rec("clicks", event_id="c0", user_id="u1", item_id=0, ts=T0),
                rec("views", event_id="c1", user_id="u1", item_id=1, ts=T0 + 10),
                rec("clicks", event_id="c3", user_id="u1", item_id=3, ts=T0 + 20),  # the target
                rec("clicks", event_id="c4", user_id="u1", item_id=4, ts=T0 + 99),  # after
            ]
        )
        out = await proc.feedback(
            [
                rec("feedback", user_id="u1", item_id=3, ts=T0 + 30, signal="positive"),
                rec("feedback", user_id="u1", item_id=2, ts=T0 + 30, reward=-0.5),
                rec("feedback", user_id="u2", item_id=3, ts=T0 + 30, signal="positive"),
                rec("feedback", user_id="u1", item_id=404, ts=T0 + 30, signal="negative"),
                rec("feedback", user_id="u1", item_id=3, ts=T0 + 30),  # no signal
            ]
        )
        assert [type(e).__name__ for _, e in out.dead] == ["MissingField"]
        assert out.no_history == 1 and out.unknown_items == 1
        first, second = out.examples
        assert first.item_id == "3" and first.item_text == "movie 3"
        assert first.reward == 1.0 and second.reward == -0.5
        # Before the signal and without the target: items 0 and 1, as folded (weights 1, 0.5).
        assert first.history == (Seen("0", "movie 0", T0, 1.0), Seen("1", "movie 1", T0 + 10, 0.5))
        assert [h.item_id for h in second.history] == ["0", "1", "3"]
        assert out.types[("feedback", "positive")] == 2 and out.types[("feedback", "negative")] == 2

    asyncio.run(with_processor(body))


def test_an_event_of_an_item_not_in_the_catalogue_yet_is_parked_then_folded() -> None:
    async def body(proc, model, store, states):
        click = rec("clicks", event_id="e1", user_id="u1", item_id=404, ts=T0)
        out = await proc.events([click])
        assert out.parked == [click] and out.written == 0 and not out.dead
        assert "u1" not in states
        await proc.items([rec("items", item_id=404, text="a movie that came late")])
        out = await proc.events([click])  # as the parked agent takes it again
        assert not out.parked and out.written == 1
        assert InterestState.from_bytes(states["u1"]).event_count == 1

    asyncio.run(with_processor(body))


def test_a_failed_qdrant_write_changes_no_state(monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=1, text="a movie")])

        def down(*args, **kwargs):
            raise ConnectionError("qdrant is down")

        monkeypatch.setattr(store, "upsert_users", down)
        batch = [rec("clicks", event_id="e1", user_id="u1", item_id=1, ts=T0)]
        with pytest.raises(ConnectionError):
            await proc.events(batch)
        assert "u1" not in states  # the retry will fold the event exactly once
        monkeypatch.undo()
        assert (await proc.events(batch)).written == 1
        assert InterestState.from_bytes(states["u1"]).event_count == 1

    asyncio.run(with_processor(body))


def test_two_batches_of_one_user_at_once_both_count(monkeypatch: pytest.MonkeyPatch) -> None:
    # The events and parked agents share one processor: while one batch waits for Qdrant,
    # the other must not fold onto the same old state (the later save would drop the first).
    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=i, text=f"movie {i}") for i in (1, 2)])
        write = store.upsert_users

        def slow(*args, **kwargs):
            time.sleep(0.2)
            return write(*args, **kwargs)

        monkeypatch.setattr(store, "upsert_users", slow)
        await asyncio.gather(
            proc.events([rec("clicks", event_id="e1", user_id="u1", item_id=1, ts=T0)]),
            proc.events([rec("clicks", event_id="e2", user_id="u1", item_id=2, ts=T0 + 1)]),
        )
        assert InterestState.from_bytes(states["u1"]).event_count == 2
        assert store.user("u1").payload["event_count"] == 2

    asyncio.run(with_processor(body))


def test_a_state_read_back_is_the_one_written_and_never_a_half_folded_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=1, text="a movie")])
        await proc.events([rec("clicks", event_id="e1", user_id="u1", item_id=1, ts=T0)])
        assert len(proc.decoded) == 1  # kept decoded beside the bytes it wrote

        def down(*args, **kwargs):
            raise ConnectionError("qdrant is down")

        monkeypatch.setattr(store, "upsert_users", down)
        batch = [rec("clicks", event_id="e2", user_id="u1", item_id=1, ts=T0 + 1)]
        with pytest.raises(ConnectionError):  # folded e2 into the kept state, then failed
            await proc.events(batch)
        monkeypatch.undo()
        await proc.events(batch)  # the retry reads the table's bytes, not the failed fold
        assert InterestState.from_bytes(states["u1"]).event_count == 2
        # bytes written by anyone else are decoded, not served from the kept state
        other = InterestState.from_bytes(states["u1"])
        other.forgotten_at = T0 + 5
        states["u1"] = other.to_bytes()
        await proc.events([rec("clicks", event_id="e3", user_id="u1", item_id=1, ts=T0 + 2)])
        assert InterestState.from_bytes(states["u1"]).event_count == 2  # forgotten: skipped

    asyncio.run(with_processor(body))


def test_dead_letter_keeps_bytes_and_headers_and_names_the_error() -> None:
    value, headers = dead_letter(
        b"\xff raw", [("trace", b"abc")], "clicks", 3, 42, InvalidJson("not valid JSON")
    )
    h = dict(headers)
    assert value == b"\xff raw" and h["trace"] == b"abc"
    assert (h["dlq.source-topic"], h["dlq.source-partition"], h["dlq.source-offset"]) == (
        b"clicks",
        b"3",
        b"42",
    )
    assert h["dlq.error-type"] == b"InvalidJson"


def test_the_shipped_concept_vocabulary_is_the_movielens_genres() -> None:
    labels = load_concepts(None)
    assert "Comedy" in labels and "Sci-Fi" in labels and len(labels) == 19


def test_an_oversized_dead_letter_is_cut_and_says_its_original_size() -> None:
    value, headers = dead_letter(b"x" * 100, [], "reviews", 0, 1, InvalidJson("x"), max_bytes=10)
    assert value == b"x" * 10
    assert dict(headers)["dlq.truncated-from"] == b"100"


@pytest.mark.reliability
def test_a_stalled_encoder_times_out_the_loop_keeps_answering_and_a_retry_succeeds(
    reliability,
) -> None:
    """The model hangs for 1.5 s (a stuck inference thread): the window fails after the
    encode timeout with a transient error (the agent retries it), the event loop never
    waits on the stall, and once the model answers again the same window goes through."""
    from streams.processor import EncoderStalled

    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=1, text="a movie")])
        model.delay = 1.5
        review = rec(
            "reviews", event_id="r1", user_id="u1", item_id=1, ts=T0, text="stuck for a while"
        )
        lags: list[float] = []

        async def sample() -> None:
            loop = asyncio.get_running_loop()
            for _ in range(100):
                asked = loop.time()
                await asyncio.sleep(0.01)
                lags.append(loop.time() - asked - 0.01)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        with pytest.raises(EncoderStalled, match=r"did not answer within 0\.3 s"):
            await proc.events([review])
        assert time.monotonic() - started < 1.0  # the timeout, not the stall
        await sampler
        assert max(lags) < 0.1  # the loop kept answering throughout
        assert "u1" not in states  # nothing folded: the retry counts it once
        model.delay = 0.0
        await asyncio.sleep(1.5)  # the stuck call ends
        out = await proc.events([review])  # what the agent's retry does
        count = InterestState.from_bytes(states["u1"]).event_count
        reliability.record(
            "encoder stalled",
            injected="a model call hangs 1.5 s; encode timeout 0.3 s, then a retry "
            f"(event loop lag at most {max(lags) * 1000:.0f} ms meanwhile)",
            events=1,
            lost=max(0, 1 - count),
            duplicated=max(0, count - 1),
            recovery_s=time.monotonic() - started,
        )
        assert out.written == 1 and count == 1

    asyncio.run(with_processor(body, encode_timeout_s=0.3))


def test_a_forgotten_user_is_deleted_and_old_events_never_bring_them_back() -> None:
    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=i, text=f"movie {i}") for i in range(3)])
        old = [
            rec("clicks", event_id=f"c{k}", user_id="u1", item_id=k, ts=T0 + k) for k in range(3)
        ]
        other = rec("clicks", event_id="o1", user_id="u2", item_id=1, ts=T0)
        await proc.events([*old, other])
        assert store.user("u1") is not None
        forget = rec("forget", user_id="u1", ts=T0 + 10)  # type: forget by its topic
        out = await proc.events([forget, old[0]])  # a late old event in the same window
        assert out.forgotten_users == ["u1"] and out.forgotten_events == 1
        assert out.examples == [ForgetMarker("u1", T0 + 10)]
        assert store.user("u1") is None and store.user("u2") is not None
        tomb = InterestState.from_bytes(states["u1"])
        assert tomb.event_count == 0 and not tomb.history and not tomb.recent_items
        # A replay of everything before the forget: nothing comes back.
        again = await proc.events(old)
        assert again.forgotten_events == 3 and again.written == 0
        assert store.user("u1") is None
        # Feedback finds no history to pair with.
        fb = await proc.feedback(
            [rec("feedback", user_id="u1", item_id=1, ts=T0 + 20, signal="positive")]
        )
        assert fb.no_history == 1 and not fb.examples
        # A new life after the forget counts from its first event; forgetting twice is once.
        new = rec("clicks", event_id="n1", user_id="u1", item_id=2, ts=T0 + 11)
        later = await proc.events([new, forget])
        assert later.written == 1 and later.forgotten_users == []
        assert store.user("u1").payload["event_count"] == 1

    asyncio.run(with_processor(body))


def test_a_new_version_stamps_each_users_first_live_offset_per_topic() -> None:
    """During a roll-out the new version's processor remembers where the live stream began
    for each user and topic; a forget keeps it (streams/backfill.py relies on it)."""

    def at(kind: str, offset: int, **fields) -> RawRecord:
        return RawRecord(kind, orjson.dumps(fields), topic=f"p.{kind}", offset=offset)

    async def body(proc, model, store, states):
        proc.stamp_live = True
        await proc.items([rec("items", item_id=1, text="movie 1")])
        await proc.events(
            [
                at("clicks", 7, event_id="a", user_id="u1", item_id=1, ts=T0),
                at("clicks", 9, event_id="b", user_id="u1", item_id=1, ts=T0 + 1),
                at("views", 4, event_id="c", user_id="u1", item_id=1, ts=T0 + 2),
            ]
        )
        await proc.events([at("clicks", 12, event_id="d", user_id="u1", item_id=1, ts=T0 + 3)])
        state = InterestState.from_bytes(states["u1"])
        assert state.live_from == {"p.clicks": 7, "p.views": 4}
        assert state.event_count == 4
        await proc.events([at("clicks", 13, type="forget", event_id="f", user_id="u1", ts=T0 + 9)])
        assert InterestState.from_bytes(states["u1"]).live_from == {"p.clicks": 7, "p.views": 4}

    asyncio.run(with_processor(body))


def test_the_backfill_takes_what_lies_before_the_live_stamp_and_after_its_last_merge() -> None:
    from streams.rollout.backfill import _before

    live = InterestState.empty(8, {"short": 86400.0})
    live.live_from = {"t": 50}
    live.backfilled_to = {"t": 20}
    assert [
        o for o in (10, 20, 21, 49, 50, 70) if _before(RawRecord("clicks", b"", "t", 0, o), live)
    ] == [21, 49]
    assert _before(RawRecord("clicks", b"", "other", 0, 10**9), live)  # no stamp in that topic


def test_a_head_folds_its_history_vectors_and_serves_items_by_dot_product() -> None:
    """With a learned head the user's sum is of x = A·e + h, items are stored as [y, b]
    (what is searched) with x in their payload, and the user as [normalize(s), 1]."""
    from streams.head import Head

    rng = np.random.default_rng(3)
    d = 4
    head = Head(
        ["1", "2"],  # item 3 is new to the head: its text part only
        rng.normal(size=(d, 8)),
        rng.normal(size=(d, 8)),
        rng.normal(size=(2, d)),
        rng.normal(size=(2, d)),
        np.array([0.5, -0.25]),
        86_400.0,
    )

    async def body() -> None:
        model = FakeModel(dimension=8, max_length=64)
        store = QdrantStore.connect()
        states: dict = {}
        async with Encoder(model, max_wait_ms=1) as enc:
            proc = EventProcessor(enc, store, states, config(), head=head)
            await proc.start()
            await proc.items([rec("items", item_id=i, text=f"movie {i}") for i in (1, 2, 3)])
            e = {i: model.expected(f"movie {i}") for i in ("1", "2", "3")}
            x = {i: head.history_of(e[i][None], head.rows([i]))[0] for i in e}
            got = store.item_vectors(proc.version, ["1", "3"])
            np.testing.assert_allclose(got["1"], x["1"], atol=1e-5)
            np.testing.assert_allclose(got["3"], e["3"] @ head.A.T, atol=1e-5)  # no id part
            clicks = [
                rec("clicks", event_id="a", user_id="u", item_id=1, ts=T0, rating=1.0),
                rec("views", event_id="b", user_id="u", item_id=3, ts=T0 + 3600),
            ]
            await proc.events(clicks)
            # Every interaction weighs 1 for a head (its training), a low rating too.
            s = 2 ** (-1 / 24) * x["1"] + x["3"]
            user = store.user("u", proc.version)
            assert user is not None
            expected = np.append(s / np.linalg.norm(s), 1.0)
            np.testing.assert_allclose(user.vector["short"], expected, atol=1e-5)
            hits = store.recommend("u", k=3)
            items = {i: head.items_of(e[i][None], head.rows([i]))[0] for i in e}
            scores = {i: float(expected @ items[i]) for i in e}
            assert [h.payload["item_id"] for h in hits] == sorted(scores, key=lambda i: -scores[i])
            assert [h.score for h in hits] == pytest.approx(sorted(scores.values())[::-1], abs=1e-4)

    asyncio.run(body())


@pytest.mark.parametrize("window", [64, 4096])
def test_a_replayed_long_history_counts_once_and_what_is_too_late_is_dead_lettered(
    window: int,
) -> None:
    """1,000 events of one user, then all of them again: 1,000 counted. With a window
    smaller than the history, the replayed events it let go of go to the dead letters as
    TooLate (with their record), the rest are duplicates; nothing is dropped silently."""

    def click(n: int) -> RawRecord:
        fields = {"event_id": f"h{n}", "user_id": "u1", "item_id": n % 7, "ts": T0 + n}
        return RawRecord("clicks", orjson.dumps(fields), "clicks", 0, n, (), b"u1")

    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=i, text=f"movie {i}") for i in range(7)])
        first = [click(n) for n in range(1000)]
        for start in range(0, 1000, 250):
            out = await proc.events(first[start : start + 250])
            assert not out.dead and out.duplicates == 0
        vector = InterestState.from_bytes(states["u1"]).sums["short"].copy()
        again = await proc.events([click(n) for n in range(1000)])
        state = InterestState.from_bytes(states["u1"])
        assert state.event_count == 1000 and len(state.seen) <= window
        np.testing.assert_array_equal(state.sums["short"], vector)
        late = [r for r, e in again.dead if type(e).__name__ == "TooLate"]
        assert len(late) == len(again.dead) and len(late) + again.duplicates == 1000
        assert len(late) == max(0, 1000 - window)
        assert all(r.key == b"u1" for r in late)
        if late:
            assert "too late to tell it from a duplicate" in str(again.dead[0][1])

    asyncio.run(with_processor(body, dedupe_window=window))


def test_an_allowed_lateness_dead_letters_events_older_than_the_watermark_minus_it() -> None:
    def click(event_id: str, ts: float) -> RawRecord:
        fields = {"event_id": event_id, "user_id": "u1", "item_id": 1, "ts": ts}
        return RawRecord("clicks", orjson.dumps(fields), "clicks", 0, 0, (), b"u1")

    async def body(proc, model, store, states):
        await proc.items([rec("items", item_id=1, text="a movie")])
        out = await proc.events([click("now", T0 + 7200), click("late", T0 + 3700)])
        assert not out.dead  # within the hour
        out = await proc.events([click("later", T0 + 3500)])
        assert [type(e).__name__ for _, e in out.dead] == ["TooLate"]
        assert InterestState.from_bytes(states["u1"]).event_count == 2

    asyncio.run(with_processor(body, allowed_lateness_s=3600.0))


@pytest.mark.parametrize(
    ("extra", "hidden"),
    [((), 0), ((1.0, math.inf), 0), ((1.0, 3.0, 30.0, math.inf), 0), ((1.0, math.inf), 5)],
    ids=["one sum", "readout", "five sums", "readout and MLP"],
)
def test_a_head_that_decays_by_events_folds_in_arrival_order_and_backfills_before_live(
    extra: tuple[float, ...], hidden: int
) -> None:
    """An events-clock head: each event weighs 2^(-1/h) less per event that arrived after
    it, whatever its time. A roll-out's backfill folds the history into a state of the
    head's dimension and merges it in as if it had arrived before what the live stream
    folded meanwhile. A head with extra sums keeps one per half-life and serves
    ``[Σ_k W_k normalize(s_k), 1]`` (plus its MLP's term, if any)."""
    from streams.head import Head, stream_half_lives
    from streams.rollout.backfill import Backfill
    from streams.settings import Settings

    rng = np.random.default_rng(4)
    d, h = 4, 2.0
    head = Head(
        ["1", "2", "3"],
        rng.normal(size=(d, 8)),
        rng.normal(size=(d, 8)),
        rng.normal(size=(3, d)),
        rng.normal(size=(3, d)),
        np.zeros(3),
        None,
        half_life_events=h,
        extra_half_lives=extra,
        readout=rng.normal(size=(1 + len(extra), d, d)) if extra else None,
        mlp=(
            (
                rng.normal(size=(hidden, (1 + len(extra)) * d)),
                rng.normal(size=hidden),
                rng.normal(size=(d, hidden)),
            )
            if hidden
            else None
        ),
    )

    def served(order: list[np.ndarray]) -> np.ndarray:
        directions = []
        for half in head.half_lives:
            s = sum(2 ** (-(len(order) - 1 - k) / half) * v for k, v in enumerate(order))
            directions.append(s / np.linalg.norm(s))
        return head.query(directions)

    def click(event_id: str, item: int, ts: float, offset: int) -> RawRecord:
        fields = {"event_id": event_id, "user_id": "u", "item_id": item, "ts": ts}
        return RawRecord("clicks", orjson.dumps(fields), "clicks", 0, offset, (), b"u")

    async def body() -> None:
        model = FakeModel(dimension=8, max_length=64)
        store = QdrantStore.connect()
        states: dict = {}
        half_lives = stream_half_lives(head, HALF)
        assert half_lives["short"] == h
        async with Encoder(model, max_wait_ms=1) as enc:
            proc = EventProcessor(
                enc, store, states, config(half_lives=half_lives), stamp_live=True, head=head
            )
            await proc.start()
            await proc.items([rec("items", item_id=i, text=f"movie {i}") for i in (1, 2, 3)])
            x = {
                i: head.history_of(model.expected(f"movie {i}")[None], head.rows([str(i)]))[0]
                for i in (1, 2, 3)
            }
            # Live: item 3 then item 1, the later one with the earlier time.
            await proc.events([click("l1", 3, T0 + 50, 10), click("l2", 1, T0 + 5, 11)])
            user = store.user("u", proc.version)
            assert user is not None
            np.testing.assert_allclose(user.vector["short"][:d], served([x[3], x[1]]), atol=1e-5)
            assert user.vector["short"][d] == 1.0
            # The backfill: two events of the history, before the live stamp (offset 10).
            backfill = Backfill(Settings(), "g", proc, asyncio.Lock(), kinds={"clicks": "clicks"})
            await backfill._events([click("b1", 2, T0, 0), click("b2", 1, T0 + 1, 1)])
            order = [x[2], x[1], x[3], x[1]]  # history first, then the live events
            user = store.user("u", proc.version)
            assert user is not None
            np.testing.assert_allclose(user.vector["short"][:d], served(order), atol=1e-5)
            assert InterestState.from_bytes(states["u"]).event_count == 4

    asyncio.run(body())


def test_states_kept_decoded_stay_within_their_byte_budget() -> None:
    state = InterestState.empty(8, HALF)
    data = [state.to_bytes() + bytes(k) for k in range(4)]  # distinct objects, known sizes
    size = len(data[0])
    kept = DecodedStates(max_bytes=2 * size + 3)  # u1 and u2 fit, not u0 besides
    for k in range(3):
        kept.put(f"u{k}", data[k], state)
    assert len(kept) == 2 and kept.bytes == 2 * size + 3  # the oldest written went first
    assert kept.take("u0", data[0]) is None
    assert kept.take("u2", data[1]) is None  # not the object it wrote: decoded afresh
    assert kept.take("u2", data[2]) is None  # and taken out either way
    assert kept.take("u1", data[1]) is state and kept.bytes == 0 and len(kept) == 0
    DecodedStates(max_bytes=size - 1).put("u0", data[0], state)  # too big: never kept
    none = DecodedStates(max_bytes=0)
    none.put("u0", data[0], state)
    assert len(none) == 0
