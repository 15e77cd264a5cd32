"""The synthetic catalogue and events that ``bench e2e`` and ``bench soak`` both use.

load_items(run, worker, items=500, rng=random.Random(0))   # "Movie 7: fun dark ..."
record = synthetic_event(n, rng, users=5000, items=500, review=False)
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from streams.datasets.replay import Record, publish
from streams.kafka.groups import wait_caught_up
from streams.settings import Settings
from streams.worker.spawn import SpawnedWorker

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


def load_items(run: Settings, worker: SpawnedWorker, items: int, rng: random.Random) -> None:
    """Synthetic items ("Movie 7: fun dark ..."), published and taken by the worker."""
    recs = [
        Record(
            "items",
            str(i),
            {"item_id": i, "text": f"Movie {i}: " + " ".join(rng.choice(WORDS) for _ in range(6))},
            0.0,
        )
        for i in range(items)
    ]
    asyncio.run(publish(recs, run, None, progress=False))
    wait_caught_up(run, run.consumer_group, [run.topic("items")], timeout=600, check=worker.check)


def synthetic_event(n: int, rng: random.Random, users: int, items: int, review: bool) -> Record:
    """Event ``n``: a click or a view (or a review with ``review``) of a random user and item."""
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
