"""Forward decay against a direct numpy oracle."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import orjson
import pytest

from streams.interest import (
    DUPLICATE,
    FOLDED,
    REBASE_AT,
    TOO_LATE,
    InterestState,
    StateFormatError,
    directions_of,
    event_weight,
    top_concepts,
    top_concepts_of,
)

HALF = {"short": 86_400.0, "long": 30 * 86_400.0}


def oracle(events, half_life: float, now: float) -> np.ndarray:
    """Σ w exp(-λ (now - t)) e, computed directly, normalised."""
    lam = math.log(2) / half_life
    s = sum(w * math.exp(-lam * (now - t)) * e for _, t, w, e in events)
    return s / np.linalg.norm(s)


def random_events(n: int, seed: int = 0, span: float = 90 * 86_400.0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        e = rng.standard_normal(16)
        out.append(
            (
                f"e{i}",
                1.6e9 + rng.uniform(0, span),
                float(rng.choice([1.0, 0.5, 2.0])),
                e / np.linalg.norm(e),
            )
        )
    return out


@pytest.mark.parametrize("order", ["sorted", "shuffled", "reversed"])
def test_directions_match_the_oracle_in_any_order(order: str) -> None:
    events = random_events(200)
    if order == "sorted":
        events.sort(key=lambda ev: ev[1])
    elif order == "reversed":
        events.sort(key=lambda ev: -ev[1])
    else:
        np.random.default_rng(1).shuffle(events)
    state = InterestState.empty(16, HALF)
    for ev in events:
        assert state.fold(*ev)
    now = max(t for _, t, _, _ in events)
    for name, h in HALF.items():
        np.testing.assert_allclose(state.directions()[name], oracle(events, h, now), atol=1e-5)
    assert state.event_count == 200


def test_duplicates_are_counted_once() -> None:
    events = random_events(20)
    state = InterestState.empty(16, HALF)
    for ev in events + events[:5]:
        state.fold(*ev)
    assert state.event_count == 20
    now = max(t for _, t, _, _ in events)
    np.testing.assert_allclose(
        state.directions()["short"], oracle(events, HALF["short"], now), atol=1e-5
    )


def test_long_gaps_rebase_without_overflow() -> None:
    # 10 years of events with a 1-hour half-life: exp would overflow without rebasing.
    half = {"short": 3600.0}
    events = random_events(300, span=10 * 365 * 86_400.0)
    events.sort(key=lambda ev: ev[1])
    state = InterestState.empty(16, half)
    for ev in events:
        state.fold(*ev)
    assert all(np.isfinite(s).all() for s in state.sums.values())
    assert math.log(2) / 3600 * (events[-1][1] - state.landmark) <= REBASE_AT
    now = events[-1][1]
    np.testing.assert_allclose(
        state.directions()["short"], oracle(events[-50:], 3600.0, now), atol=1e-5
    )


def test_round_trip_through_bytes() -> None:
    state = InterestState.empty(16, HALF)
    assert InterestState.from_bytes(state.to_bytes()).landmark is None
    for ev in random_events(10):
        state.fold(*ev, item_id=ev[0])
    again = InterestState.from_bytes(state.to_bytes())
    for name in HALF:
        np.testing.assert_array_equal(again.sums[name], state.sums[name])
    assert (again.landmark, again.event_count, again.updated_at) == (
        state.landmark,
        state.event_count,
        state.updated_at,
    )
    assert list(again.recent_items) == list(state.recent_items)
    assert again.half_lives == HALF and again.dedupe_window == state.dedupe_window
    assert again.fold("e3", 1.6e9, 1.0, np.ones(16) / 4) is False  # dedupe survives


def test_foreign_bytes_are_refused_clearly() -> None:
    with pytest.raises(StateFormatError, match="not an interest state"):
        InterestState.from_bytes(b'{"sums": []}')


def test_dedupe_window_is_bounded() -> None:
    state = InterestState.empty(16, HALF, dedupe_window=8)
    for ev in random_events(50):
        state.fold(*ev)
    assert len(state.seen) == 8


def test_a_long_history_replayed_counts_once_with_a_bounded_window() -> None:
    """300 events, then the same 300 again (any order): counted once, whatever the
    window. The ones let go of are refused as too late, the rest as duplicates."""
    events = sorted(random_events(300, seed=5), key=lambda ev: ev[1])  # first time in order
    for window in (0, 16, 256, 4096):
        state = InterestState.empty(16, HALF, dedupe_window=window)
        for ev in events:
            assert state.fold(*ev)
        sums = {n: s.copy() for n, s in state.sums.items()}
        verdicts = [state.verdict(eid, ts) for eid, ts, _, _ in events[::-1]]
        assert not any(state.fold(*ev) for ev in events[::-1])
        assert state.event_count == 300 and len(state.seen) <= window
        for name in HALF:
            np.testing.assert_array_equal(state.sums[name], sums[name])
        assert set(verdicts) <= {DUPLICATE, TOO_LATE}
        if window >= 300:
            assert set(verdicts) == {DUPLICATE} and state.floor is None


def test_the_floor_refuses_only_what_it_cannot_tell_apart() -> None:
    state = InterestState.empty(4, HALF, dedupe_window=2)
    for n, ts in enumerate((10.0, 30.0, 20.0)):  # lets go of the event at 10
        state.fold(f"e{n}", 1.7e9 + ts, 1.0, np.ones(4))
    assert state.floor == 1.7e9 + 10
    assert state.verdict("late", 1.7e9 + 10) == TOO_LATE
    assert state.verdict("late", 1.7e9 + 11) == FOLDED  # later than the floor: exact
    assert state.verdict("e2", 1.7e9 + 20) == DUPLICATE
    # An allowed lateness raises the floor to the watermark minus it, and lets go early.
    assert state.floor_at(lateness=5.0) == 1.7e9 + 25
    assert state.verdict("late", 1.7e9 + 24, lateness=5.0) == TOO_LATE
    state.fold("e3", 1.7e9 + 40, 1.0, np.ones(4), lateness=5.0)
    assert list(state.seen.values()) == [1.7e9 + 40] and state.floor == 1.7e9 + 30
    again = InterestState.from_bytes(state.to_bytes())
    assert again.floor == state.floor and dict(again.seen) == dict(state.seen)


def test_weights_by_type_and_rating() -> None:
    weights = {"click": 1.0, "view": 0.5, "review": 2.0, "negative": -1.0}
    assert event_weight("view", None, weights) == 0.5
    assert event_weight("click", 5.0, weights) == 2.0
    assert event_weight("click", 3.0, weights) == 1.0
    assert event_weight("click", 1.0, weights) == 0.5
    assert event_weight("negative", 5.0, weights) == -1.0


def test_a_user_of_low_ratings_still_points_toward_what_they_watched() -> None:
    """Every rating weighs more than 0: a user who rated everything 1 or 2 is served the
    items like the ones they watched, not the ones least like them (issue: user 599 of
    the demo got negative scores for everything)."""
    weights = {"click": 1.0, "view": 0.5, "review": 2.0, "negative": -1.0}
    rng = np.random.default_rng(2)
    watched = rng.normal(size=(5, 16))
    watched /= np.linalg.norm(watched, axis=1, keepdims=True)
    state = InterestState.empty(16, HALF)
    for n, (e, rating) in enumerate(zip(watched, [1.0, 2.0, 1.5, 0.5, 2.0], strict=True)):
        state.fold(f"e{n}", 1.7e9 + n, event_weight("view", rating, weights), e)
    user = state.directions()["short"]
    assert (watched @ user > 0).all()


def test_top_concepts_is_a_softmax() -> None:
    concepts = np.eye(4)
    user = np.array([0.9, 0.1, 0.0, 0.0])
    top = top_concepts(user, concepts, ["a", "b", "c", "d"], temperature=0.1, k=3)
    assert [label for label, _ in top] == ["a", "b", "c"]
    logits = user / 0.1
    p = np.exp(logits) / np.exp(logits).sum()
    assert top[0][1] == pytest.approx(p[0], abs=1e-4)
    assert top_concepts(np.zeros(4), concepts, ["a", "b", "c", "d"], 0.1, 3) == []


def test_many_states_at_once_equal_one_at_a_time() -> None:
    """The stream computes a window's users together (directions_of, top_concepts_of)."""
    rng = np.random.default_rng(5)
    states = []
    for n in range(4):
        state = InterestState.empty(8, HALF)
        for k in range(n):  # the first state has no events: a zero vector, no concepts
            state.fold(f"{n}-{k}", 1.7e9 + k, 1.0, rng.standard_normal(8))
        states.append(state)
    together = directions_of(states)
    concepts = rng.standard_normal((5, 8))
    labels = list("abcde")
    rows = top_concepts_of(together["short"], concepts, labels, 0.1, 3)
    for i, state in enumerate(states):
        alone = state.directions()
        for name in HALF:
            np.testing.assert_allclose(together[name][i], alone[name], rtol=0, atol=1e-7)
        assert rows[i] == top_concepts(alone["short"], concepts, labels, 0.1, 3)
    assert rows[0] == []
    assert all(len(r) == 3 for r in rows[1:])
    assert directions_of([]) == {}


def test_the_training_history_is_bounded_and_survives_serialization() -> None:
    from streams.interest import TRAIN_HISTORY

    state = InterestState.empty(4, HALF)
    for k in range(TRAIN_HISTORY + 5):
        state.fold(f"e{k}", 1.7e9 + k, 0.5 if k % 2 else 1.0, np.ones(4), item_id=f"i{k}")
    assert len(state.history) == TRAIN_HISTORY
    assert state.history[-1] == (f"i{TRAIN_HISTORY + 4}", 1.7e9 + TRAIN_HISTORY + 4, 1.0)
    again = InterestState.from_bytes(state.to_bytes())
    assert list(again.history) == list(state.history)
    again.fold("later", 1.8e9, 1.0, np.ones(4), item_id="x")
    assert len(again.history) == TRAIN_HISTORY  # still bounded after a round trip


def older_layout(state: InterestState, magic: bytes, tail: bytes | None = None) -> bytes:
    """``state`` as IS2 wrote it (no dedupe floor, ids without times), or as IS1 with
    ``tail`` (the recent item ids alone)."""
    from streams.interest import FLOOR, HEADER

    data = state.to_bytes()
    rest = data[HEADER.size + FLOOR.size :]
    cut = rest.index(b'{"recent"')
    arrays = rest[: cut - 8 * len(state.seen)]  # names, sums, ids: the times dropped
    return magic + data[3 : HEADER.size] + arrays + (rest[cut:] if tail is None else tail)


def test_a_state_written_before_the_history_still_reads() -> None:
    state = InterestState.empty(4, HALF)
    state.fold("e1", 1.7e9, 1.0, np.ones(4), item_id="a")
    again = InterestState.from_bytes(older_layout(state, b"IS1", orjson.dumps(["a"])))
    assert list(again.recent_items) == ["a"] and not again.history
    np.testing.assert_array_equal(again.sums["short"], state.sums["short"])
    assert again.verdict("e1", 1.7e9) == DUPLICATE


def test_a_state_without_id_times_errs_on_the_side_of_refusing() -> None:
    whole = InterestState.empty(4, HALF, dedupe_window=3)
    for n in range(3):
        whole.fold(f"e{n}", 1.7e9 + n, 1.0, np.ones(4))
    again = InterestState.from_bytes(older_layout(whole, b"IS2"))
    assert again.floor is None  # nothing was let go of: every id is still there
    assert again.verdict("e1", 1.7e9 + 1) == DUPLICATE and again.verdict("new", 1.0) == FOLDED
    whole.fold("e3", 1.7e9 + 3, 1.0, np.ones(4))  # lets go of e0
    again = InterestState.from_bytes(older_layout(whole, b"IS2"))
    assert again.floor == 1.7e9 + 3  # e0's time is unknown: as late as the watermark
    assert again.verdict("e0", 1.7e9) == TOO_LATE


EVENTS = {"short": 3.0, "long": 50.0}  # half-lives in events (a head that decays by events)


def test_decay_by_events_weighs_each_event_by_how_many_arrived_after_it() -> None:
    """In arrival order, whatever the event times; rebasing (exponents past REBASE_AT after
    about 260 events at 3) changes nothing."""
    events = random_events(400, seed=5)  # random times: arrival order is not time order
    state = InterestState.empty(16, EVENTS)
    for eid, ts, w, e in events:
        assert state.fold(eid, ts, w, e, by_events=True)
    assert not state.fold(*events[3][:3], events[3][3], by_events=True)  # still a duplicate
    n = len(events)
    for name, h in EVENTS.items():
        s = sum(w * 2 ** (-(n - 1 - k) / h) * e for k, (_, _, w, e) in enumerate(events))
        np.testing.assert_allclose(state.directions()[name], s / np.linalg.norm(s), atol=1e-6)


@pytest.mark.parametrize("by_events", [False, True])
@pytest.mark.parametrize("split", [0, 7, 20, 40])
def test_merging_a_split_of_the_events_equals_folding_them_all(split: int, by_events: bool) -> None:
    """By event time in any split; by events, the backfill's (older) events arrived first."""
    from streams.interest import merge

    halves = EVENTS if by_events else HALF
    events = random_events(40, seed=3, span=3 * 365 * 86_400.0)  # landmarks far apart
    whole = InterestState.empty(16, halves)
    older, newer = InterestState.empty(16, halves), InterestState.empty(16, halves)
    for i, (eid, ts, w, e) in enumerate(events):
        whole.fold(eid, ts, w, e, item_id=f"i{i % 9}", by_events=by_events)
        part = older if i < split else newer
        part.fold(eid, ts, w, e, item_id=f"i{i % 9}", by_events=by_events)
    merged = merge(older, newer, by_events)
    if by_events and 0 < split < 40:  # the shift matters: without it the weights differ
        unshifted = merge(older, newer).directions()["short"]
        assert not np.allclose(unshifted, whole.directions()["short"], atol=1e-3)
    for name in halves:
        np.testing.assert_allclose(merged.directions()[name], whole.directions()[name], atol=1e-6)
    assert merged.event_count == whole.event_count == 40
    assert merged.updated_at == whole.updated_at
    assert set(merged.seen) == set(whole.seen)
    assert list(merged.recent_items) == list(whole.recent_items)
    assert list(merged.history) == list(whole.history)
    assert not merged.fold(*events[0][:3], events[0][3])  # still a duplicate


def test_roll_out_bookkeeping_survives_serialization_and_merge() -> None:
    from streams.interest import merge

    live = InterestState.empty(16, HALF)
    live.live_from = {"clicks": 12}
    live.backfilled_to = {"clicks": 3}
    back = InterestState.empty(16, HALF)
    back.backfilled_to = {"clicks": 9, "views": 4}
    back.forgotten_at = 1.6e9
    again = InterestState.from_bytes(live.to_bytes())
    assert (again.live_from, again.backfilled_to) == ({"clicks": 12}, {"clicks": 3})
    merged = merge(back, again)
    assert merged.live_from == {"clicks": 12}
    assert merged.backfilled_to == {"clicks": 9, "views": 4}
    assert merged.forgotten_at == 1.6e9
    plain = InterestState.from_bytes(InterestState.empty(16, HALF).to_bytes())
    assert plain.live_from == {} and plain.backfilled_to == {}


def test_a_decoded_state_takes_little_more_memory_than_its_bytes() -> None:
    """A worker keeps thousands of states decoded (DecodedStates, bounded by their bytes);
    with a dict of Python ints a full dedupe window took 8.6 times its bytes."""
    state = InterestState.empty(128, {"short": 10.0, "long": 1e12}, dedupe_window=4096)
    for n in range(5000):
        state.fold(f"e{n}", 1.7e9 + n, 1.0, np.ones(128), item_id=f"item-{n % 300}")
    data = state.to_bytes()
    tracemalloc.start()
    try:
        states = [InterestState.from_bytes(data) for _ in range(10)]
        decoded, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(states[0].seen) == 4096
    assert decoded / len(states) < 1.5 * len(data)
