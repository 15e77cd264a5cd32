"""``interest-stream bench state``: user states in memory against RocksDB, at scale.

For each store (``INTEREST_STATE_STORE``), a worker subprocess on private topics takes one
click from each of ``users`` synthetic users, is stopped (SIGTERM), and is started again
on the same folder. Figures per store:

- ``fold_s``: from the first click sent until the group has committed the last;
- ``rss_mb_loaded``: the worker's resident memory with every state made;
- ``restart_s``: from the second start until a probe click sent right then is committed
  (the agents take records only once the table is restored, so this is the restore);
- ``rss_mb_restarted``: resident memory after it;
- ``disk_mb``: what the worker keeps under its data folder (RocksDB's files, for rocksdb).

    result = run_state(load_settings(), users=100_000)
    result["stores"]["rocksdb"]["restart_s"]
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from streams.bench.soak import resident_mb
from streams.bench.synthetic import load_items
from streams.datasets.replay import Record, publish
from streams.kafka.groups import wait_caught_up
from streams.settings import Settings
from streams.worker.spawn import private_settings, spawned_worker

STORES = ("memory", "rocksdb")


def run_state(
    settings: Settings,
    *,
    users: int,
    items: int = 500,
    stores: tuple[str, ...] = STORES,
    progress: bool = True,
) -> dict[str, Any]:
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    out: dict[str, Any] = {"users": users, "stores": {}}
    for store in stores:
        say(f"== {store}: {users:,} users")
        out["stores"][store] = _one(settings, store, users, items, progress, say)
        say(f"   {out['stores'][store]}")
    return out


def _one(
    settings: Settings, store: str, users: int, items: int, progress: bool, say: Any
) -> dict[str, Any]:
    run = private_settings(settings.model_copy(update={"state_store": store}), f"state{store}")
    workdir = Path(tempfile.mkdtemp(prefix=f"interest-state-{store}-"))
    topics = [run.topic("clicks")]
    try:
        with spawned_worker(run, workdir, settings.models_root) as worker:
            say(f"   loading {items} items (worker log: {worker.log})")
            load_items(run, worker, items, random.Random(3))
            rng = random.Random(7)
            clicks = [_click(f"s{u}", str(u), rng.randrange(items)) for u in range(users)]
            started = time.perf_counter()
            asyncio.run(publish(clicks, run, None, progress=progress, desc="clicks"))
            wait_caught_up(run, run.consumer_group, topics, timeout=3600, check=worker.check)
            fold_s = time.perf_counter() - started
            loaded = resident_mb(worker.process.pid)
        with spawned_worker(run, workdir, settings.models_root) as worker:
            started = time.perf_counter()
            probe = [_click("probe", "0", 0)]
            asyncio.run(publish(probe, run, None, progress=False))
            wait_caught_up(run, run.consumer_group, topics, timeout=3600, check=worker.check)
            restart_s = time.perf_counter() - started
            restarted = resident_mb(worker.process.pid)
        disk = sum(p.stat().st_size for p in (workdir / "data").rglob("*") if p.is_file())
        return {
            "fold_s": round(fold_s, 1),
            "users_per_s": round(users / fold_s, 1),
            "rss_mb_loaded": round(loaded, 1),
            "restart_s": round(restart_s, 1),
            "rss_mb_restarted": round(restarted, 1),
            "disk_mb": round(disk / 2**20, 1),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _click(event_id: str, user: str, item: int) -> Record:
    value = {"event_id": event_id, "user_id": user, "item_id": item, "ts": time.time()}
    return Record("clicks", user, value, 0.0)
