"""The Qdrant store on every backend: Qdrant Edge, qdrant-client local mode (in memory and
on disk), and a Qdrant server (the ``qdrant_server`` fixture: the local binary, or
INTEREST_TEST_QDRANT_URL), each test with a collection prefix of its own. Every test runs on
each backend, so the backends keep one behaviour.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest

from streams.store import (
    QdrantStore,
    Store,
    StoreError,
    UserPoint,
    concepts_of,
    edge,
    open_store,
    recent_items,
)
from streams.store.edge import EdgeStore
from tests.conftest import unique_prefix

BACKENDS = ["edge", "local-memory", "local-disk", "server"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path: Path):
    if request.param == "edge":
        s: Store = open_store(path=tmp_path / "edge", backend="edge")
    elif request.param == "local-memory":
        s = open_store(path=Path(":memory:"))
    elif request.param == "local-disk":
        s = open_store(path=tmp_path / "qdrant", backend="local")
    else:
        server = request.getfixturevalue("qdrant_server")
        s = open_store(server.url, server.api_key, prefix=unique_prefix())
    yield s
    s.close()


def unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def user(uid: str, vec: np.ndarray, count: int, at: float) -> UserPoint:
    return UserPoint(uid, {"short": vec, "long": vec}, at, count, [("Comedy", 0.5)])


def test_items_and_users_round_trip_through_aliases(store: Store) -> None:
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
    assert store.item_texts("v1", ["b", "zzz", "a"]) == {"a": "A", "b": "B"}
    assert store.upsert_users("v1", [user("u1", unit(1, 0.05, 0), 3, 100.0)]) == 1
    got = store.user("u1")
    assert got.payload["event_count"] == 3 and got.payload["model_version"] == "v1"
    assert [p.payload["item_id"] for p in store.recommend("u1", k=2)] == ["a", "c"]
    assert [p.payload["item_id"] for p in store.recommend("u1", k=2, exclude=["a"])] == ["c", "b"]


def test_an_older_write_never_overwrites_a_newer_one(store: Store) -> None:
    store.ensure_version("v1", dimension=3)
    store.upsert_users("v1", [user("u1", unit(1, 0, 0), 5, 200.0)])
    assert store.upsert_users("v1", [user("u1", unit(0, 1, 0), 4, 150.0)]) == 0
    np.testing.assert_allclose(store.user("u1").vector["short"], unit(1, 0, 0), atol=1e-6)
    assert store.upsert_users("v1", [user("u1", unit(0, 1, 0), 6, 250.0)]) == 1


def test_a_forgotten_user_is_gone_from_every_version(store: Store) -> None:
    for version in ("v1", "v2"):
        store.ensure_version(version, dimension=3)
        store.upsert_users(version, [user("u1", unit(1, 0, 0), 5, 200.0)])
        store.upsert_users(version, [user("u2", unit(0, 1, 0), 5, 200.0)])
    store.forget_users(["u1", "nobody"])
    assert store.user("u1", "v1") is None and store.user("u1", "v2") is None
    assert store.user("u2", "v1") is not None and store.user("u2", "v2") is not None
    # Gone means gone: a new life starts from the first event again, unguarded.
    assert store.upsert_users("v1", [user("u1", unit(0, 0, 1), 1, 300.0)]) == 1


def test_an_old_version_is_dropped_but_never_the_served_one(store: Store) -> None:
    store.ensure_version("v1", dimension=3)
    store.ensure_version("v2", dimension=3)
    with pytest.raises(StoreError, match="served by the aliases"):
        store.drop("v1")
    store.switch("v2")
    assert store.drop("v1") == ["items__v1", "users__v1"]
    assert "users__v1" not in store.collections() and "users__v2" in store.collections()
    assert store.drop("v1") == []  # dropping twice is a no-op


def test_writes_are_idempotent(store: Store) -> None:
    store.ensure_version("v1", dimension=3)
    for _ in range(3):
        store.upsert_items("v1", [("a", unit(1, 0, 0), {})])
        store.upsert_users("v1", [user("u1", unit(1, 0, 0), 1, 1.0)])
    assert store.count("items__v1") == 1
    assert store.count("users__v1") == 1


def test_versions_live_in_their_own_collections(store: Store) -> None:
    store.ensure_version("v1", dimension=3)
    store.ensure_version("v2", dimension=2)  # not served until switched
    assert store.serving() == "v1"
    store.upsert_items("v2", [("a", unit(1, 0), {})])
    assert store.count("items__v1") == 0
    store.switch("v2")
    assert store.serving() == "v2"
    store.switch("v1")  # roll back
    assert store.serving() == "v1"


def test_recent_items_and_concepts_round_trip(store: Store) -> None:
    store.ensure_version("v1", dimension=3)
    vectors = {"short": unit(1, 0, 0), "long": unit(1, 0, 0)}
    concepts = [("Drama", 0.25), ("Comedy", 0.7)]
    store.upsert_users("v1", [UserPoint("u1", vectors, 1.0, 2, concepts, ["x", "y z"])])
    store.upsert_users("v1", [UserPoint("u2", vectors, 1.0, 2, [], [])])
    got = store.user("u1")
    assert recent_items(got.payload) == ["x", "y z"]
    assert got.payload["concepts"] == {"Drama": 0.25, "Comedy": 0.7}  # one object: cheap
    assert concepts_of(got.payload) == [("Comedy", 0.7), ("Drama", 0.25)]
    assert concepts_of(store.user("u2").payload) == []
    # what earlier versions wrote: a list of {label, p}
    assert concepts_of(
        {"concepts": [{"label": "War", "p": 0.1}, {"label": "Crime", "p": 0.5}]}
    ) == [
        ("Crime", 0.5),
        ("War", 0.1),
    ]


def test_recent_items_as_a_payload_list_on_request(store: Store, tmp_path: Path) -> None:
    from streams.settings import Settings
    from streams.store import store_for

    store.recent_items_payload = "list"  # INTEREST_RECENT_ITEMS_PAYLOAD=list
    store.ensure_version("v1", dimension=3)
    vectors = {"short": unit(1, 0, 0), "long": unit(1, 0, 0)}
    store.upsert_users("v1", [UserPoint("u1", vectors, 1.0, 2, [], ["x", "y z"])])
    got = store.user("u1")
    assert got.payload["recent_items"] == ["x", "y z"]  # a list, no JSON inside
    assert recent_items(got.payload) == ["x", "y z"]
    opened = store_for(Settings(data_dir=tmp_path, recent_items_payload="list"))
    try:
        assert opened.recent_items_payload == "list"
    finally:
        opened.close()
    with pytest.raises(ValueError, match="recent_items_payload"):
        Settings(recent_items_payload="csv")


def test_a_missing_version_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        store.upsert_users("nope", [user("u1", unit(1, 0, 0), 1, 1.0)])
    with pytest.raises(StoreError):
        store.switch("nope") if isinstance(store, EdgeStore) else store.count("users__nope")


def test_the_backend_is_chosen_by_settings(tmp_path: Path) -> None:
    edge = open_store(path=tmp_path / "e")
    local = open_store(path=tmp_path / "l", backend="local")
    memory = open_store(path=Path(":memory:"), backend="edge")
    try:
        assert isinstance(edge, EdgeStore)
        assert isinstance(local, QdrantStore) and local.backend == "qdrant-local"
        assert isinstance(memory, QdrantStore) and memory.backend == "qdrant-local-memory"
    finally:
        for s in (edge, local, memory):
            s.close()
    with pytest.raises(StoreError, match="unknown embedded Qdrant backend"):
        open_store(path=tmp_path / "x", backend="rocks")


def test_edge_keeps_data_and_aliases_across_reopen(tmp_path: Path) -> None:
    s = EdgeStore.open(tmp_path / "edge")
    s.ensure_version("v1", dimension=3)
    s.ensure_version("v2", dimension=3, serve=True)
    s.upsert_items("v2", [("a", unit(1, 0, 0), {})])
    s.close()
    again = EdgeStore.open(tmp_path / "edge")
    try:
        assert again.serving() == "v2"
        assert set(again.item_vectors("v2", ["a"])) == {"a"}
    finally:
        again.close()


def test_edge_runs_its_optimizer_as_points_accumulate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge, "OPTIMIZE_EVERY", 3)
    s = EdgeStore.open(tmp_path / "edge")
    s.ensure_version("v1", dimension=3)
    calls: list[str] = []
    real_call = s._call

    def spy(fn, *args, **kwargs):
        calls.append(fn.__name__)
        return real_call(fn, *args, **kwargs)

    monkeypatch.setattr(s, "_call", spy)
    for i in range(7):
        s.upsert_items("v1", [(str(i), unit(1, i, 0), {})])
    assert calls.count("optimize") == 2  # after the 3rd and the 6th point
    s.close()


@pytest.mark.slow
def test_edge_reuses_the_space_of_overwritten_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users are rewritten window after window. Edge reuses an overwritten payload's space
    only after a flush, so the store flushes as it writes: 72 MB of payload writes over
    2,000 points stay in one 32 MB page of payload storage (three pages without flushes)."""
    monkeypatch.setattr(edge, "FLUSH_EVERY_S", 0.0)  # every upsert: the bound, not the timing
    s = EdgeStore.open(tmp_path / "edge")
    s._create("users", 8, ["short", "long"], "dot")
    rng = np.random.default_rng(0)
    ids = [str(uuid.UUID(int=i)) for i in range(2000)]
    recent = orjson.dumps(list(range(100_000, 100_256))).decode()  # ~1.8 KB, as a full history
    for round_ in range(20):
        for start in range(0, len(ids), 200):
            vectors = rng.random((200, 2, 8)).tolist()
            points = [
                (i, {"short": v[0], "long": v[1]}, {"recent_items": recent, "event_count": round_})
                for i, v in zip(ids[start : start + 200], vectors, strict=True)
            ]
            s._upsert("users", points)
    pages = list((tmp_path / "edge" / "users").rglob("payload_storage/page_*"))
    assert len(pages) == 1
    s.close()


def test_an_edge_query_never_mixes_versions_while_the_aliases_switch(tmp_path: Path) -> None:
    """v1 has 3 dimensions, v2 has 4: a user vector of one version queried against the
    items of the other fails, so any mixing shows as an error. One thread switches the
    aliases back and forth while another asks for recommendations."""
    import threading

    store = open_store(path=tmp_path / "edge", backend="edge")
    for version, dim in (("v1", 3), ("v2", 4)):
        store.ensure_version(version, dimension=dim, serve=True)
        vec = np.ones(dim, dtype=np.float32) / np.sqrt(dim)
        store.upsert_items(version, [("a", vec, {"text": "A"}), ("b", -vec, {"text": "B"})])
        store.upsert_users(version, [UserPoint("u1", {"short": vec, "long": vec}, 1.0, 1, [])])
    errors: list[Exception] = []
    results: list[str] = []
    done = threading.Event()

    def switch() -> None:
        for n in range(300):
            store.switch("v1" if n % 2 else "v2")
        done.set()

    def read() -> None:
        while not done.is_set():
            try:
                results.extend(h.payload["model_version"] for h in store.recommend("u1", k=1))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=switch), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert not errors, errors[:3]
    assert set(results) <= {"v1", "v2"} and results


def test_two_deployments_on_one_server_keep_apart_by_prefix(qdrant_server) -> None:
    """Each sees its own versions, aliases and points only; dropping one's old version
    leaves the other's collection of the same name alone."""
    a, b = (
        open_store(qdrant_server.url, qdrant_server.api_key, prefix=unique_prefix()) for _ in "ab"
    )
    try:
        a.ensure_version("v1", dimension=3)
        b.ensure_version("v1", dimension=3)
        b.ensure_version("v2", dimension=3, serve=True)
        a.upsert_items("v1", [("x", unit(1, 0, 0), {"text": "X"})])
        assert a.count("items") == 1 and b.count("items") == 0
        assert (a.serving(), b.serving()) == ("v1", "v2")
        assert a.collections() == {"items__v1", "users__v1"}
        assert sorted(b.drop("v1")) == ["items__v1", "users__v1"]
        assert a.item_texts("v1", ["x"]) == {"x": "X"}
    finally:
        a.close()
        b.close()


def test_a_prefix_on_the_embedded_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"embedded store .* belongs to one deployment"):
        open_store(path=tmp_path / "edge", backend="edge", prefix="x_")


def test_an_embedded_store_held_by_another_process_is_one_clear_error(tmp_path: Path) -> None:
    """What `recommend` met while a worker ran: a 20-line WAL traceback before."""
    import subprocess
    import sys

    root = tmp_path / "edge"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, numpy as np; from pathlib import Path; "
            "from streams.store import open_store; "
            f"s = open_store(path=Path({str(root)!r}), backend='edge'); "
            "s.ensure_version('v1', 3); s.upsert_items('v1', [('x', np.ones(3), {})]); "
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        reader = open_store(path=root, backend="edge")
        with pytest.raises(StoreError, match=r"is held by another process.*INTEREST_QDRANT_URL"):
            reader.count("items")
        reader.close()
    finally:
        holder.communicate(b"")
