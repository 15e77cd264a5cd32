"""The contract as the README states it: every producer example decodes, matches its
topic's JSON Schema (docs/schemas/), and is keyed as the README says; point ids are what
a service in another language computes from the README's rule; the downstream query that
leaves out the user's own items runs as written."""

from __future__ import annotations

import re
import struct
import textwrap
import uuid
import warnings
from pathlib import Path

import jsonschema
import orjson
import pytest

from streams.errors import InvalidTimestamp, KeyMismatch, RecordError
from streams.processor import check_key
from streams.records import Limits, decode_event, decode_feedback, decode_item
from streams.store import point_id

ROOT = Path(__file__).resolve().parents[2]
TOPICS = ("clicks", "views", "reviews", "items", "feedback", "forget")
EXAMPLE = re.compile(r"^\*\*(\w+)\*\* \(key `\"([^\"]+)\"`[^)]*\)\n\n```json\n(.+?)\n```", re.M)


def readme_examples() -> list[tuple[str, str, bytes]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Producing events")
    section = text[start : text.index("\n## ", start)]
    return [(t, key, raw.encode()) for t, key, raw in EXAMPLE.findall(section)]


def schema(topic: str) -> dict:
    return orjson.loads((ROOT / "docs" / "schemas" / f"{topic}.schema.json").read_bytes())


def test_the_readme_has_one_example_per_topic() -> None:
    assert [t for t, _, _ in readme_examples()] == list(TOPICS)


@pytest.mark.parametrize(("topic", "key", "raw"), readme_examples(), ids=lambda x: str(x)[:12])
def test_every_readme_example_decodes_and_matches_its_schema(
    topic: str, key: str, raw: bytes
) -> None:
    value = orjson.loads(raw)
    jsonschema.Draft202012Validator(schema(topic)).validate(value)
    limits = Limits()
    if topic == "items":
        assert decode_item(raw, limits).item_id == key
    elif topic == "feedback":
        assert decode_feedback(raw, limits).user_id == key
    else:
        event = decode_event(topic, raw, limits)
        check_key(key.encode(), event.user_id)
        assert 1.6e9 < event.ts < 1.8e9  # the milliseconds example is read as seconds


def test_the_schemas_are_valid_and_refuse_what_the_decoder_refuses() -> None:
    for topic in TOPICS:
        jsonschema.Draft202012Validator.check_schema(schema(topic))
    clicks = jsonschema.Draft202012Validator(schema("clicks"))
    for bad in (
        {"user_id": "42", "item_id": "7", "ts": 1.7e9},  # no event_id
        {"event_id": "e", "user_id": "42", "item_id": "7", "ts": "soon"},
        {"event_id": "e", "user_id": "", "item_id": "7", "ts": 1.7e9},
        {"event_id": "e", "user_id": "42", "item_id": "7", "ts": 1.7e9, "rating": 11},
    ):
        assert not clicks.is_valid(bad), bad
        with pytest.raises(RecordError):
            decode_event("clicks", orjson.dumps(bad), Limits())


def test_a_timestamp_in_milliseconds_is_the_same_time_in_seconds() -> None:
    base = {"event_id": "e", "user_id": "42", "item_id": "7"}
    seconds = decode_event("clicks", orjson.dumps(base | {"ts": 1_700_000_000.5}), Limits())
    millis = decode_event("clicks", orjson.dumps(base | {"ts": 1_700_000_000_500}), Limits())
    assert millis.ts == seconds.ts == 1_700_000_000.5
    with pytest.raises(InvalidTimestamp):  # far in the future, whichever unit
        decode_event("clicks", orjson.dumps(base | {"ts": 9e13}), Limits())


def test_a_java_long_serializer_key_is_named_as_such() -> None:
    with pytest.raises(KeyMismatch, match=r"LongSerializer.*UTF-8 string"):
        check_key(struct.pack(">q", 42), "42")
    with pytest.raises(KeyMismatch, match="is not its user_id"):
        check_key(b"43", "42")


def test_point_ids_follow_the_readme_rule() -> None:
    namespace = uuid.UUID("6f1d8c2a-5b7e-4c1f-9a3d-2e8b7c6d5f40")
    assert point_id("user", "42") == str(uuid.uuid5(namespace, "user:42"))
    assert point_id("item", "movie-7") == str(uuid.uuid5(namespace, "item:movie-7"))
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert str(namespace) in text and "`user:<user id>`" in text


@pytest.mark.parametrize("form", ["json", "list"])
def test_the_readme_query_that_leaves_out_the_history_runs_on_a_server(
    qdrant_server, form: str
) -> None:
    """Both of the README's forms: ``recent_items`` as one JSON string (the default) and as
    a payload list (INTEREST_RECENT_ITEMS_PAYLOAD=list)."""
    import json

    import numpy as np
    from qdrant_client import QdrantClient, models

    from streams.store import UserPoint, open_store
    from tests.conftest import unique_prefix

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.+?)\n\s*```", text, re.S)
    marker = "json.loads" if form == "json" else "INTEREST_RECENT_ITEMS_PAYLOAD=list"
    code = next(b for b in blocks if "must_not" in b and marker in b)
    prefix = unique_prefix()
    store = open_store(qdrant_server.url, qdrant_server.api_key, prefix=prefix)
    store.recent_items_payload = form  # as store_for sets it from the settings
    store.ensure_version("v1", dimension=2)
    near = [("a", 1.0, 0.0), ("c", 0.9, 0.1), ("b", 0.0, 1.0)]  # nearest the user first
    store.upsert_items("v1", [(i, np.asarray(v, np.float32), {"text": i}) for i, *v in near])
    vec = np.asarray([1.0, 0.0], np.float32)
    store.upsert_users("v1", [UserPoint("u1", {"short": vec, "long": vec}, 1.0, 1, [], ["a"])])
    with warnings.catch_warnings():  # a loopback server: the key is not on a wire
        warnings.filterwarnings("ignore", "Api key is used with an insecure")
        client = QdrantClient(
            url=qdrant_server.url, api_key=qdrant_server.api_key, check_compatibility=False
        )
    scope = {
        "client": client,
        "models": models,
        "uuid": uuid,
        "json": json,
        "NAMESPACE": uuid.UUID("6f1d8c2a-5b7e-4c1f-9a3d-2e8b7c6d5f40"),
        "user_point_id": point_id("user", "u1"),
    }
    for alias in ("items", "users"):  # this test's collections carry a prefix
        code = code.replace(f'"{alias}"', f'"{prefix}{alias}"')
    stored = client.retrieve(f"{prefix}users", [point_id("user", "u1")], with_payload=True)
    assert isinstance(stored[0].payload["recent_items"], str if form == "json" else list)
    exec(textwrap.dedent(code), scope)
    assert [h.payload["item_id"] for h in scope["hits"]] == ["c", "b"]  # "a" was clicked
    assert [h.payload["item_id"] for h in store.recommend("u1", exclude=["a"])] == ["c", "b"]
    client.close()
    store.close()
