"""``interest-stream replay``: publish a dataset as the pipeline's events.

MovieLens mapping (``--dataset movielens --path DIR``):

* ``movies.csv`` -> ``items``: ``item_id`` = movieId, ``text`` = "Title (year). Genres: A, B"
  (no genres when the file says "(no genres listed)");
* ``ratings.csv`` -> ``clicks`` when rating >= 4, else ``views``, each carrying its
  ``rating`` (so its weight is rating-derived: (rating - 3) / 2);
* ``tags.csv`` -> ``reviews`` with the tag as ``text``;
* with ``feedback=True``, each rating also becomes a ``feedback`` signal on its item one
  second after it, as if a recommendation of that item had been acted on: ``positive`` from
  CLICK_RATING up, ``negative`` at NEGATIVE_RATING or below, none in between.

Items go first, then every event in time order (ties by user, item). Events are keyed by
``user_id``, items by ``item_id``; event ids are stable (``r<user>-<item>-<ts>``,
``t<row>``), so replaying twice counts nothing twice.

    stats = replay_movielens(Path(".../movielens-latest-small"), settings, rate=None)
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from streams.datasets.csvrows import csv_rows, number
from streams.errors import StreamError
from streams.kafka.client import kafka_security
from streams.kafka.groups import wait_caught_up
from streams.settings import Settings

HINT = ": is --path a MovieLens folder?"
CLICK_RATING = 4.0  # a rated interaction is a click from this rating up, else a view
NEGATIVE_RATING = 2.0  # replayed feedback: a negative signal at this rating or below


def rating_topic(rating: float) -> str:
    """Where a rated interaction goes: ``clicks`` from CLICK_RATING up, else ``views``."""
    return "clicks" if rating >= CLICK_RATING else "views"


@dataclasses.dataclass(frozen=True)
class Record:
    topic: str  # without prefix
    key: str
    value: dict[str, Any]
    ts: float


def movielens_items(path: Path) -> Iterator[Record]:
    for _, row in csv_rows(path / "movies.csv", ("movieId", "title", "genres"), (), HINT):
        genres = row["genres"].split("|") if row["genres"] != "(no genres listed)" else []
        text = row["title"] + (f". Genres: {', '.join(genres)}" if genres else "")
        yield Record("items", row["movieId"], {"item_id": row["movieId"], "text": text}, 0.0)


def movielens_events(path: Path) -> list[Record]:
    events = []
    ratings = csv_rows(path / "ratings.csv", ("userId", "movieId", "rating", "timestamp"), (), HINT)
    for line, row in ratings:
        rating = number(path / "ratings.csv", line, "rating", row["rating"])
        ts = number(path / "ratings.csv", line, "timestamp", row["timestamp"])
        topic = rating_topic(rating)
        value = {
            "event_id": f"r{row['userId']}-{row['movieId']}-{row['timestamp']}",
            "user_id": row["userId"],
            "item_id": row["movieId"],
            "ts": ts,
            "rating": rating,
        }
        events.append(Record(topic, row["userId"], value, ts))
    tags = csv_rows(path / "tags.csv", ("userId", "movieId", "tag", "timestamp"), (), HINT)
    for n, (line, row) in enumerate(tags):
        ts = number(path / "tags.csv", line, "timestamp", row["timestamp"])
        value = {
            "event_id": f"t{n}",
            "user_id": row["userId"],
            "item_id": row["movieId"],
            "ts": ts,
            "text": row["tag"],
        }
        events.append(Record("reviews", row["userId"], value, ts))
    events.sort(key=lambda r: (r.ts, id_order(r.value["user_id"]), id_order(r.value["item_id"])))
    return events


def id_order(item_or_user_id: str) -> tuple[int, int, str]:
    """Ids in numeric order when they are numbers (MovieLens), else in text order after
    them: ids may be any strings."""
    text = item_or_user_id.strip()
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


async def publish(
    records: list[Record],
    settings: Settings,
    rate: float | None,
    progress: bool = True,
    desc: str = "replay",
) -> dict[str, Any]:
    """Send records in order at ``rate`` per second (None: as fast as the broker takes)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        **kafka_security(settings),
    )
    await producer.start()
    counts: dict[str, int] = {}
    started = time.perf_counter()
    try:
        bar = tqdm(records, desc=desc, unit="rec", file=sys.stderr, disable=not progress)
        pending = []
        for n, rec in enumerate(bar):
            if rate:
                ahead = n / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            pending.append(
                await producer.send(
                    settings.topic(rec.topic), orjson.dumps(rec.value), key=rec.key.encode()
                )
            )
            counts[rec.topic] = counts.get(rec.topic, 0) + 1
            if len(pending) >= 10_000:  # bound the futures held in memory
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.perf_counter() - started
    return {
        "records": len(records),
        "by_topic": counts,
        "seconds": round(seconds, 2),
        "records_per_s": round(len(records) / seconds, 1) if seconds else None,
    }


def feedback_of(events: list[Record]) -> list[Record]:
    """Feedback derived from rated events (see the module's mapping), in time order."""
    out = []
    for e in events:
        rating = e.value.get("rating")
        if rating is None or NEGATIVE_RATING < rating < CLICK_RATING:
            continue
        value = {
            "user_id": e.value["user_id"],
            "item_id": e.value["item_id"],
            "ts": e.ts + 1.0,
            "signal": "positive" if rating >= CLICK_RATING else "negative",
        }
        out.append(Record("feedback", e.key, value, e.ts + 1.0))
    return out


def replay_movielens(
    path: Path,
    settings: Settings,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
    wait_items: float = 0.0,
    feedback: bool = False,
) -> dict[str, Any]:
    """Publish the items, optionally wait up to ``wait_items`` seconds until the consumer
    group of ``settings`` has taken them all, then publish the events (and the feedback
    derived from them, interleaved in time order)."""
    items = list(movielens_items(path))
    events = movielens_events(path)[:limit]
    if feedback:
        events = sorted(events + feedback_of(events), key=lambda r: r.ts)
    stats_items = asyncio.run(publish(items, settings, None, progress))
    if wait_items > 0:
        if progress:
            print(
                f"waiting up to {wait_items:.0f} s for group {settings.consumer_group!r} "
                "to take the items",
                file=sys.stderr,
            )
        try:
            wait_caught_up(settings, settings.consumer_group, [settings.topic("items")], wait_items)
        except TimeoutError as exc:
            raise StreamError(f"{exc}: is a worker running with this consumer group?") from exc
    stats_events = asyncio.run(publish(events, settings, rate, progress))
    return {"items": stats_items, "events": stats_events}
