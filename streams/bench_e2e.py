"""``interest-stream bench e2e``: broker, worker and producer on one machine, measured.

One run, two phases, against the local broker and a worker subprocess (its own topics,
consumer group and embedded Qdrant in a temporary folder):

1. throughput: ``events`` click/view events (no text) produced as fast as the broker takes
   them; ``events_per_s`` = events / (first send -> the group has committed every one),
   i.e. sustained processing including the Qdrant writes;
2. freshness: events at ``rate`` per second for ``seconds`` with 10% reviews (texts to
   encode); freshness = Qdrant acknowledged the user's write - the event's produce time
   (Kafka record timestamp), recorded by the worker for every event.

Items (``items``, synthetic titles) are loaded and processed before either phase.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from streams.replay import Record, publish
from streams.settings import Settings
from streams.spawn import private_settings, spawned_worker
from streams.store import backend_for
from streams.topics import wait_caught_up

WORDS = [
    "great",
    "fun",
    "slow",
    "brilliant",
    "boring",
    "dark",
    "funny",
    "moving",
    "clever",
    "long",
    "quiet",
    "loud",
]


def run_e2e(
    settings: Settings,
    *,
    events: int = 100_000,
    rate: float = 1000.0,
    seconds: float = 20.0,
    items: int = 500,
    users: int = 5000,
    progress: bool = True,
) -> dict[str, Any]:
    run = private_settings(settings, "bench")
    prefix, tag = run.topic_prefix, run.consumer_group
    workdir = Path(tempfile.mkdtemp(prefix="interest-bench-"))
    rng = random.Random(3)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    with spawned_worker(run, workdir, settings.models_root) as worker:
        say(f"[1/3] loading {items} items (worker log: {worker.log})")
        item_recs = [
            Record(
                "items",
                str(i),
                {
                    "item_id": i,
                    "text": f"Movie {i}: " + " ".join(rng.choice(WORDS) for _ in range(6)),
                },
                0.0,
            )
            for i in range(items)
        ]
        asyncio.run(publish(item_recs, run, None, progress=False))
        wait_caught_up(run, tag, [f"{prefix}items"], timeout=600, check=worker.check)

        say(f"[2/3] throughput: {events} click/view events at max rate")
        t0 = time.time()
        recs = [_event(n, rng, users, items, review=False) for n in range(events)]
        asyncio.run(publish(recs, run, None, progress, desc="produce"))
        wait_caught_up(
            run, tag, [f"{prefix}clicks", f"{prefix}views"], timeout=1800, check=worker.check
        )
        events_per_s = events / (time.time() - t0)

        n_fresh = int(rate * seconds)
        say(f"[3/3] freshness: {n_fresh} events at {rate:.0f}/s with 10% reviews")
        start_ms = time.time() * 1000
        recs = [
            _event(events + n, rng, users, items, review=rng.random() < 0.1) for n in range(n_fresh)
        ]
        asyncio.run(publish(recs, run, rate, progress, desc="produce"))
        wait_caught_up(
            run,
            tag,
            [f"{prefix}clicks", f"{prefix}views", f"{prefix}reviews"],
            timeout=600,
            check=worker.check,
        )
        time.sleep(1.5)  # the worker dumps its stats every second
        stats = orjson.loads(worker.stats_file.read_bytes())
    fresh = np.asarray([f for p, f in stats["freshness"] if p >= start_ms])
    counts = stats["counts"]
    return {
        "events": events,
        "events_per_s": round(events_per_s, 1),
        "freshness_events": len(fresh),
        "freshness_rate": rate,
        "freshness_p50_ms": round(float(np.percentile(fresh, 50)), 1) if len(fresh) else None,
        "freshness_p99_ms": round(float(np.percentile(fresh, 99)), 1) if len(fresh) else None,
        "encoded_texts": counts.get("encoded_texts", 0),
        "dlq": counts.get("dlq", 0),
        "backend": backend_for(None, worker.qdrant_location, settings.qdrant_backend),
        "users": users,
        "items": items,
    }


def _event(n: int, rng: random.Random, users: int, items: int, review: bool) -> Record:
    user = str(rng.randrange(users))
    value: dict[str, Any] = {
        "event_id": f"b{n}",
        "user_id": user,
        "item_id": rng.randrange(items),
        "ts": time.time(),
    }
    if review:
        value["text"] = f"{n} " + " ".join(rng.choice(WORDS) for _ in range(12))
        return Record("reviews", user, value, value["ts"])
    return Record("clicks" if rng.random() < 0.5 else "views", user, value, value["ts"])
