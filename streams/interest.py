"""Forward-decayed interest vectors (DESIGN.md, "Interest math").

For each half-life h the state keeps ``S_h = Σ w_i · exp(λ_h (t_i - L)) · e_i`` with
``λ_h = ln 2 / h``, landmark ``L`` and unit vectors ``e_i``. The vector at time T is
``S_h · exp(-λ_h (T - L))``: only its length decays, so its *direction*, all a cosine index
sees, changes only when events arrive. The sum does not depend on order, so late and
out-of-order events need no special case. When an exponent would grow past REBASE_AT the
landmark moves forward and the sums are scaled to match.

    state = InterestState.empty(dimension=384, half_lives={"short": 86400, "long": 2592000})
    state.fold("e1", ts=1_700_000_000, weight=1.0, vector=e)   # False for a repeated event_id
    state.directions()    # {"short": unit vector, "long": unit vector}

Dedupe (DESIGN.md, "Invariants": an event counts once). The state remembers the ids of
its last ``dedupe_window`` events with their event times, and a *floor*: the latest event
time among the ids it has let go of. An event at or before the floor cannot be told from a
duplicate, so it is refused as too late (the worker dead-letters it as ``TooLate``); every
event after the floor is checked exactly. With an allowed lateness ``L`` the floor is also
at least the user's watermark (its latest event time) minus ``L``, and ids that old are let
go of early. So no event ever counts twice, memory stays bounded, and what is refused is
never silent.

The state also keeps the user's last ``TRAIN_HISTORY`` events as (item id, time, weight):
the history that the feedback agent pairs with a signal to make a training example.

The state serializes to compact bytes (``to_bytes`` / ``from_bytes``) for the Faust table
and its changelog: a fixed header, the float64 sums, the remembered event ids as 64-bit
hashes and their event times, then a JSON object with the recent item ids and the
training history. For 384 dimensions and two half-lives that is about 7 KB plus 16 bytes
per remembered event, written once per window that touches the user. Older states read:
``IS1`` (no history) and ``IS2`` (ids without times: each is taken to be as late as the
user's watermark, which errs on the side of refusing, never of counting twice).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import struct
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from streams.errors import StreamError

LN2 = math.log(2.0)
REBASE_AT = 60.0  # exp(60) ~ 1e26: far from float64 overflow, and rebasing is rare
MAGIC = b"IS3"  # IS2: seen ids without their times; IS1: also without the training history
TRAIN_HISTORY = 20  # events kept with time and weight for training examples
# magic, half-lives, dimension, dedupe window, history, seen ids, event count, landmark, updated
HEADER = struct.Struct("<3sBIIIIQdd")
FLOOR = struct.Struct("<d")  # IS3: the dedupe floor (NaN: none), after the header

FOLDED, DUPLICATE, TOO_LATE = "folded", "duplicate", "too late"  # InterestState.verdict


class StateFormatError(StreamError, ValueError):
    """Stored state bytes that this version cannot read."""


class SeenIds:
    """The remembered events: ``event_key()`` -> event time, oldest first.

    A worker keeps thousands of decoded states in memory (``DecodedStates``), so the ids stay
    in two numpy arrays, 16 bytes an id as in the state's bytes, rather than a dict of Python
    ints and floats (about 150 bytes an id). Ids added since the last compaction wait in a
    small dict; ids let go of are cut off the front.

        seen = SeenIds()
        seen.add(key, ts); key in seen; seen.oldest(); seen.pop_oldest()
    """

    COMPACT_AT = 64  # new ids move into the arrays once this many wait

    def __init__(self, keys: np.ndarray | None = None, times: np.ndarray | None = None) -> None:
        self._keys = np.zeros(0, np.uint64) if keys is None else np.asarray(keys, np.uint64)
        self._times = np.zeros(0, np.float64) if times is None else np.asarray(times, np.float64)
        if self._keys.shape != self._times.shape:
            raise ValueError("SeenIds: as many times as keys")
        self._start = 0  # the arrays' ids before it are let go of
        self._new: dict[int, float] = {}  # added since the last compaction, in order

    def __len__(self) -> int:
        return len(self._keys) - self._start + len(self._new)

    def __contains__(self, key: object) -> bool:
        if key in self._new:
            return True
        if self._start == len(self._keys) or not isinstance(key, int) or not 0 <= key < 2**64:
            return False
        return bool((self._keys[self._start :] == np.uint64(key)).any())

    def __iter__(self) -> Iterator[int]:
        yield from self._keys[self._start :].tolist()
        yield from self._new

    def keys(self) -> list[int]:
        return list(self)

    def values(self) -> list[float]:
        return [*self._times[self._start :].tolist(), *self._new.values()]

    def items(self) -> list[tuple[int, float]]:
        return list(zip(self.keys(), self.values(), strict=True))

    def __getitem__(self, key: int) -> float:
        if key in self._new:
            return self._new[key]
        if 0 <= key < 2**64:
            at = np.flatnonzero(self._keys[self._start :] == np.uint64(key))
            if len(at):
                return float(self._times[self._start + at[0]])
        raise KeyError(key)

    def add(self, key: int, ts: float) -> None:
        """Remember one id (the caller checked it is not remembered yet)."""
        self._new[key] = ts
        if len(self._new) >= self.COMPACT_AT:
            self.compact()

    def update(self, other: SeenIds) -> None:
        """Remember ``other``'s ids after these, in its order; ids remembered already stay
        where they are."""
        keys, times = other.arrays()
        self.compact()
        fresh = ~np.isin(keys, self._keys)
        self._keys = np.concatenate([self._keys, keys[fresh]])
        self._times = np.concatenate([self._times, times[fresh]])

    def oldest(self) -> tuple[int, float]:
        if self._start < len(self._keys):
            return int(self._keys[self._start]), float(self._times[self._start])
        return next(iter(self._new.items()))  # StopIteration when empty

    def pop_oldest(self) -> None:
        if self._start < len(self._keys):
            self._start += 1
        else:
            del self._new[next(iter(self._new))]

    def compact(self) -> None:
        """Move the waiting ids into the arrays and drop the let-go ones."""
        self._keys = np.concatenate(
            [self._keys[self._start :], np.fromiter(self._new, np.uint64, len(self._new))]
        )
        self._times = np.concatenate(
            [self._times[self._start :], np.fromiter(self._new.values(), np.float64)]
        )
        self._start, self._new = 0, {}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(keys, times), oldest first: what the state's bytes hold."""
        if not self._new:
            return self._keys[self._start :], self._times[self._start :]
        new = len(self._new)
        return (
            np.concatenate([self._keys[self._start :], np.fromiter(self._new, np.uint64, new)]),
            np.concatenate(
                [self._times[self._start :], np.fromiter(self._new.values(), np.float64, new)]
            ),
        )


@functools.lru_cache(maxsize=4096)  # an event's id is hashed for its verdict, then its fold
def event_key(event_id: str) -> int:
    """A 64-bit hash of an event id: what the dedupe window remembers (8 bytes per id)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclasses.dataclass
class InterestState:
    half_lives: dict[str, float]
    landmark: float | None
    sums: dict[str, np.ndarray]  # float64, one per half-life
    event_count: int = 0
    updated_at: float = 0.0  # latest event time folded in
    # event_key() -> event time of the remembered events, in arrival order (oldest first)
    seen: SeenIds = dataclasses.field(default_factory=SeenIds)
    dedupe_window: int = 4096
    # Events at or before this event time are refused: their ids may have been let go of.
    floor: float | None = None
    recent_items: deque[str] = dataclasses.field(default_factory=deque)  # newest last
    history_items: int = 200
    # (item id, event time, weight) of the last TRAIN_HISTORY events, in arrival order
    history: deque[tuple[str, float, float]] = dataclasses.field(
        default_factory=lambda: deque(maxlen=TRAIN_HISTORY)
    )
    # The user asked to be forgotten at this event time: events up to it never count again.
    forgotten_at: float | None = None
    # Roll-out bookkeeping of a new version's state (streams/backfill.py), per source topic:
    # the offset of the first event the live stream folded in, and the highest offset the
    # backfill merged in. The two never overlap, so no event counts twice.
    live_from: dict[str, int] = dataclasses.field(default_factory=dict)
    backfilled_to: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def empty(
        cls, dimension: int, half_lives: Mapping[str, float], dedupe_window: int = 4096
    ) -> InterestState:
        return cls(
            half_lives=dict(half_lives),
            landmark=None,
            sums={name: np.zeros(dimension) for name in half_lives},
            dedupe_window=dedupe_window,
        )

    def fold(
        self,
        event_id: str,
        ts: float,
        weight: float,
        vector: np.ndarray,
        item_id: str | None = None,
        lateness: float | None = None,
        by_events: bool = False,
    ) -> bool:
        """Add one event; False (and no change) when :meth:`verdict` is not ``FOLDED``: its
        event_id was seen already, or it is too late to tell.

        ``by_events``: the sums decay by events rather than by event time (a head trained
        so, streams/head.py): the event sits at the user's event count, so each weighs
        ``2^(-1/h)`` less per event that arrives after it. That depends on arrival order,
        which Kafka keeps for a user's events on one topic, not across topics; a late event
        weighs as the newest."""
        key = event_key(event_id)
        if self._verdict(key, ts, lateness) != FOLDED:
            return False
        self.seen.add(key, ts)
        self._let_go(lateness, max(self.updated_at, ts))
        if item_id is not None:
            item_id = sys.intern(item_id)  # one str per item, however many states hold it
            if item_id in self.recent_items:
                self.recent_items.remove(item_id)
            self.recent_items.append(item_id)
            while len(self.recent_items) > self.history_items:
                self.recent_items.popleft()
            self.history.append((item_id, ts, weight))
        at = float(self.event_count) if by_events else ts  # where the sums decay from
        if self.landmark is None:
            self.landmark = at
        fastest = max(LN2 / h for h in self.half_lives.values())
        if fastest * (at - self.landmark) > REBASE_AT:
            self._rebase(at)
        e = np.asarray(vector, dtype=np.float64)
        for name, h in self.half_lives.items():
            self.sums[name] += weight * math.exp(LN2 / h * (at - self.landmark)) * e
        self.event_count += 1
        self.updated_at = max(self.updated_at, ts)
        return True

    def verdict(self, event_id: str, ts: float, lateness: float | None = None) -> str:
        """``DUPLICATE`` for a remembered event id, ``TOO_LATE`` for an event at or before
        the floor (:meth:`floor_at`), else ``FOLDED``: what :meth:`fold` would do."""
        return self._verdict(event_key(event_id), ts, lateness)

    def _verdict(self, key: int, ts: float, lateness: float | None) -> str:
        if key in self.seen:
            return DUPLICATE
        floor = self.floor_at(lateness)
        return TOO_LATE if floor is not None and ts <= floor else FOLDED

    def floor_at(self, lateness: float | None = None) -> float | None:
        """The latest event time that is refused: the floor, raised to the watermark minus
        the allowed ``lateness`` (None: no lateness bound, the dedupe window alone)."""
        floor = self.floor
        if lateness is not None and self.event_count:
            late = self.updated_at - lateness
            floor = late if floor is None else max(floor, late)
        return floor

    def _let_go(self, lateness: float | None, watermark: float) -> None:
        """Forget the oldest ids beyond the window, and (with a lateness) the oldest that
        fell below the watermark minus the lateness; the floor rises to their times."""
        while self.seen:
            _, ts = self.seen.oldest()
            too_many = len(self.seen) > self.dedupe_window
            too_old = lateness is not None and ts < watermark - lateness
            if not (too_many or too_old):
                return
            self.seen.pop_oldest()
            self.floor = ts if self.floor is None else max(self.floor, ts)

    def forgets(self, ts: float) -> bool:
        """True for an event the user asked to forget (at or before the forget time)."""
        return self.forgotten_at is not None and ts <= self.forgotten_at

    def _rebase(self, new_landmark: float) -> None:
        assert self.landmark is not None
        for name, h in self.half_lives.items():
            self.sums[name] *= math.exp(LN2 / h * (self.landmark - new_landmark))
        self.landmark = new_landmark

    def directions(self) -> dict[str, np.ndarray]:
        """Unit vectors per half-life (zeros when the weights cancel out), float32."""
        out = {}
        for name, s in self.sums.items():
            norm = math.sqrt(s.dot(s))
            out[name] = (s / norm if norm > 0 else s).astype(np.float32)
        return out

    def to_bytes(self) -> bytes:
        names = list(self.half_lives)
        dimension = len(next(iter(self.sums.values()))) if self.sums else 0
        parts = [
            HEADER.pack(
                MAGIC,
                len(names),
                dimension,
                self.dedupe_window,
                self.history_items,
                len(self.seen),
                self.event_count,
                math.nan if self.landmark is None else self.landmark,
                self.updated_at,
            ),
            FLOOR.pack(math.nan if self.floor is None else self.floor),
        ]
        for name in names:
            encoded = name.encode()
            parts.append(struct.pack("<Bd", len(encoded), self.half_lives[name]) + encoded)
        parts.extend(np.ascontiguousarray(self.sums[n], dtype="<f8").tobytes() for n in names)
        keys, times = self.seen.arrays()
        parts.append(keys.astype("<u8", copy=False).tobytes())
        parts.append(times.astype("<f8", copy=False).tobytes())
        tail = {
            "recent": list(self.recent_items),
            "history": list(self.history),
            "forgotten_at": self.forgotten_at,
        }
        if self.live_from or self.backfilled_to:
            tail |= {"live_from": self.live_from, "backfilled_to": self.backfilled_to}
        parts.append(orjson.dumps(tail))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> InterestState:
        magic = data[:3]
        if magic not in (MAGIC, b"IS2", b"IS1") or len(data) < HEADER.size:
            raise StateFormatError(f"not an interest state (starts with {data[:3]!r})")
        _, n_names, dim, window, history, n_seen, count, landmark, updated = HEADER.unpack_from(
            data
        )
        pos = HEADER.size
        floor: float | None = None
        if magic == MAGIC:
            (floor,) = FLOOR.unpack_from(data, pos)
            pos += FLOOR.size
        half_lives = {}
        for _ in range(n_names):
            size, h = struct.unpack_from("<Bd", data, pos)
            pos += 9
            half_lives[data[pos : pos + size].decode()] = h
            pos += size
        sums = {}
        for name in half_lives:
            sums[name] = np.frombuffer(data, dtype="<f8", count=dim, offset=pos).copy()
            pos += 8 * dim
        keys = np.frombuffer(data, dtype="<u8", count=n_seen, offset=pos).astype(np.uint64)
        pos += 8 * n_seen
        if magic == MAGIC:
            times = np.frombuffer(data, dtype="<f8", count=n_seen, offset=pos).astype(np.float64)
            pos += 8 * n_seen
        else:  # no times kept: each as late as the watermark, and ids let go of before
            times = np.full(n_seen, updated)
            floor = updated if count > n_seen else None
        tail = orjson.loads(data[pos:])
        if magic == b"IS1":  # the recent items alone, no history
            tail = {"recent": tail, "history": []}
        return cls(
            half_lives=half_lives,
            landmark=None if math.isnan(landmark) else landmark,
            sums=sums,
            event_count=count,
            updated_at=updated,
            seen=SeenIds(keys, times),
            dedupe_window=window,
            floor=None if floor is None or math.isnan(floor) else floor,
            recent_items=deque(sys.intern(str(i)) for i in tail["recent"]),
            history_items=history,
            history=deque(
                ((sys.intern(str(i)), float(t), float(w)) for i, t, w in tail["history"]),
                maxlen=TRAIN_HISTORY,
            ),
            forgotten_at=tail.get("forgotten_at"),
            live_from=dict(tail.get("live_from", {})),
            backfilled_to=dict(tail.get("backfilled_to", {})),
        )


def merge(older: InterestState, newer: InterestState, by_events: bool = False) -> InterestState:
    """One state from two disjoint sets of a user's events: ``older`` (a backfill of the
    history) and ``newer`` (what the live stream folded meanwhile). The sums add, as if every
    event had been folded into one state: by event time they do not depend on order. Decayed
    by events (``by_events``), ``older``'s events come first: ``newer``'s positions move up
    by ``older``'s event count, as if they had arrived after them."""
    shift = float(older.event_count) if by_events else 0.0
    # Each part's landmark on the merged clock.
    parts = [
        (s, s.landmark + d) for s, d in ((older, 0.0), (newer, shift)) if s.landmark is not None
    ]
    latest = max((at for _, at in parts), default=0.0)
    landmark = latest if parts else None
    sums = {}
    for name, h in newer.half_lives.items():
        total = np.zeros_like(newer.sums[name])
        for s, at in parts:  # to the later landmark
            total += s.sums[name] * math.exp(LN2 / h * (at - latest))  # <= 1
        sums[name] = total
    floors = [f for f in (older.floor, newer.floor) if f is not None]
    recent = deque(dict.fromkeys(reversed([*older.recent_items, *newer.recent_items])))
    recent.reverse()  # each item once, at its latest place
    while len(recent) > newer.history_items:
        recent.popleft()
    forgotten = [t for t in (older.forgotten_at, newer.forgotten_at) if t is not None]
    seen = SeenIds(*older.seen.arrays())
    seen.update(newer.seen)
    merged = InterestState(
        half_lives=dict(newer.half_lives),
        landmark=landmark,
        sums=sums,
        event_count=older.event_count + newer.event_count,
        updated_at=max(older.updated_at, newer.updated_at),
        seen=seen,
        dedupe_window=newer.dedupe_window,
        floor=max(floors) if floors else None,
        recent_items=recent,
        history_items=newer.history_items,
        history=deque([*older.history, *newer.history], maxlen=TRAIN_HISTORY),
        forgotten_at=max(forgotten) if forgotten else None,
        live_from=dict(newer.live_from),
        backfilled_to={
            t: max(older.backfilled_to.get(t, -1), newer.backfilled_to.get(t, -1))
            for t in older.backfilled_to.keys() | newer.backfilled_to.keys()
        },
    )
    merged._let_go(None, merged.updated_at)  # back within the window
    return merged


def event_weight(
    kind: str,
    rating: float | None,
    weights: Mapping[str, float],
    rating_center: float = 3.0,
    rating_scale: float = 2.0,
) -> float:
    """The weight of an event: by type, or derived from its rating when it has one
    (:func:`rating_weight`)."""
    if rating is not None and kind != "negative":
        return float(rating_weight(rating, rating_center, rating_scale))
    return weights[kind]


def rating_weight(rating: Any, center: float = 3.0, scale: float = 2.0) -> Any:
    """``2^((rating - center) / scale)``, of a number or an array: 5 -> 2, 3 -> 1, 1 -> 0.5.

    Always positive: a rated item is still one the user chose to watch, and a user whose
    ratings are mostly low must not end with a vector pointing away from everything (with
    ``(rating - center) / scale`` a user of low ratings was served the items least like
    the ones they watched). Only an explicit ``negative`` event pulls away."""
    return np.exp2((np.asarray(rating, dtype=np.float64) - center) / scale)


def directions_of(states: Sequence[InterestState]) -> dict[str, np.ndarray]:
    """:meth:`InterestState.directions` of many states at once: ``{name: (n, d) float32}``.

    One stacked array per half-life instead of one small numpy call per user and name: the
    stream computes every changed user of a window this way.
    """
    if not states:
        return {}
    out = {}
    for name in states[0].half_lives:
        sums = np.stack([state.sums[name] for state in states])
        norms = np.sqrt(np.einsum("ij,ij->i", sums, sums))
        out[name] = (sums / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
    return out


def top_concepts_of(
    users: np.ndarray, concepts: np.ndarray, labels: Sequence[str], temperature: float, k: int
) -> list[list[tuple[str, float]]]:
    """``p(c | u) = softmax_c(u · v_c / τ)`` for each row of ``users`` (n, d): the k most
    likely (label, p) per user, rounded to 4 digits; none for a zero vector (the weights
    cancelled out)."""
    n = len(users)
    if k == 0 or not labels or n == 0:
        return [[] for _ in range(n)]
    logits = np.asarray(users, dtype=np.float64) @ np.asarray(concepts, dtype=np.float64).T
    p = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
    p /= p.sum(axis=1, keepdims=True)
    best = np.argsort(-p, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(p, best, axis=1).tolist()
    empty = [not row.any() for row in logits]
    return [
        []
        if empty[row]
        else [(labels[i], round(q, 4)) for i, q in zip(idx, chosen[row], strict=True)]
        for row, idx in enumerate(best.tolist())
    ]


def top_concepts(
    user: np.ndarray, concepts: np.ndarray, labels: Sequence[str], temperature: float, k: int
) -> list[tuple[str, float]]:
    """:func:`top_concepts_of` for one user vector."""
    return top_concepts_of(np.asarray(user)[None, :], concepts, labels, temperature, k)[0]
