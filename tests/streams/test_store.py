"""The Qdrant store on the embedded backend (qdrant-client local mode, in memory and on disk).

Every test runs on each backend in BACKENDS; a server joins the list where one is reachable
(INTEREST_TEST_QDRANT_URL), so the same calls are checked on both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from streams.store import QdrantStore, UserPoint

BACKENDS = ["memory", "disk"] + (["server"] if os.environ.get("INTEREST_TEST_QDRANT_URL") else [])


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path: Path):
    if request.param == "memory":
        s = QdrantStore.connect()
    elif request.param == "disk":
        s = QdrantStore.connect(path=tmp_path / "qdrant")
    else:
        s = QdrantStore.connect(url=os.environ["INTEREST_TEST_QDRANT_URL"])
    yield s
    s.close()


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def user(uid: str, vec: np.ndarray, count: int, at: float) -> UserPoint:
    return UserPoint(uid, {"short": vec, "long": vec}, at, count, [("Comedy", 0.5)])


def test_items_and_users_round_trip_through_aliases(store: QdrantStore) -> None:
    store.ensure_version("v1", dimension=3)
    assert store.serving() == "v1"
    store.upsert_items(
        "v1",
        [
            ("a", unit(1, 0, 0), {"text": "A"}),
            ("b", unit(0, 1, 0), {"text": "B"}),
            ("c", unit(0.9, 0.1, 0), {"text": "C"}),
        ],
    )
    assert set(store.item_vectors("v1", ["a", "b", "zzz"])) == {"a", "b"}
    assert store.upsert_users("v1", [user("u1", unit(1, 0.05, 0), 3, 100.0)]) == 1
    got = store.user("u1")
    assert got.payload["event_count"] == 3 and got.payload["model_version"] == "v1"
    assert [p.payload["item_id"] for p in store.recommend("u1", k=2)] == ["a", "c"]
    assert [p.payload["item_id"] for p in store.recommend("u1", k=2, exclude=["a"])] == ["c", "b"]


def test_an_older_write_never_overwrites_a_newer_one(store: QdrantStore) -> None:
    store.ensure_version("v1", dimension=3)
    store.upsert_users("v1", [user("u1", unit(1, 0, 0), 5, 200.0)])
    assert store.upsert_users("v1", [user("u1", unit(0, 1, 0), 4, 150.0)]) == 0
    np.testing.assert_allclose(store.user("u1").vector["short"], unit(1, 0, 0), atol=1e-6)
    assert store.upsert_users("v1", [user("u1", unit(0, 1, 0), 6, 250.0)]) == 1


def test_writes_are_idempotent(store: QdrantStore) -> None:
    store.ensure_version("v1", dimension=3)
    for _ in range(3):
        store.upsert_items("v1", [("a", unit(1, 0, 0), {})])
        store.upsert_users("v1", [user("u1", unit(1, 0, 0), 1, 1.0)])
    assert store.client.count("items__v1").count == 1
    assert store.client.count("users__v1").count == 1


def test_versions_live_in_their_own_collections(store: QdrantStore) -> None:
    store.ensure_version("v1", dimension=3)
    store.ensure_version("v2", dimension=2)  # not served until switched
    assert store.serving() == "v1"
    store.upsert_items("v2", [("a", unit(1, 0), {})])
    assert store.client.count("items__v1").count == 0
    store.switch("v2")
    assert store.serving() == "v2"
    store.switch("v1")  # roll back
    assert store.serving() == "v1"
