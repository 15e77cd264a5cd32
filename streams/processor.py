"""The pipeline's work per batch, apart from Kafka: decode, encode, fold, write.

The Faust agents hand batches of raw records to an :class:`EventProcessor` and commit their
offsets after it returns, which is after Qdrant acknowledged the writes that cover them.
Everything it touches is injected (encoder, store, state mapping), so the same code
runs under the worker and in unit tests.

    processor = EventProcessor(encoder, store, states, settings_like)
    await processor.start()                          # collections, concept vectors
    outcome = await processor.items(records)         # item texts -> vectors -> Qdrant
    outcome = await processor.events(records)       # events -> user vectors -> Qdrant
    outcome.dead                                     # (record, error) for the dead-letter topic
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, OrderedDict
from collections.abc import Container, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from encoder.cache import VectorCache
from encoder.service import Encoded, Encoder
from streams.errors import KeyMismatch, ModelChanged, RecordError, TooLate, TransientError
from streams.head import Head, sum_names
from streams.interest import (
    DUPLICATE,
    TOO_LATE,
    InterestState,
    directions_of,
    event_weight,
    top_concepts_of,
)
from streams.records import (
    Event,
    Example,
    Feedback,
    ForgetMarker,
    Limits,
    Seen,
    decode_event,
    decode_feedback,
    decode_item,
)
from streams.store import Store, UserPoint

DEFAULT_CONCEPTS = Path(__file__).parent / "concepts" / "movielens-genres.txt"


@dataclasses.dataclass(frozen=True)
class RawRecord:
    topic_kind: str  # clicks, views, reviews, items
    value: bytes
    topic: str = ""
    partition: int = 0
    offset: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()
    key: bytes | None = None  # the Kafka key; None: not checked (tests, tools)

    @classmethod
    def of(cls, kind: str, message: Any) -> RawRecord:
        """From a Kafka message (aiokafka's or Faust's: the same attribute names). A missing
        key becomes b"": events must be keyed by user_id (items are not checked)."""
        return cls(
            kind,
            message.value or b"",
            message.topic,
            message.partition,
            message.offset,
            tuple(message.headers or ()),
            message.key or b"",
        )


@dataclasses.dataclass
class Outcome:
    dead: list[tuple[RawRecord, RecordError]] = dataclasses.field(default_factory=list)
    written: int = 0  # points written to Qdrant
    duplicates: int = 0
    unknown_items: int = 0  # feedback skipped: its item is not in the store
    parked: list[RawRecord] = dataclasses.field(default_factory=list)  # items not there yet
    encoded: int = 0
    types: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)  # (topic, type)
    event_times: list[float] = dataclasses.field(default_factory=list)  # ts of folded events
    write_s: float = 0.0  # time of the Qdrant upsert
    # for the examples topic: from feedback, and a marker per forgotten user
    examples: list[Example | ForgetMarker] = dataclasses.field(default_factory=list)
    no_history: int = 0  # feedback skipped: the user has no history before it yet
    forgotten_users: list[str] = dataclasses.field(default_factory=list)  # forgotten now
    forgotten_events: int = 0  # events skipped: at or before their user's forget time

    def add(self, other: Outcome) -> None:
        """Count ``other`` (another part of the same window) in too."""
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if isinstance(mine, list):
                mine.extend(theirs)
            elif isinstance(mine, Counter):
                mine.update(theirs)
            else:
                setattr(self, field.name, mine + theirs)


@dataclasses.dataclass(frozen=True)
class ProcessorConfig:
    half_lives: dict[str, float]
    weights: dict[str, float]
    rating_center: float = 3.0
    rating_scale: float = 2.0
    dedupe_window: int = 4096
    allowed_lateness_s: float | None = None  # None: the dedupe window alone sets the floor
    concept_labels: tuple[str, ...] = ()
    concept_temperature: float = 0.05
    concepts_top: int = 3
    item_wait_s: float = 2.0
    item_cache_entries: int = 100_000
    state_cache_bytes: int = 32 * 2**20
    encode_timeout_s: float = 30.0
    limits: Limits = dataclasses.field(default_factory=Limits)


def load_concepts(path: Path | None) -> tuple[str, ...]:
    lines = (path or DEFAULT_CONCEPTS).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


class DecodedStates:
    """The states a processor wrote last, kept decoded beside the very bytes object it put
    into the table: reading such a user back is a lookup instead of
    ``InterestState.from_bytes``.

    An entry counts only while the table still holds that object (``is``, not ``==``): a
    state restored from the changelog, or written by anyone else, is decoded afresh. An
    entry is taken out when used, so a window that fails after folding (and is retried)
    decodes the table's bytes again instead of reusing a half-folded state.

    Bounded by the size of the bytes kept, ``max_bytes``, the most recently written users
    first (0 keeps none). Decoded, a state with a full dedupe window takes less than 1.5
    times its bytes (tests/streams/test_interest.py); a new user's, mostly its sums, takes
    more, numpy's overhead on each array.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[bytes, InterestState]] = OrderedDict()

    def take(self, user_id: str, data: bytes) -> InterestState | None:
        entry = self._entries.pop(user_id, None)
        if entry is None:
            return None
        self.bytes -= len(entry[0])
        return entry[1] if entry[0] is data else None

    def put(self, user_id: str, data: bytes, state: InterestState) -> None:
        old = self._entries.pop(user_id, None)
        if old is not None:
            self.bytes -= len(old[0])
        if len(data) > self.max_bytes:
            return
        self._entries[user_id] = (data, state)
        self.bytes += len(data)
        while self.bytes > self.max_bytes:
            _, (dropped, _) = self._entries.popitem(last=False)
            self.bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)


class EncoderStalled(TransientError):
    """The encoder did not answer in time: transient, the window is retried."""


def _too_late(event: Event, floor: float | None) -> str:
    return (
        f"event {event.event_id!r} of user {event.user_id!r} at ts {event.ts:.3f} is at or "
        f"before the user's dedupe floor {floor:.3f}: too late to tell it from a duplicate "
        "(INTEREST_DEDUPE_WINDOW, INTEREST_ALLOWED_LATENESS_S)"
    )


def check_key(key: bytes | None, user_id: str) -> None:
    """Events are keyed by their user_id (DESIGN.md, "Contracts"): the key picks the
    partition, and so the worker that holds the user's state."""
    if key is None or key == user_id.encode():
        return
    if not key:
        raise KeyMismatch(
            f"the record has no key; events must be keyed by their user_id {user_id!r}"
        )
    if (
        len(key) == 8
        and user_id.removeprefix("-").isdigit()
        and (int.from_bytes(key, "big", signed=True) == int(user_id))
    ):
        raise KeyMismatch(
            f"the record's key is user {user_id} as 8 bytes (a Java LongSerializer); key events "
            "by the user id as a UTF-8 string (StringSerializer), so that every event of a "
            "user lands in one partition"
        )
    shown = key[:64].decode("utf-8", errors="replace")
    raise KeyMismatch(f"the record's key {shown!r} is not its user_id {user_id!r}")


class EventProcessor:
    def __init__(
        self,
        encoder: Encoder,
        store: Store,
        states: MutableMapping[str, Any],
        config: ProcessorConfig,
        *,
        stamp_live: bool = False,
        head: Head | None = None,
    ) -> None:
        self.encoder = encoder
        self.store = store
        self.states = states  # user_id -> InterestState.to_bytes(): a Faust table in the worker
        self.config = config
        # A roll-out's new version: each user's state remembers, per topic, the offset of the
        # first event the live stream gave it; the backfill takes only what lies before.
        self.stamp_live = stamp_live
        self.item_cache = VectorCache(config.item_cache_entries)  # what an event folds
        # A learned head (streams/head.py): events fold x_j = A·e_j + h_j, items are served
        # as [y_j, b_j] = [B·e_j + v_j, b_j], users as [q, 1] (q read out of their sums);
        # else e_j itself.
        self.head = head
        self.dimension = head.dim if head else encoder.dimension  # of the users' sums
        # A head trained to decay by events: the sums decay per later event of the user, in
        # arrival order, not by event time (InterestState.fold).
        self.by_events = head is not None and head.half_life_events is not None
        # The state's sum behind each of the head's half-lives, in the readout's order.
        self._sum_names = sum_names(head, config.half_lives) if head is not None else []
        self._concepts = np.zeros((0, self.dimension), dtype=np.float32)
        self.decoded = DecodedStates(config.state_cache_bytes)
        # The events and parked agents share this processor and its states: one batch of
        # events at a time, or two that touch one user would each fold onto the same old
        # state and the later save would drop the other's events.
        self._one_batch = asyncio.Lock()

    @property
    def version(self) -> str:
        return self.encoder.version

    async def start(self) -> None:
        if self.head is None:
            self.store.ensure_version(self.version, self.encoder.dimension)
        else:  # dot products of [q, 1] with [y_j, b_j]
            self.store.ensure_version(self.version, self.head.dim + 1, distance="dot")
        if self.config.concept_labels:
            labels = (await self.encoder.encode(list(self.config.concept_labels))).vectors
            if self.head is not None:  # a label is scored as an item without an id would be
                labels = labels @ self.head.B.T
                labels /= np.linalg.norm(labels, axis=1, keepdims=True).clip(1e-12)
            self._concepts = labels.astype(np.float32)

    async def items(
        self,
        records: Sequence[RawRecord],
        *,
        skip: Container[str] = (),
        written: set[str] | None = None,
    ) -> Outcome:
        """Item texts -> vectors -> Qdrant. ``skip``: item ids to leave alone; ``written``:
        collects the ids written (a roll-out's backfill and live stream, streams/backfill.py)."""
        out = Outcome()
        latest: dict[str, str] = {}
        for rec in records:
            try:
                item = decode_item(rec.value, self.config.limits)
            except RecordError as exc:
                out.dead.append((rec, exc))
                continue
            if item.item_id in skip:
                continue
            latest[item.item_id] = item.text  # the last text of an item in a batch wins
            out.types[(rec.topic_kind, "item")] += 1
        if latest:
            encoded = await self._encode(list(latest.values()))
            out.encoded = len(latest) - encoded.cached
            rows = []
            ids = list(latest)
            if self.head is None:
                folded, served = encoded.vectors, encoded.vectors
            else:
                rows_of = self.head.rows(ids)
                folded = self.head.history_of(encoded.vectors, rows_of)
                served = self.head.items_of(encoded.vectors, rows_of)
            for n, (item_id, text) in enumerate(latest.items()):
                payload: dict[str, Any] = {"text": text[:500]}
                if self.head is not None:  # what an event of the item folds, for other workers
                    payload["history"] = folded[n].astype(np.float32).tolist()
                rows.append((item_id, served[n], payload))
                self.item_cache.put(encoded.version, item_id, folded[n])
            started = time.perf_counter()
            await asyncio.to_thread(self.store.upsert_items, encoded.version, rows)
            out.write_s = time.perf_counter() - started
            out.written = len(rows)
            if written is not None:
                written.update(latest)
        return out

    async def events(self, records: Sequence[RawRecord]) -> Outcome:
        async with self._one_batch:
            out, changed = await self.fold(records)
            await self.save(changed, out)
        return out

    async def save(self, changed: dict[str, InterestState], out: Outcome) -> None:
        """Write folded states: forgotten users' points deleted, changed users upserted
        (after Qdrant acknowledged), then the states themselves."""
        if out.forgotten_users:  # first, so a new life after the forget is not "older"
            await asyncio.to_thread(self.store.forget_users, out.forgotten_users)
        live = {u: state for u, state in changed.items() if state.event_count}
        if live:
            out.written, out.write_s = await self._write(self.version, live)
        for user_id, state in changed.items():  # after Qdrant acknowledged
            data = state.to_bytes()
            self.states[user_id] = data
            self.decoded.put(user_id, data, state)

    async def save_merged(self, states: dict[str, InterestState]) -> int:
        """Write states merged by a roll-out's backfill (points, then states); how many."""
        await self.save(states, Outcome())
        return len(states)

    async def fold(self, records: Sequence[RawRecord]) -> tuple[Outcome, dict[str, InterestState]]:
        """Decode and fold a batch of events into their users' states (read from
        ``self.states``); nothing is written. (outcome, the states that changed)."""
        out = Outcome()
        events: list[Event] = []
        sources: list[RawRecord] = []
        for rec in records:
            try:
                event = decode_event(rec.topic_kind, rec.value, self.config.limits)
                check_key(rec.key, event.user_id)
            except RecordError as exc:
                out.dead.append((rec, exc))
                continue
            events.append(event)
            sources.append(rec)
            out.types[(rec.topic_kind, event.type)] += 1
        if not events:
            return out, {}
        version = self.version
        reviews = [e.text for e in events if e.type == "review" and e.text]
        review_vecs: dict[str, np.ndarray] = {}
        if reviews:
            encoded = await self._encode(reviews)
            if encoded.version != version:  # swapped mid-batch: never mix two models' vectors
                raise ModelChanged(
                    f"the model changed from {version} to {encoded.version} during a batch"
                )
            review_vecs = dict(zip(reviews, encoded.vectors, strict=True))
            out.encoded = len(reviews) - encoded.cached
        wanted = {e.item_id for e in events if e.type not in ("review", "forget")}
        items = await self._item_vectors(version, wanted)
        changed = self._forget(events, out)
        if self.stamp_live:
            for rec, e in zip(sources, events, strict=True):
                stamped = changed.get(e.user_id) or self.state(e.user_id)
                if rec.topic not in stamped.live_from:
                    stamped.live_from[rec.topic] = rec.offset
                    changed[e.user_id] = stamped
        lateness = self.config.allowed_lateness_s
        for rec, e in zip(sources, events, strict=True):
            if e.type == "forget":
                continue
            state = changed.get(e.user_id) or self.state(e.user_id)
            if state.forgets(e.ts):
                out.forgotten_events += 1
                continue
            verdict = state.verdict(e.event_id, e.ts, lateness)
            if verdict == DUPLICATE:
                out.duplicates += 1
                continue
            if verdict == TOO_LATE:
                out.dead.append((rec, TooLate(_too_late(e, state.floor_at(lateness)))))
                continue
            vec = review_vecs.get(e.text) if e.type == "review" and e.text else items.get(e.item_id)
            if vec is None:  # its item is not in the catalogue yet: parked (streams/parking.py)
                out.parked.append(rec)
                continue
            if self.head is not None and e.type == "review":  # its text, plus its item's h
                vec = self.head.history_of(vec[None], self.head.rows([e.item_id]))[0]
            if state.fold(
                e.event_id, e.ts, self._weight(e), vec, e.item_id, lateness, self.by_events
            ):
                changed[e.user_id] = state
                out.event_times.append(e.ts)
        return out, changed

    def _weight(self, e: Event) -> float:
        """The event's weight: by type or rating; with a head, the weights it was trained
        with (every interaction 1, a negative signal its setting)."""
        if self.head is not None:
            return self.config.weights["negative"] if e.type == "negative" else 1.0
        return event_weight(
            e.type,
            e.rating,
            self.config.weights,
            self.config.rating_center,
            self.config.rating_scale,
        )

    def _forget(self, events: Sequence[Event], out: Outcome) -> dict[str, InterestState]:
        """Users who asked to be forgotten (``forget`` events): a fresh state that remembers
        the forget time, so that no event up to it counts again, replayed or late."""
        asked: dict[str, float] = {}
        for e in events:
            if e.type == "forget":
                asked[e.user_id] = max(e.ts, asked.get(e.user_id, e.ts))
        fresh = {}
        for user_id, at in asked.items():
            old = self.state(user_id).forgotten_at
            if old is not None and old >= at:
                continue  # forgotten already, as late or later
            state = InterestState.empty(
                self.dimension, self.config.half_lives, self.config.dedupe_window
            )
            state.forgotten_at = at
            previous = self.state(user_id)  # a roll-out's bookkeeping outlives the forget
            state.live_from, state.backfilled_to = previous.live_from, previous.backfilled_to
            fresh[user_id] = state
            out.forgotten_users.append(user_id)
            # A marker in the examples topic: training skips the user's examples up to `at`.
            out.examples.append(ForgetMarker(user_id, at))
        return fresh

    async def _write(self, version: str, changed: dict[str, InterestState]) -> tuple[int, float]:
        """One batched upsert of the changed users: (points written, seconds)."""
        users = list(changed.values())
        directions = directions_of(users)
        short = directions["short"]  # the direction a downstream service queries with
        if self.head is not None:  # [q, 1]: the item's bias adds to the score
            q = self.head.query([directions[name] for name in self._sum_names])
            norms = np.linalg.norm(q, axis=1, keepdims=True)
            short = (q / np.where(norms > 0, norms, 1.0)).astype(np.float32)
            ones = np.ones((len(users), 1), dtype=np.float32)
            served = {"short": q.astype(np.float32), "long": directions["long"]}
            directions = {name: np.hstack([rows, ones]) for name, rows in served.items()}
        concepts = top_concepts_of(
            short,
            self._concepts,
            self.config.concept_labels,
            self.config.concept_temperature,
            self.config.concepts_top,
        )
        points = [
            UserPoint(
                user_id,
                {name: rows[i] for name, rows in directions.items()},
                state.updated_at,
                state.event_count,
                concepts[i],
                list(state.recent_items),
            )
            for i, (user_id, state) in enumerate(changed.items())
        ]
        started = time.perf_counter()
        written = await asyncio.to_thread(self.store.upsert_users, version, points)
        return written, time.perf_counter() - started

    async def feedback(self, records: Sequence[RawRecord]) -> Outcome:
        """Feedback signals -> training examples: the user's history before the signal
        (item texts, times, weights, as the stream folded them) paired with the item.

        A signal about an item the store does not know counts as an unknown item; one from a
        user with no history before it yet counts as ``no_history``. Neither is a bad record.
        """
        out = Outcome()
        signals: list[tuple[RawRecord, Feedback]] = []
        for rec in records:
            try:
                signal = decode_feedback(rec.value, self.config.limits)
                check_key(rec.key, signal.user_id)
            except RecordError as exc:
                out.dead.append((rec, exc))
                continue
            signals.append((rec, signal))
            out.types[(rec.topic_kind, "positive" if signal.reward > 0 else "negative")] += 1
        pairs = []
        for _, f in signals:
            data = self.states.get(f.user_id)
            state = InterestState.from_bytes(data) if data is not None else None
            # Only what the user did before the signal, and never the item itself.
            history = [
                h for h in (state.history if state else ()) if h[1] <= f.ts and h[0] != f.item_id
            ]
            if not history:
                out.no_history += 1
                continue
            pairs.append((f, history))
        wanted = {f.item_id for f, _ in pairs} | {h[0] for _, hs in pairs for h in hs}
        texts = await asyncio.to_thread(self.store.item_texts, self.version, wanted)
        for f, history in pairs:
            if f.item_id not in texts:
                out.unknown_items += 1
                continue
            out.examples.append(
                Example(
                    user_id=f.user_id,
                    item_id=f.item_id,
                    item_text=texts[f.item_id],
                    reward=f.reward,
                    ts=f.ts,
                    served_by=f.model_version,
                    history=tuple(Seen(i, texts[i], t, w) for i, t, w in history if i in texts),
                )
            )
        return out

    async def _encode(self, texts: list[str]) -> Encoded:
        """The encoder, bounded in time: a stalled model raises :class:`EncoderStalled`
        (transient: the agent retries the window) instead of holding the window forever."""
        try:
            return await asyncio.wait_for(self.encoder.encode(texts), self.config.encode_timeout_s)
        except TimeoutError:
            raise EncoderStalled(
                f"the encoder did not answer within {self.config.encode_timeout_s:.1f} s "
                f"({len(texts)} texts)"
            ) from None

    def state(self, user_id: str) -> InterestState:
        """The user's state from ``self.states``, or a fresh one."""
        data = self.states.get(user_id)
        if data is not None:
            return self.decoded.take(user_id, data) or InterestState.from_bytes(data)
        return InterestState.empty(
            self.dimension, self.config.half_lives, self.config.dedupe_window
        )

    async def _item_vectors(self, version: str, item_ids: set[str]) -> dict[str, np.ndarray]:
        """Cache, then Qdrant; ids still unknown get one more look after item_wait_s."""
        found: dict[str, np.ndarray] = {}
        for item_id in item_ids:
            vec = self.item_cache.get(version, item_id)
            if vec is not None:
                found[item_id] = vec
        missing = item_ids - found.keys()
        for attempt in range(2):
            if not missing:
                break
            if attempt:
                await asyncio.sleep(self.config.item_wait_s)
            fetched = await asyncio.to_thread(self.store.item_vectors, version, missing)
            for item_id, vec in fetched.items():
                self.item_cache.put(version, item_id, vec)
            found |= fetched
            missing -= fetched.keys()
        return found
