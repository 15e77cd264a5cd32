"""The evaluation protocol (``../shared/data/README.md``, LlamaRec Table 1).

1. Every interaction counts (ratings are implicit feedback here).
2. 5-core filter: drop users and items with fewer than 5 interactions, repeat until none is
   left to drop.
3. Each user's interactions in order of (timestamp, item id); item ids compare as integers
   when every id is an integer (MovieLens), else as strings. Timestamp ties are common, so
   this tie-break decides which of two same-second items is the target.
4. Leave-one-out: the last interaction is the test target, the one before it the validation
   target. The validation history is everything before the validation target; the test
   history adds the validation target.
5. Full ranking over every item left after filtering, the history's items excluded.

    split = leave_one_out(five_core(dataset.interactions), dataset.texts)
    split.counts      # {"interactions": 90274, "users": 610, "items": 3650} on MovieLens
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np

from streams.evaluation.data import DataError, Interaction

SplitName = Literal["validation", "test"]
SPLITS: tuple[SplitName, ...] = ("validation", "test")


def five_core(interactions: Sequence[Interaction], k: int = 5) -> list[Interaction]:
    """Interactions whose user and item both have at least ``k`` of them, repeatedly."""
    kept = list(interactions)
    while True:
        users = collections.Counter(i.user_id for i in kept)
        items = collections.Counter(i.item_id for i in kept)
        left = [i for i in kept if users[i.user_id] >= k and items[i.item_id] >= k]
        if len(left) == len(kept):
            return kept
        kept = left


@dataclasses.dataclass(frozen=True)
class Split:
    """Each user's interactions in protocol order, as item indices into ``items``."""

    users: list[str]
    items: list[str]  # item index -> item id
    texts: list[str]  # item index -> text
    sequences: list[np.ndarray]  # per user: int item indices
    times: list[np.ndarray]  # per user: float64 timestamps
    ratings: list[np.ndarray] | None  # per user: float64 ratings, when the data has them

    @property
    def counts(self) -> dict[str, int]:
        return {
            "interactions": sum(len(s) for s in self.sequences),
            "users": len(self.users),
            "items": len(self.items),
        }

    def history_length(self, user: int, split: SplitName) -> int:
        """How many of the user's first interactions are history for ``split``."""
        return len(self.sequences[user]) - (2 if split == "validation" else 1)

    def target(self, user: int, split: SplitName) -> int:
        return int(self.sequences[user][self.history_length(user, split)])


def leave_one_out(interactions: Sequence[Interaction], texts: dict[str, str]) -> Split:
    if not interactions:
        raise DataError("no interactions left after filtering")
    order = _id_key({i.item_id for i in interactions})
    item_ids = sorted({i.item_id for i in interactions}, key=order)
    index = {item_id: n for n, item_id in enumerate(item_ids)}
    by_user: dict[str, list[Interaction]] = collections.defaultdict(list)
    for i in interactions:
        by_user[i.user_id].append(i)
    short = [u for u, rows in by_user.items() if len(rows) < 3]
    if short:
        raise DataError(f"{len(short)} users have fewer than 3 interactions (e.g. {short[0]!r})")
    users = sorted(by_user, key=_id_key(by_user))
    sequences, times, ratings = [], [], []
    has_ratings = interactions[0].rating is not None
    for user in users:
        rows = sorted(by_user[user], key=lambda i: (i.ts, order(i.item_id)))
        sequences.append(np.array([index[i.item_id] for i in rows], dtype=np.int64))
        times.append(np.array([i.ts for i in rows], dtype=np.float64))
        if has_ratings:
            ratings.append(np.array([i.rating for i in rows], dtype=np.float64))
    return Split(
        users=users,
        items=item_ids,
        texts=[texts[i] for i in item_ids],
        sequences=sequences,
        times=times,
        ratings=ratings if has_ratings else None,
    )


def _id_key(ids: Iterable[str]) -> Callable[[str], Any]:
    """Integers compare as integers when every id is one; otherwise ids compare as strings."""
    if all(i.lstrip("-").isdigit() for i in ids):
        return int
    return str
