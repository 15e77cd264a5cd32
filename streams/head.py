"""The learned interest head as plain arrays: what a model version carries (``head.npz``).

    head = Head.load(version_dir / "head.npz")
    x = head.history_vectors(e)      # what an event of each item folds into the user's sums
    items = head.item_matrix(e)      # [y_j, b_j]: what a user's [q, 1] scores
    q = head.query(directions)       # q = Σ_k W_k · normalize(s_k) (+ MLP), from the sums

A user keeps one forward-decayed sum of the history vectors per half-life of the head
(``s_k = Σ_i c_ik x_i``): the head's own half-life, then ``extra_half_lives`` in the same
clock (``inf``: no decay). Each is linear in the events, so the stream folds an event into
every sum in O(1), as before. The served query is a fixed linear readout of their
directions, ``q = Σ_k W_k · normalize(s_k)``: the sums of a short and a long half-life
(the last item, the last few, the whole history) weigh differently per dimension. A head
without a readout (``readout`` None) is the single sum: ``q = normalize(s_0)``. A head may
add a small MLP over the directions to the linear readout (``mlp``: ``q += U_2 ·
relu(U_1 · [d_0; …; d_K] + c)``); it reads the directions only, so the sums stay linear.

The head is trained by ``interest-stream train`` (streams/training/head.py, torch); reading
and applying it needs numpy only, so the runtime can serve it without torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
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
    # The user's other sums, in the head's clock (events, or seconds); inf: no decay.
    extra_half_lives: tuple[float, ...] = ()
    readout: np.ndarray | None = None  # (1 + len(extra_half_lives), dim, dim): the W_k
    # (U_1, c, U_2): (hidden, sums · dim), (hidden,), (dim, hidden); None: none
    mlp: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.mlp is not None:
            u1, c, u2 = self.mlp
            hidden, inputs = len(c), (1 + len(self.extra_half_lives)) * self.dim
            if u1.shape != (hidden, inputs) or u2.shape != (self.dim, hidden):
                raise StreamError(
                    f"the head's MLP has shapes {u1.shape}, {c.shape}, {u2.shape}, not "
                    f"({hidden}, {inputs}), ({hidden},), ({self.dim}, {hidden})"
                )
        if self.readout is not None and self.readout.shape != (
            1 + len(self.extra_half_lives),
            self.dim,
            self.dim,
        ):
            raise StreamError(
                f"the head's readout has shape {self.readout.shape}, not "
                f"({1 + len(self.extra_half_lives)}, {self.dim}, {self.dim})"
            )
        if self.readout is None and self.extra_half_lives:
            raise StreamError("a head with extra half-lives needs a readout")
        if any(not h > 0 for h in self.extra_half_lives):
            raise StreamError(f"the head's half-lives must be > 0: {self.extra_half_lives}")

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
        user's ``[q, 1]``. Rows and ``ids`` as for :meth:`history_vectors`."""
        return self.items_of(e, self._rows_for(len(e), item_ids, ids))

    def _rows_for(self, n: int, item_ids: list[str] | None, ids: bool) -> np.ndarray:
        if not ids:
            return np.full(n, -1, dtype=np.int64)  # as if the head knew none of them
        if item_ids is None:
            return np.arange(n, dtype=np.int64)
        return self.rows(item_ids)

    @property
    def half_lives(self) -> tuple[float, ...]:
        """The half-lives of the user's sums in the head's clock, its own first (inf: none)."""
        return sum_half_lives(self.half_life_s, self.half_life_events, self.extra_half_lives)

    def query(self, directions: Sequence[np.ndarray]) -> np.ndarray:
        """``q = Σ_k W_k · d_k`` (plus the MLP's term, if any) from the unit directions
        ``d_k`` of the user's sums, one (n, dim) array (or one (dim,) row) per half-life
        of :attr:`half_lives`."""
        ds = [np.asarray(d, dtype=np.float64) for d in directions]
        if self.readout is None:
            q = ds[0]
        else:
            q = np.sum([d @ w.T for d, w in zip(ds, self.readout, strict=True)], axis=0)
        if self.mlp is not None:
            u1, c, u2 = self.mlp
            q = q + np.maximum(np.concatenate(ds, axis=-1) @ u1.T + c, 0.0) @ u2.T
        return q

    def fold(
        self,
        x: np.ndarray,
        items: np.ndarray,
        times: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """``[q, 1]`` of one user whose events are ``items`` at ``times`` (in the user's
        order), with ``x`` the history vectors (:meth:`history_vectors`) and the events'
        ``weights`` as the stream folded them (default: every event 1)."""
        directions = []
        for c in sum_decays(times, self.half_lives, self.half_life_events is not None):
            s = (c if weights is None else c * weights) @ x[items]
            norm = np.linalg.norm(s)
            directions.append(s / norm if norm > 0 else s)
        return np.append(self.query(directions), 1.0)

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "item_ids": np.asarray(self.item_ids, dtype=object).astype(str),
            "A": self.A,
            "B": self.B,
            "h": self.h,
            "v": self.v,
            "bias": self.bias,
            "half_life_s": np.asarray(-1.0 if self.half_life_s is None else self.half_life_s),
            "half_life_events": np.asarray(
                -1.0 if self.half_life_events is None else self.half_life_events
            ),
        }
        if self.readout is not None:  # a single-sum head's file stays as it was
            arrays["extra_half_lives"] = np.asarray(self.extra_half_lives, dtype=np.float64)
            arrays["readout"] = self.readout
        if self.mlp is not None:
            arrays["mlp_in"], arrays["mlp_bias"], arrays["mlp_out"] = self.mlp
        np.savez(path, **arrays)  # type: ignore[arg-type]

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
                extra_half_lives=tuple(float(h) for h in z.get("extra_half_lives", ())),
                readout=z.get("readout"),
                mlp=(z["mlp_in"], z["mlp_bias"], z["mlp_out"]) if "mlp_in" in z else None,
            )


def decay(
    times: np.ndarray, half_life_s: float | None, half_life_events: float | None = None
) -> np.ndarray:
    """Each event's coefficient at the time of the last one (uniform event weights): by
    event time, and by how many events came after it (``times`` in the user's order)."""
    c = np.ones(len(times))
    if len(times) == 0:
        return c
    if half_life_s is not None and half_life_s != math.inf:
        c *= np.exp2((times - times.max()) / half_life_s)
    if half_life_events is not None and half_life_events != math.inf:
        c *= np.exp2(-np.arange(len(times))[::-1] / half_life_events)
    return c


def sum_half_lives(
    half_life_s: float | None, half_life_events: float | None, extra: tuple[float, ...] = ()
) -> tuple[float, ...]:
    """The half-lives of a head's sums in its clock: its own (inf: none), then ``extra``."""
    own = half_life_events if half_life_events is not None else half_life_s
    return (math.inf if own is None else own, *extra)


def sum_decays(times: np.ndarray, half_lives: Sequence[float], by_events: bool) -> np.ndarray:
    """(sums, events): each event's coefficient in each sum at the time of the last event
    (:func:`decay` per half-life, by events or by event time)."""
    return np.stack(
        [decay(times, None if by_events else h, h if by_events else None) for h in half_lives]
    )


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
    count): ``short`` the head's, ``long`` no decay at all. The head's extra half-lives add
    sums of their own (:func:`sum_names`)."""
    if head is None:
        return half_lives
    if head.half_life_events is not None:
        out = half_lives | {"short": head.half_life_events, "long": NO_DECAY_S}
    else:
        short = head.half_life_s if head.half_life_s is not None else NO_DECAY_S
        out = half_lives | {"short": short, "long": max(short, half_lives["long"])}
    for name, h in zip(sum_names(head, out), head.half_lives, strict=True):
        out.setdefault(name, min(h, NO_DECAY_S))
    return out


def sum_names(head: Head, half_lives: Mapping[str, float]) -> list[str]:
    """The state's sum behind each of the head's half-lives: ``short`` for its own, ``long``
    for an extra one that ``long`` already keeps (``half_lives``: the stream's), else
    ``h<k>``."""
    names = ["short"]
    for k, h in enumerate(head.extra_half_lives, start=1):
        same = half_lives.get("long") == min(h, NO_DECAY_S)
        names.append("long" if same else f"h{k}")
    return names
