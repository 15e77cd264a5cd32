from __future__ import annotations

import time

import orjson
import pytest

from streams import errors
from streams.records import Limits, decode_event, decode_feedback, decode_item

LIMITS = Limits(max_text_bytes=1000)
GOOD = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "ts": 1_600_000_000}


def raw(**changes) -> bytes:
    data = GOOD | changes
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


def test_a_good_click_decodes_with_the_topic_type() -> None:
    event = decode_event("clicks", raw(user_id=42), LIMITS)
    assert (event.type, event.user_id, event.ts) == ("click", "42", 1_600_000_000.0)


def test_a_review_carries_text_and_rating() -> None:
    event = decode_event("reviews", raw(text="Loved it 🎬", rating=4.5), LIMITS)
    assert (event.type, event.text, event.rating) == ("review", "Loved it 🎬", 4.5)


@pytest.mark.parametrize(
    ("topic", "payload", "error"),
    [
        ("clicks", b"{not json", errors.InvalidJson),
        ("clicks", b'{"ts": NaN}', errors.InvalidJson),
        ("clicks", b"\xff\xfe{}", errors.InvalidUtf8),
        ("clicks", b"[1, 2]", errors.NotAnObject),
        ("clicks", raw(event_id=...), errors.MissingField),
        ("clicks", raw(user_id=""), errors.EmptyField),
        ("clicks", raw(user_id=1.5), errors.WrongType),
        ("clicks", raw(user_id=True), errors.WrongType),
        ("clicks", raw(ts="yesterday"), errors.WrongType),
        ("clicks", raw(ts=1e300), errors.InvalidTimestamp),
        ("clicks", raw(ts=-5), errors.InvalidTimestamp),
        ("clicks", raw(ts=time.time() + 30 * 86_400), errors.InvalidTimestamp),
        ("clicks", raw(type="purchase"), errors.UnknownEventType),
        ("clicks", raw(rating=11), errors.InvalidNumber),
        ("reviews", raw(), errors.MissingField),
        ("reviews", raw(text="   "), errors.EmptyField),
        ("reviews", raw(text="x" * 1001), errors.TextTooLong),
        ("reviews", raw(text=7), errors.WrongType),
    ],
)
def test_bad_events_raise_named_record_errors(topic, payload, error) -> None:
    with pytest.raises(error):
        decode_event(topic, payload, LIMITS)


def test_ten_megabytes_of_text_is_too_long() -> None:
    with pytest.raises(errors.TextTooLong, match="10000000 bytes"):
        decode_event("reviews", raw(text="x" * 10_000_000), Limits())


def test_items_and_feedback() -> None:
    item = decode_item(orjson.dumps({"item_id": 1, "text": "Toy Story (1995)"}), LIMITS)
    assert (item.item_id, item.text) == ("1", "Toy Story (1995)")
    with pytest.raises(errors.MissingField):
        decode_item(orjson.dumps({"item_id": 1}), LIMITS)
    fb = decode_feedback(
        orjson.dumps({"user_id": "u", "item_id": "i", "ts": 1.6e9, "signal": "negative"}), LIMITS
    )
    assert fb.reward == -1.0
    with pytest.raises(errors.MissingField, match="signal"):
        decode_feedback(orjson.dumps({"user_id": "u", "item_id": "i", "ts": 1.6e9}), LIMITS)


def test_a_forget_request_has_its_own_topic_and_an_event_topic_may_refuse_it() -> None:
    forget = orjson.dumps({"user_id": "u1", "ts": 1_700_000_000})
    event = decode_event("forget", forget, LIMITS)
    assert event.type == "forget" and event.user_id == "u1"
    with pytest.raises(errors.UnknownEventType, match="forget requests only"):
        decode_event("forget", raw(type="click"), LIMITS)
    on_clicks = orjson.dumps({"type": "forget", "user_id": "u1", "ts": 1_700_000_000})
    assert decode_event("clicks", on_clicks, LIMITS).type == "forget"  # older producers
    strict = Limits(max_text_bytes=1000, forget_on_event_topics=False)
    with pytest.raises(errors.ForgetElsewhere, match="send it to the forget topic"):
        decode_event("clicks", on_clicks, strict)
