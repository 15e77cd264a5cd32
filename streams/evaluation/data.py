"""Datasets for evaluation: interactions with a time, and a text per item.

The generic pair, which any dataset converts to:

* ``events.csv``: header ``user_id,item_id,ts[,rating]``; ``ts`` in epoch seconds,
  ``rating`` a number when present (one column for the whole file);
* ``items.csv``: header ``item_id,text``.

Every event's item must have a text. A malformed file raises :class:`DataError` naming the
file, the line and what is wrong; nothing is guessed.

MovieLens (``read_movielens``): ``ratings.csv`` are the events (every rating one
interaction, with its rating); the item text is the one the stream's replay publishes,
"Title (year). Genres: A, B" (``streams.replay.movielens_items``). Tags are not used: the
protocol counts ratings only.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from streams.datasets.csvrows import DataError, csv_rows
from streams.datasets.replay import HINT, movielens_items


@dataclasses.dataclass(frozen=True)
class Interaction:
    user_id: str
    item_id: str
    ts: float
    rating: float | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    interactions: list[Interaction]
    texts: dict[str, str]  # item_id -> text

    @property
    def has_ratings(self) -> bool:
        return bool(self.interactions) and self.interactions[0].rating is not None


def read_pair(events_path: Path, items_path: Path) -> Dataset:
    """The generic ``events.csv`` + ``items.csv`` pair."""
    texts: dict[str, str] = {}
    for line, row in csv_rows(items_path, ("item_id", "text"), ()):
        item_id, text = row["item_id"].strip(), row["text"].strip()
        if not item_id:
            raise DataError(f"{items_path}:{line}: empty item_id")
        if not text:
            raise DataError(f"{items_path}:{line}: item {item_id!r} has no text")
        if item_id in texts:
            raise DataError(f"{items_path}:{line}: item {item_id!r} appears twice")
        texts[item_id] = text
    interactions = []
    rows = csv_rows(events_path, ("user_id", "item_id", "ts"), ("rating",))
    for line, row in rows:
        where = f"{events_path}:{line}"
        user_id, item_id = row["user_id"].strip(), row["item_id"].strip()
        if not user_id or not item_id:
            raise DataError(f"{where}: empty user_id or item_id")
        if item_id not in texts:
            raise DataError(f"{where}: item {item_id!r} is not in {items_path.name}")
        rating = row.get("rating")
        interactions.append(
            Interaction(
                user_id,
                item_id,
                _number(row["ts"], "ts", where),
                None if rating is None else _number(rating, "rating", where),
            )
        )
    if not interactions:
        raise DataError(f"{events_path}: no events")
    return Dataset(interactions, texts)


def read_movielens(path: Path) -> Dataset:
    """``ratings.csv`` as events (with ratings), ``movies.csv`` as item texts."""
    texts = {rec.value["item_id"]: rec.value["text"] for rec in movielens_items(path)}
    ratings = path / "ratings.csv"
    interactions = []
    columns = ("userId", "movieId", "rating", "timestamp")
    for line, row in csv_rows(ratings, columns, (), HINT):
        where = f"{ratings}:{line}"
        if row["movieId"] not in texts:
            raise DataError(f"{where}: movie {row['movieId']!r} is not in movies.csv")
        interactions.append(
            Interaction(
                row["userId"],
                row["movieId"],
                _number(row["timestamp"], "timestamp", where),
                _number(row["rating"], "rating", where),
            )
        )
    return Dataset(interactions, texts)


def _number(text: str | None, name: str, where: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise DataError(f"{where}: {name} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {name} {text!r} is not finite")
    return value
