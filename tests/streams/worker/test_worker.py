"""The worker end to end: real broker, real (tiny) ONNX model, embedded Qdrant.

The embedded Qdrant is a folder that one process at a time may open, so each test stops the
worker before reading what it wrote.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from encoder.model import load_model
from streams.cli import main as cli_main
from streams.kafka.groups import group_lag
from streams.kafka.topics import ensure_topics
from streams.settings import Settings
from streams.store import open_store
from tests.streams.kafka_helpers import (
    WorkerProcess,
    free_port,
    produce,
    read_topic,
    topic_names,
    wait_committed,
)

pytestmark = pytest.mark.kafka
HALF = {"short": 86_400.0, "long": 30 * 86_400.0}
T0 = 1_600_000_000.0


@pytest.fixture
def pipeline(kafka_broker, tiny_model_dir: Path, tmp_path: Path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    metrics_port = free_port()
    env = os.environ | {
        "INTEREST_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "INTEREST_MODEL_DIR": str(tiny_model_dir),
        "INTEREST_DATA_DIR": str(tmp_path / "data"),
        "INTEREST_TOPIC_PREFIX": prefix,
        "INTEREST_CONSUMER_GROUP": f"g-{prefix}",
        "INTEREST_WINDOW_MS": "100",
        "INTEREST_ITEM_WAIT_MS": "200",
        "INTEREST_ENCODER_PROVIDER": "cpu",
        "INTEREST_KAFKA_SESSION_TIMEOUT_S": "10",  # the killed worker's partitions move sooner
        "INTEREST_METRICS_PORT": str(metrics_port),
        "INTEREST_LOG_FORMAT": "json",
    }
    ensure_topics(Settings(kafka_bootstrap=kafka_broker.bootstrap, topic_prefix=prefix))
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    yield prefix, worker, kafka_broker.bootstrap, Settings(data_dir=tmp_path / "data")
    worker.stop()


def load_items(bootstrap: str, prefix: str, n: int) -> None:
    """Items first, and processed, so that no click waits for its item."""
    produce(bootstrap, item_records(prefix, n))
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}items"])


def item_records(prefix: str, n: int):
    return [
        (f"{prefix}items", {"item_id": i, "text": f"Movie number {i} (1995)"}, str(i).encode())
        for i in range(n)
    ]


def click(prefix: str, event_id: str, user: str, item: int, ts: float):
    return (
        f"{prefix}clicks",
        {"event_id": event_id, "user_id": user, "item_id": item, "ts": ts},
        user.encode(),
    )


def round_robin(prefix: str, users: int, events: int, step_s: float):
    """Clicks on items 0..9 by users u0.. in turn, ``step_s`` apart: (per-user (item, ts)
    as sent, the records)."""
    clicks: dict[str, list[tuple[int, float]]] = {f"u{n}": [] for n in range(users)}
    records = []
    for k in range(events):
        user = f"u{k % users}"
        item, ts = k % 10, T0 + k * step_s
        clicks[user].append((item, ts))
        records.append(click(prefix, f"e{k}", user, item, ts))
    return clicks, records


def oracle(events, item_vecs, half_life: float) -> np.ndarray:
    lam = math.log(2) / half_life
    now = max(ts for _, ts in events)
    s = sum(math.exp(-lam * (now - ts)) * item_vecs[str(i)].astype(np.float64) for i, ts in events)
    return s / np.linalg.norm(s)


def counted(qdrant: Settings, expected: dict[str, int]) -> tuple[int, int]:
    """(lost, duplicated) events: each user's stored event_count against what was sent."""
    store = open_store(path=qdrant.qdrant_location, backend=qdrant.qdrant_backend)
    try:
        lost = duplicated = 0
        for user, n in expected.items():
            point = store.user(user)
            got = point.payload["event_count"] if point is not None else 0
            lost += max(0, n - got)
            duplicated += max(0, got - n)
        return lost, duplicated
    finally:
        store.close()


def account(qdrant, clicks, reliability, scenario: str, injected: str, recovery_s: float) -> None:
    """Record a scenario's lost and duplicated events (tests/reliability.py), then hold the
    stored users to the oracle."""
    lost, duplicated = counted(qdrant, {u: len(e) for u, e in clicks.items()})
    reliability.record(
        scenario,
        injected=injected,
        events=sum(len(e) for e in clicks.values()),
        lost=lost,
        duplicated=duplicated,
        recovery_s=recovery_s,
    )
    check_oracle(qdrant, clicks)


def check_oracle(
    qdrant: Settings, clicks: dict[str, list[tuple[int, float]]], version: str | None = None
) -> None:
    """The worker's (stopped) embedded store against the oracle, user by user (the served
    version, or ``version``)."""
    store = open_store(path=qdrant.qdrant_location, backend=qdrant.qdrant_backend)
    try:
        version = version or store.serving()
        item_vecs = store.item_vectors(version, [str(i) for i in range(10)])
        for user, events in clicks.items():
            point = store.user(user, version)
            assert point is not None, user
            assert point.payload["event_count"] == len(events), (user, version)
            for name, h in HALF.items():
                np.testing.assert_allclose(
                    point.vector[name], oracle(events, item_vecs, h), atol=1e-4
                )
    finally:
        store.close()


def test_events_in_user_vectors_out_equal_the_oracle(pipeline) -> None:
    prefix, worker, bootstrap, qdrant = pipeline
    worker.start()
    load_items(bootstrap, prefix, 10)
    rng = np.random.default_rng(0)
    clicks: dict[str, list[tuple[int, float]]] = {"u1": [], "u2": []}
    records = []
    for k in range(40):
        user = f"u{k % 2 + 1}"
        item, ts = int(rng.integers(10)), T0 + float(rng.uniform(0, 5 * 86_400))  # unordered
        clicks[user].append((item, ts))
        records.append(click(prefix, f"e{k}", user, item, ts))
    produce(bootstrap, records + records[:7])  # and 7 duplicates
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}items", f"{prefix}clicks"])
    worker.stop()
    check_oracle(qdrant, clicks)
    # Every topic the worker made carries the prefix, Faust's state changelog included.
    made = [t for t in topic_names(bootstrap) if prefix in t]
    assert made and all(t.startswith(prefix) for t in made), made
    assert any(t.startswith(f"{prefix}g-{prefix}-user-state-") for t in made), made


BAD = [
    b"{not json",
    b"\xff\xfe invalid utf-8",
    b'{"event_id": "b1", "user_id": "u9", "ts": 1600000000}',  # no item_id
    b'{"event_id": "b2", "user_id": ["u9"], "item_id": 1, "ts": 1600000000}',
    b'{"event_id": "b3", "user_id": "u9", "item_id": 1, "ts": NaN}',
    b'{"event_id": "b4", "user_id": "u9", "item_id": 1, "ts": 1e300}',
    b'{"event_id": "b5", "user_id": "u9", "item_id": 1, "ts": 1600000000, "type": "buy"}',
    b"[" * 100_000 + b"]" * 100_000,  # JSON nested 100,000 deep
    b'{"event_id": "b7", "user_id": "u9", "item_id": 1, "ts": ' + b"1" * 1_000_000 + b"}",
    b'{"event_id": "b8", "user_id": "u8", "item_id": 1, "ts": 1600000000}',  # key says u9
    b'{"event_id": "b9", "user_id": "u9", "item_id": 1, "ts": Infinity}',
]


@pytest.mark.reliability
def test_bad_records_go_to_the_dlq_and_the_partition_keeps_moving(pipeline, reliability) -> None:
    prefix, worker, bootstrap, qdrant = pipeline
    worker.start()
    load_items(bootstrap, prefix, 3)
    big = (
        b'{"event_id": "b6", "user_id": "u9", "item_id": 1, "ts": 1600000000, "text": "'
        + b"x" * 10_000_000
        + b'"}'
    )
    unkeyed = b'{"event_id": "b10", "user_id": "u9", "item_id": 1, "ts": 1600000000}'
    bad = [(f"{prefix}clicks", raw, b"u9") for raw in BAD] + [
        (f"{prefix}reviews", big, b"u9"),
        (f"{prefix}views", unkeyed, None),  # any partition: the dlq has it either way
    ]
    good = [click(prefix, "g1", "u9", 1, T0), click(prefix, "g2", "u9", 2, T0 + 60)]
    produce(bootstrap, bad + good)  # same key, so the same partition: good ones come after
    wait_committed(
        bootstrap, f"g-{prefix}", [f"{prefix}clicks", f"{prefix}reviews", f"{prefix}views"]
    )
    letters = read_topic(bootstrap, f"{prefix}dlq", len(bad))
    worker.stop()

    lost, duplicated = counted(qdrant, {"u9": len(good)})
    reliability.record(
        "poison records",
        injected=f"{len(bad)} hostile records before 2 good ones in one partition: invalid "
        "UTF-8, broken JSON, JSON nested 100,000 deep, a million-digit number, NaN, "
        "Infinity, 1e300, a 10 MB text, an unknown type, a missing field, a wrong type, a "
        "key that is not the user_id, no key",
        events=len(bad) + len(good),
        lost=lost + max(0, len(bad) - len(letters)),
        duplicated=duplicated + max(0, len(letters) - len(bad)),
    )
    assert len(letters) == len(bad)
    by_value = {m.value: dict(m.headers) for m in letters}
    keys = {m.value: m.key for m in letters}
    for _, raw, key in bad:
        assert keys[raw] == key  # the original key too
        headers = by_value[raw]  # the original bytes, unchanged
        assert headers["dlq.source-topic"].startswith(prefix.encode())
        assert int(headers["dlq.source-offset"]) >= 0
        assert headers["dlq.error-type"] and headers["dlq.error-message"]
    types = sorted(h["dlq.error-type"].decode() for h in by_value.values())
    assert types == sorted(
        [
            "InvalidJson",
            "InvalidUtf8",
            "MissingField",
            "WrongType",
            "InvalidJson",
            "InvalidTimestamp",
            "UnknownEventType",
            "InvalidJson",
            "InvalidJson",
            "KeyMismatch",
            "InvalidJson",
            "TextTooLong",
            "KeyMismatch",
        ]
    )
    check_oracle(qdrant, {"u9": [(1, T0), (2, T0 + 60)]})


@pytest.mark.reliability
@pytest.mark.parametrize("store", ["memory", "rocksdb", "memory, static"])
def test_a_killed_worker_recovers_its_state_and_counts_nothing_twice(
    pipeline, reliability, tmp_path: Path, store: str
) -> None:
    """kill -9 mid-stream and a restart, with the states in memory (restored from the
    changelog) or in RocksDB (on disk, plus the changelog past them); and with static
    membership (INTEREST_CONSUMER_INSTANCE_ID), which takes the partitions back at once."""
    prefix, worker, bootstrap, qdrant = pipeline
    worker.env |= {"INTEREST_STATE_STORE": store.split(",")[0]}
    if store.endswith("static"):
        worker.env |= {"INTEREST_CONSUMER_INSTANCE_ID": f"{prefix}w1"}
    worker.start()
    load_items(bootstrap, prefix, 10)
    clicks, records = round_robin(prefix, users=4, events=200, step_s=600.0)
    produce(bootstrap, records[:100])
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}items", f"{prefix}clicks"])
    produce(bootstrap, records[100:])
    worker.stop(signal.SIGKILL)  # mid-stream: no goodbye, no final commit
    if store == "rocksdb":  # the states are on disk
        faust = tmp_path / "data" / "faust"
        assert any(p.suffix in (".sst", ".log") for p in faust.rglob("*"))
    restarted = time.monotonic()
    worker.start()
    # Records Faust drops while the table recovers (faust-streaming #596) are read again:
    # mid-partition when a later record shows the hole, at the end once the agent idles
    # (streams/gaps.py).
    # About 13 s (dynamic: the 10 s session) or 7 s (static) on an idle machine (`make
    # recovery`); the timeout leaves room for a loaded CI machine.
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"], timeout=240)
    recovery = time.monotonic() - restarted
    worker.stop()
    scenario, injected = {
        "memory": (
            "worker killed",
            "kill -9 of the worker while 100 of 200 events were in flight, then a restart",
        ),
        "rocksdb": (
            "worker killed, RocksDB states",
            "the same kill -9 with INTEREST_STATE_STORE=rocksdb",
        ),
        "memory, static": (
            "worker killed, static membership",
            "the same kill -9 with INTEREST_CONSUMER_INSTANCE_ID set (restarted under it)",
        ),
    }[store]
    account(qdrant, clicks, reliability, scenario, injected, recovery)


@pytest.mark.reliability
@pytest.mark.slow
def test_the_worker_resumes_by_itself_after_a_broker_restart(
    pipeline, kafka_broker, reliability
) -> None:
    prefix, worker, bootstrap, qdrant = pipeline
    worker.start()
    load_items(bootstrap, prefix, 10)
    clicks, records = round_robin(prefix, users=4, events=200, step_s=600.0)
    produce(bootstrap, records[:100])
    kafka_broker.stop()  # under load: the worker is taking the first 100
    time.sleep(5)
    kafka_broker.start()
    restarted = time.monotonic()
    produce(bootstrap, records[100:])
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"], timeout=240)
    recovery = time.monotonic() - restarted
    assert worker.proc is not None and worker.proc.poll() is None  # the same process, resumed
    worker.stop()
    account(
        qdrant,
        clicks,
        reliability,
        "broker restarted",
        "the broker stopped for 5 s while the worker took 100 events, then 100 more",
        recovery,
    )


@pytest.mark.reliability
@pytest.mark.slow
def test_two_workers_killed_and_added_back_in_turn_lose_nothing(
    pipeline, tmp_path: Path, reliability
) -> None:
    """Two workers in one group, each with its own embedded store; one of them is killed
    with -9 and started again after each quarter of the events, in turn, the next turn
    coming before the restarted one is ready (so a kill can land mid-recovery, and a
    partition's first records can be lost before any commit: the gap guard reads them
    again). User states move between them through the changelog, so each user's newest
    point, whichever store holds it, must equal the oracle."""
    prefix, first, bootstrap, qdrant = pipeline
    other = tmp_path / "other"
    port = free_port()
    second = WorkerProcess(
        first.env | {"INTEREST_DATA_DIR": str(other), "INTEREST_METRICS_PORT": str(port)},
        tmp_path / "other.log",
    )
    second.metrics_url = f"http://127.0.0.1:{port}/metrics"
    workers = [first, second]
    first.start()
    load_items(bootstrap, prefix, 10)
    # The items in the second store too (a shared Qdrant server would hold them once):
    # a worker of another group on the second folder takes the items topic, then stops.
    preload = WorkerProcess(
        second.env | {"INTEREST_CONSUMER_GROUP": f"pre-{prefix}"}, tmp_path / "pre.log"
    )
    preload.start()
    try:
        wait_committed(bootstrap, f"pre-{prefix}", [f"{prefix}items"])
    finally:
        preload.stop()
    second.start()
    try:
        clicks, records = round_robin(prefix, users=8, events=400, step_s=300.0)
        until(lambda: all(ready(w) for w in workers), what="both workers ready")
        for turn in range(4):
            produce(bootstrap, records[turn * 100 : (turn + 1) * 100])
            time.sleep(1.0)  # the group is busy with this quarter
            victim = workers[turn % 2]
            victim.stop(signal.SIGKILL)
            victim.start()  # the next turn comes before it is ready: kills mid-recovery
            restarted = time.monotonic()
        wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"], timeout=300)
        recovery = time.monotonic() - restarted
    finally:
        for w in workers:
            w.stop()
    stores = [
        open_store(path=s.qdrant_location, backend=s.qdrant_backend)
        for s in (qdrant, Settings(data_dir=other))
    ]
    try:
        newest = {}
        for user in clicks:
            points = [p for p in (s.user(user) for s in stores) if p is not None]
            newest[user] = max(
                points, key=lambda p: (p.payload["event_count"], p.payload["updated_at"])
            )
    finally:
        for s in stores:
            s.close()
    lost = sum(max(0, len(clicks[u]) - p.payload["event_count"]) for u, p in newest.items())
    duplicated = sum(max(0, p.payload["event_count"] - len(clicks[u])) for u, p in newest.items())
    reliability.record(
        "workers killed in turn",
        injected="two workers in one group; kill -9 of one of them and a restart after each "
        "quarter of the events, four times",
        events=len(records),
        lost=lost,
        duplicated=duplicated,
        recovery_s=recovery,
    )
    assert (lost, duplicated) == (0, 0)
    item_vecs = None
    store = open_store(path=qdrant.qdrant_location, backend=qdrant.qdrant_backend)
    try:
        item_vecs = store.item_vectors(store.serving(), [str(i) for i in range(10)])
    finally:
        store.close()
    for user, point in newest.items():
        for name, h in HALF.items():
            np.testing.assert_allclose(
                point.vector[name], oracle(clicks[user], item_vecs, h), atol=1e-4
            )


@pytest.mark.reliability
def test_a_forgotten_user_stays_forgotten_through_a_replay(
    pipeline, monkeypatch: pytest.MonkeyPatch, reliability
) -> None:
    prefix, worker, bootstrap, qdrant = pipeline
    worker.start()
    load_items(bootstrap, prefix, 10)
    clicks = {u: [(k % 10, T0 + k * 60.0) for k in range(6)] for u in ("u1", "u2")}
    records = [
        click(prefix, f"{u}-{k}", u, item, ts)
        for u, events in clicks.items()
        for k, (item, ts) in enumerate(events)
    ]
    produce(bootstrap, records)
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"])
    monkeypatch.setenv("INTEREST_KAFKA_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("INTEREST_TOPIC_PREFIX", prefix)
    assert cli_main(["forget", "u1", "--at", str(T0 + 3600)]) == 0
    produce(bootstrap, records)  # the same history again, as a replay would send it
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks", f"{prefix}forget"])
    worker.stop()
    lost, duplicated = counted(qdrant, {"u1": 0, "u2": 6})  # u1: nothing may come back
    reliability.record(
        "user forgotten",
        injected="forget one of two users, then replay both users' 12 events",
        events=2 * len(records),
        lost=lost,
        duplicated=duplicated,
    )
    store = open_store(path=qdrant.qdrant_location, backend=qdrant.qdrant_backend)
    try:
        assert store.user("u1") is None
        assert store.user("u2").payload["event_count"] == 6
    finally:
        store.close()


def test_a_user_rebuilt_from_the_topics_equals_the_user_the_stream_built(
    pipeline, tmp_path: Path
) -> None:
    """What a roll-out's backfill does: a second consumer group reads the same topics from
    the start into its own store. Its users equal the stream's, vector for vector."""
    prefix, worker, bootstrap, qdrant = pipeline
    worker.start()
    load_items(bootstrap, prefix, 10)
    rng = np.random.default_rng(3)
    records = [
        click(prefix, f"e{k}", f"u{k % 3}", int(rng.integers(10)), T0 + float(rng.uniform(0, 9e5)))
        for k in range(60)
    ]
    produce(bootstrap, records)
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"])
    worker.stop()
    rebuilt = tmp_path / "rebuilt"
    second = WorkerProcess(
        worker.env
        | {"INTEREST_CONSUMER_GROUP": f"rebuild-{prefix}", "INTEREST_DATA_DIR": str(rebuilt)},
        tmp_path / "rebuild.log",
    )
    second.start()
    try:
        wait_committed(bootstrap, f"rebuild-{prefix}", [f"{prefix}items", f"{prefix}clicks"])
    finally:
        second.stop()
    stores = [
        open_store(path=s.qdrant_location, backend=s.qdrant_backend)
        for s in (qdrant, Settings(data_dir=rebuilt))
    ]
    try:
        for user in ("u0", "u1", "u2"):
            streamed, again = (s.user(user) for s in stores)
            assert again.payload["event_count"] == streamed.payload["event_count"] == 20
            for name in HALF:
                np.testing.assert_allclose(again.vector[name], streamed.vector[name], atol=1e-6)
    finally:
        for s in stores:
            s.close()


def two_versions(tiny_source_dir: Path, root: Path) -> tuple[str, str]:
    """A models root with two tiny models of different weights; the first is CURRENT."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from export.pipeline import export_model
    from tests.conftest import _Null

    other = root.parent / "tiny-other"
    shutil.copytree(tiny_source_dir, other)
    torch.manual_seed(1)
    BertModel(BertConfig.from_pretrained(other)).eval().save_pretrained(other)
    v1 = export_model(tiny_source_dir, root, set_current=True, log=_Null()).version
    v2 = export_model(other, root, set_current=False, log=_Null()).version
    return v1, v2


@pytest.mark.slow
@pytest.mark.parametrize(
    "crash",
    [
        pytest.param(False, id="clean"),
        pytest.param(True, id="killed-mid-backfill", marks=pytest.mark.reliability),
    ],
)
def test_a_rollout_writes_both_versions_backfills_the_new_one_and_switches(
    pipeline, tiny_source_dir: Path, tmp_path: Path, crash: bool, reliability
) -> None:
    """v1 streams 300 events; v2 is promoted; a worker with INTEREST_ROLLOUT writes both,
    backfills v2 from the topics (and, once, is killed while at it), switches the aliases to
    v2 and keeps v1 fresh. Both versions then equal their oracles over all 420 events."""
    prefix, worker, bootstrap, qdrant = pipeline
    root = tmp_path / "models"
    v1, v2 = two_versions(tiny_source_dir, root)
    worker.env = worker.env | {"INTEREST_MODEL_DIR": str(root)}
    worker.start()
    load_items(bootstrap, prefix, 10)
    clicks, records = round_robin(prefix, users=6, events=420, step_s=600.0)
    produce(bootstrap, records[:300])
    group, topics = f"g-{prefix}", [f"{prefix}items", f"{prefix}clicks"]
    wait_committed(bootstrap, group, topics)
    worker.stop()
    (root / "CURRENT").write_text(v2)  # promoted
    worker.env = worker.env | {"INTEREST_ROLLOUT": "true", "INTEREST_BACKFILL_CHUNK": "8"}
    if crash:  # every Qdrant call 20 ms slower: a backfill long enough to be killed in
        faults = tmp_path / "faults"
        faults.mkdir()
        (faults / "slow").write_text("0.02")
        worker.env = worker.env | {
            "INTEREST_BACKFILL_CHUNK": "2",
            "INTEREST_TEST_FAULTS": str(faults),
        }
        worker.module = "tests.streams.faulty_store"
    worker.start()
    produce(bootstrap, records[300:360])  # live while the backfill runs
    switched = "the aliases now serve"
    since = 0  # where the restarted worker's log begins
    if crash:
        done = f'interest_backfill_records{{of="done",version="{v2}"}}'
        # past the 10 items, into the users
        until(lambda: scrape_or_empty(worker.metrics_url).get(done, 0) > 40, 120, "backfill")
        worker.stop(signal.SIGKILL)
        log = worker.log.read_text()
        assert switched not in log  # killed while backfilling, not after
        since = len(log)
        restarted = time.monotonic()
        worker.start()
    until(lambda: switched in worker.log.read_text()[since:], 180, "the switch")
    recovery = time.monotonic() - restarted if crash else 0.0
    produce(bootstrap, records[360:])  # after the switch: v1 is written too until a restart
    wait_committed(bootstrap, group, topics, timeout=120)
    worker.stop()
    store = open_store(path=qdrant.qdrant_location, backend=qdrant.qdrant_backend)
    try:
        assert store.serving() == v2
    finally:
        store.close()
    if crash:  # the row is the new version's; the old one is checked just below
        account(
            qdrant,
            clicks,
            reliability,
            "worker killed mid-roll-out",
            "a roll-out to a new model version: kill -9 of the worker while it backfilled "
            "300 events of history, 60 events live meanwhile and 60 after the switch",
            recovery,
        )
    check_oracle(qdrant, clicks, v2)
    check_oracle(qdrant, clicks, v1)


def test_rollout_follows_the_group_until_it_caught_up_then_switches(
    pipeline, tiny_model_dir: Path, monkeypatch, capsys
) -> None:
    prefix, worker, bootstrap, qdrant = pipeline
    for name in ("INTEREST_KAFKA_BOOTSTRAP", "INTEREST_TOPIC_PREFIX", "INTEREST_DATA_DIR"):
        monkeypatch.setenv(name, worker.env[name])
    version = load_model(tiny_model_dir).version
    worker.start()
    load_items(bootstrap, prefix, 10)
    _, records = round_robin(prefix, users=4, events=100, step_s=600.0)
    produce(bootstrap, records)
    follow = ["rollout", version, "--group", f"g-{prefix}", "--timeout", "120", "--json"]
    assert cli_main(follow) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["committed"] == result["total"] == 110  # 10 items, 100 clicks
    assert not result["switched"]
    worker.stop()  # the embedded store is one process's: the switch needs it free
    assert cli_main([*follow, "--switch"]) == 0
    assert orjson.loads(capsys.readouterr().out)["switched"]
    store = open_store(path=qdrant.qdrant_location, backend=qdrant.qdrant_backend)
    try:
        assert store.serving() == version
    finally:
        store.close()


def rss_mb(worker: WorkerProcess) -> float:
    assert worker.proc is not None
    status = Path(f"/proc/{worker.proc.pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1]) / 1024


@pytest.mark.reliability
@pytest.mark.slow
def test_qdrant_slow_then_away_pauses_the_stream_and_loses_nothing(
    pipeline, tmp_path: Path, reliability
) -> None:
    """Qdrant takes 2 s a call, then refuses every call: the worker stops taking records
    (nothing committed, nothing dead-lettered, memory flat) and drains once Qdrant is back."""
    prefix, worker, bootstrap, qdrant = pipeline
    faults = tmp_path / "faults"
    faults.mkdir()
    worker.env = worker.env | {"INTEREST_TEST_FAULTS": str(faults)}
    worker.module = "tests.streams.faulty_store"
    worker.start()
    load_items(bootstrap, prefix, 10)
    clicks, records = round_robin(prefix, users=8, events=400, step_s=600.0)
    (faults / "slow").write_text("2")
    produce(bootstrap, records[:200])
    time.sleep(10)
    (faults / "down").touch()
    produce(bootstrap, records[200:])
    time.sleep(5)  # the window in flight meets the outage
    before = rss_mb(worker)
    time.sleep(20)
    during = rss_mb(worker)
    assert worker.proc is not None and worker.proc.poll() is None
    group, topic = f"g-{prefix}", f"{prefix}clicks"
    assert asyncio.run(group_lag(Settings(kafka_bootstrap=bootstrap), group, [topic])) > 0
    retried = scrape(worker.metrics_url)
    assert retried.get("interest_qdrant_errors_total", 0) > 0
    (faults / "down").unlink()
    (faults / "slow").unlink()
    back = time.monotonic()
    wait_committed(bootstrap, group, [topic], timeout=240)
    recovery = time.monotonic() - back
    assert read_topic(bootstrap, f"{prefix}dlq", 1, timeout=3) == []  # no valid event died
    worker.stop()
    assert during - before < 100, (before, during)  # MB, over 20 s of refused calls
    account(
        qdrant,
        clicks,
        reliability,
        "Qdrant slow, then away",
        "every Qdrant call 2 s slower for 10 s, then refused for 25 s, while 400 events came",
        recovery,
    )


def scrape(url: str) -> dict[str, float]:
    """The endpoint's samples as ``{'name{label="v",...}': value}`` (labels sorted)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def scrape_or_empty(url: str) -> dict[str, float]:
    """``scrape``, or nothing while the endpoint is not up (a worker starting)."""
    try:
        return scrape(url)
    except OSError:
        return {}


def ready(worker: WorkerProcess) -> bool:
    """The worker's healthcheck passes (model loaded, Qdrant open, metrics served)."""
    return cli_main(["health", "--url", worker.metrics_url]) == 0


def until(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} not met within {timeout:.0f} s")


def test_metrics_move_as_events_flow_and_logs_are_json(pipeline, tmp_path: Path) -> None:
    prefix, worker, bootstrap, _ = pipeline
    worker.start()
    url = worker.metrics_url
    until(lambda: cli_main(["health", "--url", url]) == 0, what="the worker ready")
    before = scrape(url)
    assert before["interest_worker_ready"] == 1
    assert [k for k in before if k.startswith("interest_model_info{")]
    assert before.get('interest_events_total{topic="clicks",type="click"}', 0) == 0

    load_items(bootstrap, prefix, 5)
    clicks = [click(prefix, f"e{k}", f"u{k % 3}", k % 5, T0 + k) for k in range(30)]
    review = (
        f"{prefix}reviews",
        {"event_id": "r1", "user_id": "u1", "item_id": 1, "ts": T0 + 99, "text": "so good"},
        b"u1",
    )
    produce(bootstrap, [*clicks, review, (f"{prefix}clicks", b"{not json", b"u0")])
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks", f"{prefix}reviews"])
    after = scrape(url)

    assert after['interest_events_total{topic="clicks",type="click"}'] == 30
    assert after['interest_events_total{topic="reviews",type="review"}'] == 1
    assert after['interest_events_total{topic="items",type="item"}'] == 5
    assert after['interest_dlq_total{error="InvalidJson"}'] == 1
    assert after["interest_texts_encoded_total"] == 6  # 5 item texts and 1 review
    moved = [
        "interest_encoder_batch_rows_count",
        'interest_qdrant_write_seconds_count{collection="users"}',
        'interest_qdrant_write_seconds_count{collection="items"}',
        'interest_freshness_seconds_count{clock="produce"}',
        'interest_freshness_seconds_count{clock="event"}',
    ]
    for name in moved:
        assert after[name] > before.get(name, 0), name
    # The lag gauge covers the assigned partitions and falls to 0 once all is committed.
    lags = until(
        lambda: {k: v for k, v in scrape(url).items() if k.startswith("interest_consumer_lag{")},
        timeout=20,
        what="a lag sample",
    )
    assert any(f'topic="{prefix}clicks"' in k for k in lags)
    until(lambda: not any(v for k, v in scrape(url).items() if "consumer_lag{" in k), 20)
    worker.stop()

    lines = [ln for ln in worker.log.read_text().splitlines() if ln.startswith("{")]
    logged = [orjson.loads(ln) for ln in lines]
    assert any(e["logger"] == "streams.worker.app" and "model" in e["message"] for e in logged)
    assert all({"ts", "level", "logger", "message"} <= e.keys() for e in logged)


def test_tiny_model_loads(tiny_model_dir: Path) -> None:
    assert load_model(tiny_model_dir).dimension == 32


@pytest.mark.reliability
def test_sigterm_mid_outage_stops_the_worker_within_10_s_and_loses_nothing(
    pipeline, tmp_path: Path, reliability
) -> None:
    """Qdrant refuses every call, the worker retries a window; SIGTERM (compose's stop, 10 s
    grace) ends it in time, nothing unwritten is committed, and a restart counts each event
    once."""
    prefix, worker, bootstrap, qdrant = pipeline
    faults = tmp_path / "faults"
    faults.mkdir()
    worker.env = worker.env | {"INTEREST_TEST_FAULTS": str(faults), "INTEREST_STUCK_AFTER_S": "3"}
    worker.module = "tests.streams.faulty_store"
    worker.start()
    load_items(bootstrap, prefix, 3)
    until(lambda: ready(worker), 60, "ready")
    (faults / "down").write_text("")
    produce(bootstrap, [click(prefix, "s1", "u1", 1, T0), click(prefix, "s2", "u1", 2, T0 + 60)])
    until(lambda: "events window failed" in worker.log.read_text(), 60, "a retried window")
    # Records wait and no window completes: the healthcheck says not ready.
    until(lambda: scrape_or_empty(worker.metrics_url).get("interest_worker_stuck") == 1, 30)
    assert not ready(worker)
    # ... and its log says where the consumer stands: the agent busy with the window, and
    # the clicks partition's committed offset and end
    stuck = next(line for line in worker.log.read_text().splitlines() if "stuck:" in line)
    assert "busy agents ['events']" in stuck and f"{prefix}clicks/" in stuck, stuck
    assert worker.proc is not None
    asked = time.monotonic()
    os.killpg(worker.proc.pid, signal.SIGTERM)
    try:
        code = worker.proc.wait(30)
    finally:
        worker.stop(signal.SIGKILL)
    took = time.monotonic() - asked
    assert took <= 10, f"the worker took {took:.1f} s to stop"
    assert code is not None
    (faults / "down").unlink()
    worker.start()
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"], timeout=120)
    worker.stop()
    lost, duplicated = counted(qdrant, {"u1": 2})
    reliability.record(
        "SIGTERM mid-outage",
        injected=f"Qdrant refusing every call, a window in retry, then SIGTERM: stopped in "
        f"{took:.1f} s; restarted once Qdrant came back",
        events=2,
        lost=lost,
        duplicated=duplicated,
    )
    assert (lost, duplicated) == (0, 0)


@pytest.mark.reliability
def test_an_event_whose_item_comes_60_s_later_is_parked_then_folded(pipeline, reliability) -> None:
    """Clicks on items 5..9 come 60 s before those items: parked, taken again every
    second, folded once the items are there; none lost, none counted twice."""
    prefix, worker, bootstrap, qdrant = pipeline
    worker.env |= {"INTEREST_PARK_RETRY_S": "1"}
    worker.start()
    produce(bootstrap, item_records(prefix, 5))  # items 0..4 only
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}items"])
    clicks, records = round_robin(prefix, users=3, events=30, step_s=60.0)
    produce(bootstrap, records)
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"])
    parked = read_topic(bootstrap, f"{prefix}parked", 15)
    assert len({m.value for m in parked}) == 15  # the clicks on items 5..9
    time.sleep(max(0.0, 60 - (time.time() - parked[0].timestamp / 1000)))
    arrived = time.monotonic()
    produce(bootstrap, item_records(prefix, 10)[5:])
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}items"])
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}parked"], timeout=60)
    folded_s = time.monotonic() - arrived
    worker.stop()
    assert not read_topic(bootstrap, f"{prefix}dlq", 1, timeout=2)
    account(
        qdrant,
        clicks,
        reliability,
        "late catalogue",
        injected="15 of 30 clicks come 60 s before their items",
        recovery_s=folded_s,
    )


@pytest.mark.reliability
def test_a_replay_of_a_long_history_counts_once(pipeline, reliability) -> None:
    """1,000 clicks of one user sent twice, with a dedupe window of 256 ids: counted
    once; the replayed clicks older than the window are dead-lettered as TooLate."""
    prefix, worker, bootstrap, qdrant = pipeline
    worker.env |= {"INTEREST_DEDUPE_WINDOW": "256"}
    worker.start()
    load_items(bootstrap, prefix, 10)
    history = [(k % 10, T0 + k * 60.0) for k in range(1000)]
    records = [click(prefix, f"h{k}", "u1", item, ts) for k, (item, ts) in enumerate(history)]
    produce(bootstrap, records)
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"])
    produce(bootstrap, records)  # the same history again, as a second replay sends it
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"])
    letters = read_topic(bootstrap, f"{prefix}dlq", 744)
    worker.stop()
    assert {dict(m.headers)["dlq.error-type"] for m in letters} == {b"TooLate"}
    assert len(letters) == 1000 - 256
    account(
        qdrant,
        {"u1": history},
        reliability,
        "replay twice",
        injected="one user's 1,000 clicks sent twice (dedupe window 256)",
        recovery_s=None,
    )


@pytest.mark.reliability
def test_a_bug_on_one_user_dead_letters_that_users_records_and_the_rest_flows(
    pipeline, tmp_path: Path, reliability
) -> None:
    """Every write of user u1 raises ZeroDivisionError (a bug, not an outage): the window is
    retried INTEREST_UNEXPECTED_RETRIES times, then record by record; u1's records go to
    the dead letters as UnexpectedError, u2's are folded, and the partition moves on."""
    prefix, worker, bootstrap, qdrant = pipeline
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "bug").write_text("u1\n")
    worker.env = worker.env | {
        "INTEREST_TEST_FAULTS": str(faults),
        "INTEREST_UNEXPECTED_RETRIES": "2",
    }
    worker.module = "tests.streams.faulty_store"
    worker.start()
    load_items(bootstrap, prefix, 10)
    clicks = {
        "u1": [(k, T0 + k * 60.0) for k in range(5)],
        "u2": [(k, T0 + k * 60.0) for k in range(5)],
    }
    records = [
        click(prefix, f"{u}-{k}", u, i, ts)
        for u, es in clicks.items()
        for k, (i, ts) in enumerate(es)
    ]
    started = time.monotonic()
    produce(bootstrap, records)
    wait_committed(bootstrap, f"g-{prefix}", [f"{prefix}clicks"], timeout=120)
    took = time.monotonic() - started
    letters = read_topic(bootstrap, f"{prefix}dlq", 5)
    worker.stop()
    assert sorted(m.key for m in letters) == [b"u1"] * 5
    messages = [dict(m.headers)["dlq.error-message"].decode() for m in letters]
    assert all("ZeroDivisionError" in m and "faulty_store.py" in m for m in messages)
    lost, duplicated = counted(qdrant, {"u1": 0, "u2": 5})
    reliability.record(
        "a bug on one user",
        injected="every write of one of two users raises ZeroDivisionError: its 5 records "
        "dead-lettered as UnexpectedError (with the error and its line), the other's 5 folded",
        events=len(records),
        lost=lost + max(0, 5 - len(letters)),
        duplicated=duplicated,
        recovery_s=took,
    )
    assert (lost, duplicated) == (0, 0)
    check_oracle(qdrant, {"u2": clicks["u2"]})
