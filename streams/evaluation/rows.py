"""What each row of the evaluation ranks by: one score per (user, item).

* ``popularity``: how often the item occurs in all users' histories of the split;
* ``last item``: cosine to the vector of the user's last history item;
* ``head``: a learned head's ``[q, 1]`` against its items' ``[y_j, b_j]``
  (streams/head.py), the user's sums folded as the stream folds them for a head version;
* ``interest``: cosine to the forward-decayed interest vector (DESIGN.md, "Interest math")
  of the user's history at the time of its last event,
  ``Σ_j w_j · 2^((t_j - t_last) / h) · e_j``, for a half-life ``h`` (``None``: no decay)
  and a weight scheme:

  - ``uniform``: every interaction weighs 1;
  - ``rating``: ``2^((rating - rating_center) / rating_scale)``, what the stream gives an event
    that carries a rating (MovieLens replay: 5 -> 2, 3 -> 1, 1 -> 0.5);
  - ``type``: the stream's click / view weights, with the replay's mapping
    (rating >= 4: click, else view).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from streams.datasets.replay import CLICK_RATING
from streams.evaluation.protocol import Split, SplitName
from streams.head import Head
from streams.interest import rating_weight
from streams.settings import Settings

SCHEMES = ("uniform", "rating", "type")


@dataclasses.dataclass(frozen=True)
class Interest:
    half_life_s: float | None  # None: no decay
    scheme: str  # one of SCHEMES

    def describe(self) -> str:
        return f"{_duration(self.half_life_s)}, {self.scheme} weights"


def popularity_scores(split: Split, which: SplitName) -> np.ndarray:
    counts = np.zeros(len(split.items))
    for u, seq in enumerate(split.sequences):
        np.add.at(counts, seq[: split.history_length(u, which)], 1.0)
    return counts


def last_item_vectors(split: Split, which: SplitName, vectors: np.ndarray) -> np.ndarray:
    last = [seq[split.history_length(u, which) - 1] for u, seq in enumerate(split.sequences)]
    return vectors[np.asarray(last)].astype(np.float64)


def interest_vectors(
    split: Split, which: SplitName, vectors: np.ndarray, interest: Interest, settings: Settings
) -> np.ndarray:
    """One row per user: the direction the stream would hold after the split's history."""
    users = np.zeros((len(split.users), vectors.shape[1]))
    for u, seq in enumerate(split.sequences):
        n = split.history_length(u, which)
        t = split.times[u][:n]
        w = event_weights(split, u, n, interest.scheme, settings)
        if interest.half_life_s is not None:
            w = w * np.exp2((t - t.max()) / interest.half_life_s)
        users[u] = w @ vectors[seq[:n]].astype(np.float64)
    norms = np.linalg.norm(users, axis=1, keepdims=True)
    return np.divide(users, norms, out=np.zeros_like(users), where=norms > 0)


def head_user_vectors(
    head: Head, split: Split, which: SplitName, e: np.ndarray, ids: bool = True
) -> np.ndarray:
    """``[q_u, 1]`` per user after the split's history (the stream's state)."""
    x = head.history_vectors(e, split.items, ids).astype(np.float64)
    users = np.zeros((len(split.users), head.dim + 1))
    for u, seq in enumerate(split.sequences):
        n = split.history_length(u, which)
        users[u] = head.fold(x, seq[:n], split.times[u][:n])
    return users


def score_chunks(
    users: np.ndarray, vectors: np.ndarray, max_cells: int = 1 << 24
) -> Iterator[tuple[slice, np.ndarray]]:
    """(user slice, users x items scores) in chunks of at most ``max_cells`` scores."""
    items = vectors.astype(np.float64)
    step = max(1, max_cells // len(items))
    for start in range(0, len(users), step):
        chunk = slice(start, start + step)
        yield chunk, users[chunk] @ items.T


def schemes_for(split: Split) -> tuple[str, ...]:
    """Without ratings only ``uniform`` means anything (every event is a click)."""
    return SCHEMES if split.ratings is not None else ("uniform",)


def event_weights(split: Split, u: int, n: int, scheme: str, settings: Settings) -> np.ndarray:
    if scheme == "uniform" or split.ratings is None:
        return np.ones(n)
    ratings = split.ratings[u][:n]
    if scheme == "rating":
        return rating_weight(ratings, settings.rating_center, settings.rating_scale)
    if scheme == "type":
        return np.where(ratings >= CLICK_RATING, settings.weight_click, settings.weight_view)
    raise ValueError(f"unknown weight scheme {scheme!r}; expected one of {SCHEMES}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "no decay"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit} half-life"
    return f"{seconds:g} s half-life"
