"""``eval --through-pipeline``: the test split measured through the real stream.

Every interaction except each user's test target is published as an event (the replay's
mapping: a rating of 4 or more is a click, else a view, each carrying its rating; without
ratings every event is a click) to private topics, after the items; a worker subprocess
turns them into user vectors in its own embedded Qdrant. When the group has committed
every event the worker stops, and each user is ranked by the call a downstream service
makes (``Store.recommend``: the ``items`` alias queried with the user's ``short`` vector),
the user's history excluded. The metrics must match the offline ``serving`` row. For a
head that decays by events, every event goes to ``clicks`` (views say so in ``type``): a
user's events must arrive in their order, which Kafka keeps within one topic's partition.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from encoder.registry import resolve_model_dir
from streams.datasets.replay import Record, publish, rating_topic
from streams.errors import StreamError
from streams.evaluation.metrics import MISS, TOP, metrics
from streams.evaluation.protocol import Split
from streams.head import load_head
from streams.kafka.groups import wait_caught_up
from streams.settings import Settings
from streams.store import open_store
from streams.worker.spawn import private_settings, spawned_worker

CATCH_UP_S = 3600.0


def history_events(split: Split, one_topic: bool = False) -> list[Record]:
    """The test split's histories as stream events, in time order (ties by user, item).
    ``one_topic``: every event on ``clicks``, a view said by its ``type`` field, so that a
    user's events arrive in this order (Kafka keeps order within a partition, not across
    the clicks and views topics): what a head that decays by events needs."""
    records = []
    for u, user_id in enumerate(split.users):
        for j in range(split.history_length(u, "test")):
            item_id = split.items[split.sequences[u][j]]
            ts = float(split.times[u][j])
            value: dict[str, Any] = {
                "event_id": f"e{user_id}-{j}",
                "user_id": user_id,
                "item_id": item_id,
                "ts": ts,
            }
            topic = "clicks"
            if split.ratings is not None:
                value["rating"] = float(split.ratings[u][j])
                topic = rating_topic(value["rating"])
            if one_topic and topic != "clicks":
                value["type"], topic = topic.rstrip("s"), "clicks"  # "views" -> a view
            records.append(Record(topic, user_id, value, ts))
    records.sort(key=lambda r: r.ts)  # stable: users, then their own order
    return records


def through_pipeline(split: Split, settings: Settings, progress: bool = True) -> dict[str, Any]:
    """Metrics of the test split ranked by Qdrant after the stream built every user."""
    run = private_settings(settings, "eval")
    workdir = Path(tempfile.mkdtemp(prefix="interest-eval-"))
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    items = [
        Record("items", item_id, {"item_id": item_id, "text": text}, 0.0)
        for item_id, text in zip(split.items, split.texts, strict=True)
    ]
    head = load_head(resolve_model_dir(settings.models_root))
    events = history_events(split, one_topic=head is not None and head.half_life_events is not None)
    with spawned_worker(run, workdir, settings.models_root) as worker:
        say(f"through the pipeline: worker log {worker.log}")
        asyncio.run(publish(items, run, None, progress, desc="items"))
        wait_caught_up(
            run, run.consumer_group, [run.topic("items")], CATCH_UP_S, check=worker.check
        )
        asyncio.run(publish(events, run, None, progress, desc="events"))
        wait_caught_up(
            run,
            run.consumer_group,
            [run.topic(t) for t in ("clicks", "views")],
            CATCH_UP_S,
            check=worker.check,
        )
    return rank_in_qdrant(split, worker.qdrant_location, settings, progress)


def rank_in_qdrant(
    split: Split, location: Path, settings: Settings, progress: bool = True
) -> dict[str, Any]:
    index = {item_id: n for n, item_id in enumerate(split.items)}
    store = open_store(None, None, location, settings.qdrant_backend)
    ranks, tops, missing = [], [], 0
    try:
        users = tqdm(split.users, desc="rank in Qdrant", disable=not progress, file=sys.stderr)
        for u, user_id in enumerate(users):
            history = split.sequences[u][: split.history_length(u, "test")]
            if store.user(user_id) is None:
                missing += 1
                continue
            hits = store.recommend(user_id, k=TOP, exclude=[split.items[i] for i in history])
            top = [index[hit.payload["item_id"]] for hit in hits]
            target = split.target(u, "test")
            ranks.append(top.index(target) if target in top else MISS)
            tops.append(top)
    finally:
        store.close()
    if missing:
        raise StreamError(f"{missing} of {len(split.users)} users never reached Qdrant")
    return metrics(np.asarray(ranks), tops, len(split.items))
