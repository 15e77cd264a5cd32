"""The learned interest head as plain arrays: what a model version carries (``head.npz``).

    head = Head.load(version_dir / "head.npz")
    x = head.history_vectors(e)      # what an event of each item folds into the user's sum
    items = head.item_matrix(e)      # [y_j, b_j]: what a user's [normalize(s), 1] scores

The head is trained by ``interest-stream train`` (streams/training/head.py, torch); reading
and applying it needs numpy only, so the runtime can serve it without torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class Head:
    """Plain arrays: what a model version carries and the worker folds with."""

    item_ids: list[str]  # index -> item id of the per-item parts
    A: np.ndarray  # (dim, D) history projection
    B: np.ndarray  # (dim, D) item projection
    h: np.ndarray  # (items, dim) per-item history embeddings
    v: np.ndarray  # (items, dim) per-item item embeddings
    bias: np.ndarray  # (items,)
    half_life_s: float | None
    half_life_events: float | None = None

    @property
    def dim(self) -> int:
        return int(self.A.shape[0])

    def history_vectors(self, e: np.ndarray, ids: bool = True) -> np.ndarray:
        """``x_j`` for every item (``ids=False``: the text part alone)."""
        x = e @ self.A.T
        return x + self.h if ids else x

    def item_matrix(self, e: np.ndarray, ids: bool = True) -> np.ndarray:
        """``[y_j, b_j]`` for every item: what Qdrant would search with ``[normalize(s), 1]``."""
        y = e @ self.B.T
        if ids:
            return np.concatenate([y + self.v, self.bias[:, None]], axis=1)
        return np.concatenate([y, np.zeros((len(y), 1), dtype=y.dtype)], axis=1)

    def fold(self, x: np.ndarray, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """``[normalize(s), 1]`` of one user whose events are ``items`` at ``times`` (in the
        user's order), with ``x`` the history vectors (:meth:`history_vectors`)."""
        c = decay(times, self.half_life_s, self.half_life_events)
        s = c @ x[items]
        norm = np.linalg.norm(s)
        return np.append(s / norm if norm > 0 else s, 1.0)

    def save(self, path: Path) -> None:
        np.savez(
            path,
            item_ids=np.asarray(self.item_ids, dtype=object).astype(str),
            A=self.A,
            B=self.B,
            h=self.h,
            v=self.v,
            bias=self.bias,
            half_life_s=np.asarray(-1.0 if self.half_life_s is None else self.half_life_s),
            half_life_events=np.asarray(
                -1.0 if self.half_life_events is None else self.half_life_events
            ),
        )

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path, allow_pickle=False) as z:
            half = float(z["half_life_s"])
            events = float(z["half_life_events"]) if "half_life_events" in z else -1.0
            return cls(
                item_ids=[str(i) for i in z["item_ids"]],
                A=z["A"],
                B=z["B"],
                h=z["h"],
                v=z["v"],
                bias=z["bias"],
                half_life_s=None if half < 0 else half,
                half_life_events=None if events < 0 else events,
            )


def decay(
    times: np.ndarray, half_life_s: float | None, half_life_events: float | None = None
) -> np.ndarray:
    """Each event's coefficient at the time of the last one (uniform event weights): by
    event time, and by how many events came after it (``times`` in the user's order)."""
    c = np.ones(len(times))
    if len(times) == 0:
        return c
    if half_life_s is not None:
        c *= np.exp2((times - times.max()) / half_life_s)
    if half_life_events is not None:
        c *= np.exp2(-np.arange(len(times))[::-1] / half_life_events)
    return c
