"""Record schemas and their validation: bytes from Kafka in, typed records or a RecordError out.

    event = decode_event("reviews", raw, limits)   # Event, or raises e.g. InvalidTimestamp
    item = decode_item(raw, limits)

Events are JSON objects (UTF-8) keyed by ``user_id``: ``event_id``, ``user_id``, ``item_id``,
``ts`` (epoch seconds; above 1e11, milliseconds); reviews add ``text`` and may carry
``rating``. Any event may carry ``type`` (``click``, ``view``, ``review``, ``negative``);
without it, the topic decides. Ids may be strings or integers (MovieLens ids are numbers)
and are kept as strings. The contract, with an example and a JSON Schema per topic: the
README's "Producing events", docs/schemas/.

``{"user_id": ..., "ts": ...}`` on the ``forget`` topic (``type`` is ``forget`` there, and
nothing else is taken) asks to forget the user: everything up to ``ts`` (``event_id`` and
``item_id`` are not needed). Its own topic lets Kafka's ACLs allow a producer its clicks and
refuse it forgets. A ``forget`` on an event topic is taken too while
``INTEREST_FORGET_ON_EVENT_TOPICS`` is on (older producers sent them there), and refused as
``ForgetElsewhere`` once it is off.

The ``examples`` topic (the feedback agent's output, the training job's input) holds
:class:`Example` and :class:`ForgetMarker` records: ``encode_example`` / ``decode_example``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import orjson

from streams.errors import (
    EmptyField,
    ForgetElsewhere,
    InvalidJson,
    InvalidNumber,
    InvalidTimestamp,
    InvalidUtf8,
    MissingField,
    NotAnObject,
    TextTooLong,
    UnknownEventType,
    WrongType,
)

TOPIC_TYPES = {"clicks": "click", "views": "view", "reviews": "review", "forget": "forget"}
EVENT_TYPES = ("click", "view", "review", "negative", "forget")
MAX_ID_CHARS = 256


@dataclasses.dataclass(frozen=True)
class Limits:
    max_text_bytes: int = 64 * 1024
    min_ts: float = 631_152_000.0
    max_future_s: float = 86_400.0
    forget_on_event_topics: bool = True  # a forget request on clicks, views or reviews


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    type: str
    event_id: str
    user_id: str
    item_id: str
    ts: float
    text: str | None = None
    rating: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Feedback:
    user_id: str
    item_id: str
    ts: float
    reward: float  # positive = +1, negative = -1, or the reward given
    model_version: str | None = None


def load_object(raw: bytes) -> dict[str, Any]:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUtf8(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotAnObject(f"expected a JSON object, got {type(data).__name__}")
    return data


def decode_event(topic_kind: str, raw: bytes, limits: Limits) -> Event:
    data = load_object(raw)
    kind = data.get("type", TOPIC_TYPES.get(topic_kind))
    if kind not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {kind!r}; expected one of {EVENT_TYPES}")
    if topic_kind == "forget" and kind != "forget":
        raise UnknownEventType(f"the forget topic takes forget requests only, not {kind!r}")
    if kind == "forget" and topic_kind != "forget" and not limits.forget_on_event_topics:
        raise ForgetElsewhere(
            f"a forget request on the {topic_kind} topic: send it to the forget topic "
            "(INTEREST_FORGET_ON_EVENT_TOPICS is off)"
        )
    text = None
    if kind == "review":
        text = _text(data, "text", limits)
    rating = data.get("rating")
    if rating is not None:
        rating = _number(data, "rating")
        if not 0 <= rating <= 10:
            raise InvalidNumber(f"rating {rating} is outside 0..10")
    if kind == "forget":
        user = _id(data, "user_id")
        ts = _ts(data, limits)
        return Event(type=kind, event_id=f"forget:{user}:{ts!r}", user_id=user, item_id="", ts=ts)
    return Event(
        type=kind,
        event_id=_id(data, "event_id"),
        user_id=_id(data, "user_id"),
        item_id=_id(data, "item_id"),
        ts=_ts(data, limits),
        text=text,
        rating=rating,
    )


def decode_item(raw: bytes, limits: Limits) -> Item:
    data = load_object(raw)
    return Item(item_id=_id(data, "item_id"), text=_text(data, "text", limits))


def decode_feedback(raw: bytes, limits: Limits) -> Feedback:
    data = load_object(raw)
    if "reward" in data:
        reward = _number(data, "reward")
    else:
        signal = data.get("signal")
        if signal not in ("positive", "negative"):
            raise MissingField("feedback needs signal 'positive' / 'negative' or a reward")
        reward = 1.0 if signal == "positive" else -1.0
    version = data.get("model_version")
    return Feedback(
        user_id=_id(data, "user_id"),
        item_id=_id(data, "item_id"),
        ts=_ts(data, limits),
        reward=reward,
        model_version=str(version) if version is not None else None,
    )


def _field(data: dict[str, Any], name: str) -> Any:
    if name not in data or data[name] is None:
        raise MissingField(f"missing field {name!r}")
    return data[name]


def _id(data: dict[str, Any], name: str) -> str:
    value = _field(data, name)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise WrongType(f"{name} must be a string or an integer, got {type(value).__name__}")
    value = str(value).strip()
    if not value:
        raise EmptyField(f"{name} is empty")
    if len(value) > MAX_ID_CHARS:
        raise WrongType(f"{name} is longer than {MAX_ID_CHARS} characters")
    return value


def _number(data: dict[str, Any], name: str) -> float:
    value = _field(data, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongType(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidNumber(f"{name} is not finite")
    return value


MS_FROM = 1e11  # a ts above this is in milliseconds: as seconds it would be the year 5138


def _ts(data: dict[str, Any], limits: Limits) -> float:
    """Epoch seconds; epoch milliseconds (what Kafka and Java producers use) are taken too:
    the two ranges of plausible times are far apart, so the unit is never ambiguous."""
    try:
        ts = _number(data, "ts")
    except InvalidNumber:
        raise InvalidTimestamp("ts is not finite") from None
    if ts > MS_FROM:
        ts /= 1000.0
    latest = time.time() + limits.max_future_s
    if not limits.min_ts <= ts <= latest:
        raise InvalidTimestamp(
            f"ts {ts:.0f} is outside {limits.min_ts:.0f}..{latest:.0f} (epoch seconds)"
        )
    return ts


def _text(data: dict[str, Any], name: str, limits: Limits) -> str:
    value = _field(data, name)
    if not isinstance(value, str):
        raise WrongType(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise EmptyField(f"{name} is empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidUtf8(f"{name} holds an unpaired surrogate") from None
    if size > limits.max_text_bytes:
        raise TextTooLong(f"{name} is {size} bytes; the limit is {limits.max_text_bytes}")
    return value


# -- the examples topic -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """One event of a user's history, as the stream folded it."""

    item_id: str
    text: str
    ts: float
    weight: float


@dataclasses.dataclass(frozen=True, slots=True)
class Example:
    """A feedback signal with the user's history before it: what a training job learns from."""

    user_id: str
    item_id: str
    item_text: str
    reward: float
    ts: float
    served_by: str | None
    history: tuple[Seen, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ForgetMarker:
    """The user asked to be forgotten up to ``ts``: training skips their examples up to it."""

    user_id: str
    ts: float


def encode_example(record: Example | ForgetMarker) -> bytes:
    """The JSON of an examples-topic record (a history entry is ``[item, text, ts, weight]``)."""
    if isinstance(record, ForgetMarker):
        return orjson.dumps({"forget": True, "user_id": record.user_id, "ts": record.ts})
    return orjson.dumps(
        {
            "user_id": record.user_id,
            "item_id": record.item_id,
            "item_text": record.item_text,
            "reward": record.reward,
            "ts": record.ts,
            "served_by": record.served_by,
            "history": [[h.item_id, h.text, h.ts, h.weight] for h in record.history],
        }
    )


def decode_example(raw: bytes) -> Example | ForgetMarker:
    """An examples-topic record; a RecordError for anything else."""
    data = load_object(raw)
    if data.get("forget"):
        return ForgetMarker(_id(data, "user_id"), _number(data, "ts"))
    history = _field(data, "history")
    if not isinstance(history, list):
        raise WrongType(f"history must be a list, not {type(history).__name__}")
    try:
        seen = tuple(Seen(str(i), str(text), float(t), float(w)) for i, text, t, w in history)
    except (TypeError, ValueError) as exc:
        raise WrongType(f"history entries are [item_id, text, ts, weight]: {exc}") from None
    served_by = data.get("served_by")
    return Example(
        user_id=_id(data, "user_id"),
        item_id=_id(data, "item_id"),
        item_text=str(_field(data, "item_text")),
        reward=_number(data, "reward"),
        ts=_number(data, "ts"),
        served_by=str(served_by) if served_by is not None else None,
        history=seen,
    )
