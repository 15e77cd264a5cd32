"""Property and fuzz tests (hypothesis): interest math, the record decoders, the store guard."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streams.errors import RecordError
from streams.interest import REBASE_AT, InterestState, SeenIds
from streams.records import Limits, decode_event, decode_feedback, decode_item
from streams.store import Store, UserPoint, open_store

HALF = {"short": 86_400.0, "long": 30 * 86_400.0}
DIM = 4
YEAR = 365.25 * 86_400
LIMITS = Limits()
USERS = itertools.count()

vectors = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=DIM, max_size=DIM).filter(
    lambda v: math.hypot(*v) > 0.1
)
events = st.lists(
    st.tuples(
        st.floats(1_000_000_000, 1_000_000_000 + 2 * YEAR, allow_nan=False),  # ts
        st.sampled_from([1.0, 0.5, 2.0, -1.0, 0.25]),  # weight
        vectors,
    ),
    min_size=1,
    max_size=40,
)


def folded(evs, order, dedupe_window: int = 256) -> InterestState:
    state = InterestState.empty(DIM, HALF, dedupe_window)
    for i in order:
        ts, w, v = evs[i]
        state.fold(f"e{i}", ts, w, np.asarray(v) / np.linalg.norm(v))
    return state


def close(a: InterestState, b: InterestState) -> None:
    da, db = a.directions(), b.directions()
    for name in HALF:
        # Directions are unit vectors, or zero where the weights cancel (then both are ~0).
        np.testing.assert_allclose(da[name], db[name], atol=2e-4)


@settings(max_examples=150, deadline=None)
@given(events, st.randoms(use_true_random=False), st.integers(0, 20))
def test_any_shuffle_and_duplication_gives_the_in_order_vector(evs, rnd, repeats) -> None:
    in_order = sorted(range(len(evs)), key=lambda i: evs[i][0])
    shuffled = list(range(len(evs))) + [rnd.randrange(len(evs)) for _ in range(repeats)]
    rnd.shuffle(shuffled)
    a, b = folded(evs, in_order), folded(evs, shuffled)
    assume(all(np.linalg.norm(s) > 1e-3 * np.abs(s).sum() for s in a.sums.values()))
    close(a, b)
    assert a.event_count == b.event_count == len(evs)


@settings(max_examples=100, deadline=None)
@given(events, st.floats(-60 * YEAR, 0))
def test_rebasing_the_landmark_changes_no_direction(evs, shift) -> None:
    a = folded(evs, range(len(evs)))
    b = InterestState.empty(DIM, HALF)
    b.landmark = evs[0][0] + shift  # an old landmark: b rebases as it folds
    for i, (ts, w, v) in enumerate(evs):
        b.fold(f"e{i}", ts, w, np.asarray(v) / np.linalg.norm(v))
    assume(all(np.linalg.norm(s) > 1e-3 * np.abs(s).sum() for s in a.sums.values()))
    close(a, b)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(631_152_000, 631_152_000 + 70 * YEAR), vectors), min_size=1, max_size=60
    ),
    st.randoms(use_true_random=False),
)
def test_decades_of_timestamps_in_any_order_never_overflow(evs, rnd) -> None:
    order = list(range(len(evs)))
    rnd.shuffle(order)
    state = InterestState.empty(DIM, HALF)
    for i in order:
        ts, v = evs[i]
        state.fold(f"e{i}", ts, 1.0, np.asarray(v) / np.linalg.norm(v))
    fastest = max(math.log(2) / h for h in HALF.values())
    for name, s in state.sums.items():
        assert np.isfinite(s).all(), name
        assert np.isfinite(state.directions()[name]).all()
    # The newest event's exponent stays within the rebasing bound.
    assert fastest * (max(ts for ts, _ in evs) - state.landmark) <= REBASE_AT + 1e-9
    again = InterestState.from_bytes(state.to_bytes())
    for name in HALF:
        np.testing.assert_array_equal(again.sums[name], state.sums[name])


# -- decoders: any input is a record or a RecordError, never anything else ------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)  # what JSON encoders write; longer numbers: below
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values, st.integers(1_500_000_000, 1_800_000_000), st.sampled_from(["u1", "", " ", "9"])
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        k: field_values
        for k in ("event_id", "user_id", "item_id", "ts", "text", "rating", "type", "reward")
    }
    | {"signal": st.sampled_from(["positive", "negative", "meh"])},
)


def decodes_or_refuses(raw: bytes) -> None:
    for decode in (
        lambda r: decode_event("clicks", r, LIMITS),
        lambda r: decode_event("reviews", r, LIMITS),
        lambda r: decode_item(r, LIMITS),
        lambda r: decode_feedback(r, LIMITS),
    ):
        # A RecordError is dead-lettered with its type; anything else would crash the agent.
        with contextlib.suppress(RecordError):
            decode(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused(raw: bytes) -> None:
    decodes_or_refuses(raw)


@settings(max_examples=500, deadline=None)
@given(event_like)
def test_any_json_object_decodes_or_is_refused(obj) -> None:
    decodes_or_refuses(orjson.dumps(obj))


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # nested 100,000 deep
        b'{"event_id": "a", "user_id": "u", "item_id": 1, "ts": ' + b"9" * 1_000_000 + b"}",
        b'{"event_id": "a", "user_id": "u", "item_id": 1, "ts": Infinity}',
        b'{"event_id": "a", "user_id": "u", "item_id": 1, "ts": 1e400}',
        b'{"event_id": "a", "user_id": "\\ud800", "item_id": 1, "ts": 1600000000}',
    ],
    ids=["deep", "million-digits", "infinity", "overflow", "lone-surrogate"],
)
def test_hostile_records_are_refused(raw: bytes) -> None:
    with pytest.raises(RecordError):
        decode_event("clicks", raw, LIMITS)


# -- the store: whatever order two writers arrive in, the newest state stays -------------------


@pytest.fixture(scope="module")
def edge_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = open_store(path=Path(tmp_path_factory.mktemp("edge")) / "q", backend="edge")
    store.ensure_version("v1", dimension=2)
    return store


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.integers(1, 50), st.integers(0, 10)), min_size=1, max_size=8),
)
def test_the_newest_write_wins_in_any_order(edge_store: Store, writes) -> None:
    user = f"u{next(USERS)}"  # a fresh user per example
    for count, at in writes:
        vec = np.asarray([count, at + 1], dtype=np.float32)
        point = UserPoint(user, {"short": vec, "long": vec}, float(at), count, [])
        edge_store.upsert_users("v1", [point])
    stored = edge_store.user(user)
    newest = max(writes)
    assert (stored.payload["event_count"], stored.payload["updated_at"]) == newest


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 2**64 - 1)),
            st.tuples(st.just("pop"), st.none()),
            st.tuples(st.just("bytes"), st.none()),  # through the state's bytes and back
        ),
        max_size=300,
    )
)
def test_the_remembered_ids_behave_as_an_ordered_dict(ops: list[tuple[str, int | None]]) -> None:
    """SeenIds (arrays, a waiting dict, a cut-off front) against an OrderedDict model."""
    seen, model = SeenIds(), OrderedDict[int, float]()
    for n, (op, key) in enumerate(ops):
        if op == "add" and key is not None and key not in model:
            assert key not in seen
            seen.add(key, float(n))
            model[key] = float(n)
        elif op == "pop" and model:
            assert seen.oldest() == next(iter(model.items()))
            seen.pop_oldest()
            model.popitem(last=False)
        elif op == "bytes":
            seen = SeenIds(*seen.arrays())
        assert len(seen) == len(model) and seen.items() == list(model.items())
    assert all(key in seen and seen[key] == ts for key, ts in model.items())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 40), unique=True, max_size=30),
    st.lists(st.integers(0, 40), unique=True, max_size=30),
)
def test_joining_remembered_ids_keeps_each_once_in_order(
    older: list[int], newer: list[int]
) -> None:
    seen, other = SeenIds(), SeenIds()
    for key in older:
        seen.add(key, float(key))
    for key in newer:
        other.add(key, float(key))
    seen.update(other)
    model = OrderedDict((key, float(key)) for key in older)
    model.update((key, float(key)) for key in newer if key not in model)
    assert seen.items() == list(model.items())
