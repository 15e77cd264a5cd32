"""The learned interest head as plain arrays: what a model version carries (``head.npz``).

    head = Head.load(version_dir / "head.npz")
    x = head.history_vectors(e)      # what an event of each item folds into the user's sum
    items = head.item_matrix(e)      # [y_j, b_j]: what a user's [normalize(s), 1] scores

The head is trained by ``interest-stream train`` (streams/training/head.py, torch); reading
and applying it needs numpy only, so the runtime can serve it without torch.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from streams.errors import StreamError


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

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """item id -> its row in the per-item arrays."""
        return {item: n for n, item in enumerate(self.item_ids)}

    @property
    def dim(self) -> int:
        return int(self.A.shape[0])

    # -- by item id, as the stream sees items: an id the head never learned has no id part

    def rows(self, item_ids: list[str]) -> np.ndarray:
        """Each id's row in the per-item arrays, -1 for an item the head does not know."""
        return np.asarray([self.index.get(i, -1) for i in item_ids], dtype=np.int64)

    def _by_rows(self, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = table[np.maximum(rows, 0)].astype(np.float64)
        out[rows < 0] = 0.0
        return out

    def parts_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(h, v, bias)`` at ``rows`` (:meth:`rows`): zeros for an item the head does not
        know, whose vectors are then the text part alone."""
        return (
            self._by_rows(self.h, rows),
            self._by_rows(self.v, rows),
            self._by_rows(self.bias[:, None], rows)[:, 0],
        )

    def history_of(self, e: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``x = A·e + h`` for items with text vectors ``e`` at ``rows`` (:meth:`rows`)."""
        return e.astype(np.float64) @ self.A.T + self._by_rows(self.h, rows)

    def items_of(self, e: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``[B·e + v, b]`` for items with text vectors ``e`` at ``rows``."""
        y = e.astype(np.float64) @ self.B.T + self._by_rows(self.v, rows)
        return np.hstack([y, self._by_rows(self.bias[:, None], rows)])

    def history_vectors(
        self, e: np.ndarray, item_ids: list[str] | None = None, ids: bool = True
    ) -> np.ndarray:
        """``x_j`` for the items of text vectors ``e`` (rows of ``item_ids``; default: the
        head's own items, in its order). ``ids=False``: the text part alone."""
        return self.history_of(e, self._rows_for(len(e), item_ids, ids))

    def item_matrix(
        self, e: np.ndarray, item_ids: list[str] | None = None, ids: bool = True
    ) -> np.ndarray:
        """``[y_j, b_j]`` for the items of text vectors ``e``: what Qdrant searches with a
        user's ``[normalize(s), 1]``. Rows and ``ids`` as for :meth:`history_vectors`."""
        return self.items_of(e, self._rows_for(len(e), item_ids, ids))

    def _rows_for(self, n: int, item_ids: list[str] | None, ids: bool) -> np.ndarray:
        if not ids:
            return np.full(n, -1, dtype=np.int64)  # as if the head knew none of them
        if item_ids is None:
            return np.arange(n, dtype=np.int64)
        return self.rows(item_ids)

    def fold(
        self,
        x: np.ndarray,
        items: np.ndarray,
        times: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """``[normalize(s), 1]`` of one user whose events are ``items`` at ``times`` (in the
        user's order), with ``x`` the history vectors (:meth:`history_vectors`) and the
        events' ``weights`` as the stream folded them (default: every event 1)."""
        c = decay(times, self.half_life_s, self.half_life_events)
        if weights is not None:
            c = c * weights
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
            half, events = float(z["half_life_s"]), float(z["half_life_events"])
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


NO_DECAY_S = 1e15  # the stream's half-life for a head trained without decay (~30 million years)


def load_head(version_dir: Path) -> Head | None:
    """The head of a model version directory, or None when it has none (``head.npz``; its
    hash is checked with the version's other files when the model loads)."""
    path = Path(version_dir) / "head.npz"
    if not path.exists():
        return None
    head = Head.load(path)
    if head.half_life_events is not None and head.half_life_s is not None:
        raise StreamError(
            f"{path}: the head decays both by time and by events; the stream folds one clock "
            "(train it with --half-life none --half-life-events N, or a time half-life alone)"
        )
    return head


def stream_half_lives(head: Head | None, half_lives: dict[str, float]) -> dict[str, float]:
    """The stream's half-lives: the served ``short`` one is the head's own when it has one.
    A head that decays by events makes both in events (the state's clock is its event
    count): ``short`` the head's, ``long`` no decay at all."""
    if head is None:
        return half_lives
    if head.half_life_events is not None:
        return half_lives | {"short": head.half_life_events, "long": NO_DECAY_S}
    short = head.half_life_s if head.half_life_s is not None else NO_DECAY_S
    return half_lives | {"short": short, "long": max(short, half_lives["long"])}
