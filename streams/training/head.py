"""The learned interest head: a two-tower model over the encoder's item vectors.

    head, record = train_head(split, vectors, HeadConfig(dim=128, half_life_s=None))
    users = user_vectors(head, split, "test", vectors)  # [q, 1] per user
    scores = users @ head.item_matrix(vectors).T          # . [y_j, bias_j]

The history side ``x_j = A·e_j + h_j`` is what an event folds into the user's sums; the
item side ``y_j = B·e_j + v_j`` with a bias ``b_j`` is what a user is scored against:
``score(u, j) = q_u·y_j + b_j`` with ``q_u = Σ_k W_k normalize(s_uk)``, one sum per
half-life ``s_uk = Σ_i c_ik x_{j_i}``, ``c_ik = w_i · 2^((t_i - t_last) / h_k)`` (by event
time; by events, ``2^(-(events after i) / h_k)``): exactly the stream's forward-decayed
sums, linear in the events, O(1) per event. The readout ``W`` starts at the identity for
the first sum and zero for the others; a head of one sum has none (``q = normalize(s)``).

``e_j`` is the encoder's unit vector of item j's text, ``h_j``, ``v_j`` and ``b_j`` are
learned per item (the collaborative part). ``A`` and ``B`` start at the same orthonormal
projection onto the item vectors' top principal directions (the identity when ``dim`` is
the encoder's dimension): training starts from zero-shot scoring and learns a residual.
Per-item parts are dropped at random during training (``id_dropout``), so the text part
alone ranks well: that is what serves an item nobody has touched yet (``cold`` items
never get per-item parts).

Training: full-softmax cross-entropy over every item but the example's own history (the
protocol never ranks it), for every prefix of every user's training history (all but the
validation and test targets), AdamW, one epoch at a time;
the epoch kept is the best on validation Recall@10 (patience ``patience`` epochs). torch is
imported here only, lazily: the runtime reads the plain arrays of :class:`Head`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Collection
from typing import Any

import numpy as np
from tqdm import tqdm

from streams.evaluation.metrics import metrics
from streams.evaluation.protocol import Split, SplitName
from streams.evaluation.rows import head_user_vectors as user_vectors
from streams.evaluation.run import ranks_by_vectors
from streams.head import Head, sum_decays, sum_half_lives
from streams.training.config import HeadConfig

MIN_COEF = 1e-9  # decayed history entries below this weight are left out of a batch


def principal_projection(e: np.ndarray, dim: int) -> np.ndarray:
    """(dim, D): orthonormal rows spanning the item vectors' top principal directions; the
    identity when ``dim`` is D."""
    d = e.shape[1]
    if dim > d:
        raise ValueError(f"the head's dimension {dim} exceeds the encoder's {d}")
    if dim == d:
        return np.eye(d, dtype=np.float32)
    _, _, vt = np.linalg.svd(e.astype(np.float64), full_matrices=False)
    return vt[:dim].astype(np.float32)


def rank_with(
    split: Split, which: SplitName, users: np.ndarray, items: np.ndarray
) -> dict[str, float]:
    """The protocol's metrics for users x items scores (history excluded)."""
    return metrics(*ranks_by_vectors(split, which, users, items), len(split.items))


def train_head(
    split: Split,
    e: np.ndarray,
    config: HeadConfig,
    *,
    cold: Collection[int] = (),
    progress: bool = True,
) -> tuple[Head, dict[str, Any]]:
    """Train on ``split``'s training prefixes; ``cold``: item indices that get no per-item
    parts and are never a training target (a cold-start evaluation). (head, record).

    The epoch count is chosen on validation (patience ``config.patience``). With
    ``config.refit``, a second run from the same start then trains that many epochs on the
    training prefixes plus each user's validation target (the newest interaction before
    test), and its head is the one returned: validation chose everything, and the head
    that ranks test has seen the most recent interaction of each user, as the served head
    does for every interaction before its own training."""
    started = time.perf_counter()
    selected, best_epoch, history, n_prefixes = _fit(
        split, e, config, cold, through="validation", progress=progress
    )
    record: dict[str, Any] = {
        "config": dataclasses.asdict(config)
        | {"extra_half_lives": [h if np.isfinite(h) else "inf" for h in config.extra_half_lives]},
        "epochs": history,
        "best_epoch": best_epoch,
        "prefixes": n_prefixes,
        "cold_items": len(set(cold)),
    }
    if config.refit and best_epoch > 0:
        refit_started = time.perf_counter()
        selected, _, _, n_refit = _fit(
            split, e, config, cold, through="test", epochs=best_epoch, progress=progress
        )
        record["refit"] = {
            "epochs": best_epoch,
            "prefixes": n_refit,
            "seconds": round(time.perf_counter() - refit_started, 1),
        }
    record["seconds"] = round(time.perf_counter() - started, 1)
    return selected, record


def _fit(
    split: Split,
    e: np.ndarray,
    config: HeadConfig,
    cold: Collection[int],
    *,
    through: SplitName,
    epochs: int | None = None,
    progress: bool,
) -> tuple[Head, int, list[dict[str, Any]], int]:
    """One training run on the prefixes whose targets come before ``through``'s target.
    ``epochs`` None: at most ``config.epochs``, the best on validation kept (early
    stopping); a number: exactly that many, the last kept, no validation (``through``
    "test" trains on the validation targets, so validating would tell nothing).
    (head, its epoch, the per-epoch history, the number of prefixes)."""
    import torch

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n_items, _d = e.shape
    cold_mask = np.zeros(n_items, dtype=bool)
    cold_mask[list(cold)] = True
    prefixes = [
        (u, p)
        for u, seq in enumerate(split.sequences)
        for p in range(1, split.history_length(u, through))
        if not cold_mask[seq[p]]
    ]
    if not prefixes:
        raise ValueError("no training prefixes: every user needs 4 interactions or more")
    proj = torch.from_numpy(principal_projection(e, config.dim))
    E = torch.from_numpy(e.astype(np.float32))
    A = torch.nn.Parameter(proj.clone())
    B = torch.nn.Parameter(proj.clone())
    H = torch.nn.Parameter(torch.zeros(n_items, config.dim))
    V = torch.nn.Parameter(torch.zeros(n_items, config.dim))
    bias = torch.nn.Parameter(torch.zeros(n_items))
    params = [A, B, H, V, bias]
    W = None  # the readout: W_0 = I and the others 0 start at the single sum
    if config.extra_half_lives:
        W = torch.nn.Parameter(
            torch.zeros(1 + len(config.extra_half_lives), config.dim, config.dim)
        )
        with torch.no_grad():
            W[0] = torch.eye(config.dim)
        params.append(W)
    mlp = None  # U_1 small and random, U_2 zero: the MLP's term starts at zero
    if config.readout_hidden:
        inputs = (1 + len(config.extra_half_lives)) * config.dim
        mlp = (
            torch.nn.Parameter(torch.randn(config.readout_hidden, inputs) / np.sqrt(inputs)),
            torch.nn.Parameter(torch.zeros(config.readout_hidden)),
            torch.nn.Parameter(torch.zeros(config.dim, config.readout_hidden)),
        )
        params.extend(mlp)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warm = torch.from_numpy(~cold_mask).float()[:, None]  # cold items: the text part only
    half_lives = sum_half_lives(
        config.half_life_s, config.half_life_events, config.extra_half_lives
    )
    by_events = config.half_life_events is not None
    coefs = [decay_rows(split.times[u], half_lives, by_events) for u in range(len(split.users))]

    average = WeightAverage(params, config.weight_average)

    def snapshot() -> Head:
        a, b, h, v, bias_, *rest = (t.numpy().copy() for t in average.weights())
        w = rest[:1] if W is not None else []
        u = (rest[-3], rest[-2], rest[-1]) if mlp is not None else None
        keep = warm.numpy()
        return Head(
            item_ids=list(split.items),
            A=a,
            B=b,
            h=h * keep,
            v=v * keep,
            bias=bias_ * keep[:, 0],
            half_life_s=config.half_life_s,
            half_life_events=config.half_life_events,
            extra_half_lives=config.extra_half_lives,
            readout=w[0] if w else None,
            mlp=u,
        )

    def validate(head: Head) -> dict[str, float]:
        return rank_with(
            split, "validation", user_vectors(head, split, "validation", e), head.item_matrix(e)
        )

    selecting = epochs is None
    best_head = snapshot()
    best = validate(best_head) if selecting else {}
    history: list[dict[str, Any]] = [{"epoch": 0, "loss": None, "validation": best or None}]
    best_epoch, waited = 0, 0
    order = np.arange(len(prefixes))
    label = "head epoch" if selecting else "head refit epoch"
    for epoch in range(1, (config.epochs if epochs is None else epochs) + 1):
        rng.shuffle(order)
        losses = []
        batches = range(0, len(order), config.batch_size)
        bar = tqdm(
            batches,
            desc=f"{label} {epoch}",
            unit="batch",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        )
        for start in bar:
            picked = [prefixes[k] for k in order[start : start + config.batch_size]]
            batch = Batch.of(
                [split.sequences[u][:p] for u, p in picked],
                [coefs[u](p) for u, p in picked],
                [int(split.sequences[u][p]) for u, p in picked],
                config.mask_history,
            )
            loss = softmax_loss((E, A, B, H, V, bias, W, mlp), warm, batch, config.id_dropout)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average.update()
            losses.append(loss.item())
        if not selecting:
            if progress:
                print(f"{label} {epoch}: loss {np.mean(losses):.3f}", file=sys.stderr)
            continue
        head = snapshot()
        scores = validate(head)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "validation": scores})
        if progress:
            print(
                f"{label} {epoch}: loss {np.mean(losses):.3f}, validation Recall@10 "
                f"{scores['recall@10']:.4f}",
                file=sys.stderr,
            )
        if (scores["recall@10"], scores["ndcg@10"]) > (best["recall@10"], best["ndcg@10"]):
            best, best_head, best_epoch, waited = scores, head, epoch, 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    if epochs is not None:
        return snapshot(), epochs, history, len(prefixes)
    return best_head, best_epoch, history, len(prefixes)


class WeightAverage:
    """An exponential moving average of ``params``, updated after each optimizer step:
    ``avg = r · avg + (1 - r) · param`` with ``r = min(rate, (1 + n) / (10 + n))`` at the
    n-th step, so that the first steps are not outweighed by the starting point (a short
    training moves the average too); ``rate`` 0: the params themselves."""

    def __init__(self, params: list[Any], rate: float) -> None:
        self.params, self.rate = params, rate
        self.average = [p.detach().clone() for p in params]
        self.steps = 0

    def update(self) -> None:
        if self.rate:
            r = min(self.rate, (1 + self.steps) / (10 + self.steps))
            for avg, p in zip(self.average, self.params, strict=True):
                avg.mul_(r).add_(p.detach(), alpha=1.0 - r)
        self.steps += 1

    def weights(self) -> list[Any]:
        """The averaged weights, detached (the params themselves when ``rate`` is 0)."""
        return self.average if self.rate else [p.detach() for p in self.params]


@dataclasses.dataclass(frozen=True)
class Batch:
    """One batch of training examples as index arrays: per sum of the head (one per
    half-life) the history's (row, item, coefficient) triples; the targets; and the
    (row, item) pairs of each example's history besides its target, left out of its
    softmax (``seen``: empty when the history is not left out)."""

    sums: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    targets: np.ndarray
    seen: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(
        cls,
        histories: list[np.ndarray],
        coefs: list[np.ndarray],
        targets: list[int],
        mask_history: bool,
    ) -> Batch:
        """``histories``: each example's item indices, oldest first; ``coefs``: their
        (half-lives, len) coefficients (:func:`decay_rows`)."""
        n_sums = len(coefs[0]) if coefs else 1
        sums = []
        for k in range(n_sums):
            rows, cols, vals = [], [], []
            for r, (items, c) in enumerate(zip(histories, coefs, strict=True)):
                keep = c[k] > MIN_COEF
                rows.append(np.full(int(keep.sum()), r))
                cols.append(items[keep])
                vals.append(c[k][keep])
            sums.append((np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)))
        seen_rows, seen_cols = [], []
        if mask_history:
            for r, (items, target) in enumerate(zip(histories, targets, strict=True)):
                other = items[items != target]
                seen_rows.append(np.full(len(other), r))
                seen_cols.append(other)
        empty = np.zeros(0, dtype=np.int64)
        seen = (
            (np.concatenate(seen_rows), np.concatenate(seen_cols)) if seen_rows else (empty, empty)
        )
        return cls(sums, np.asarray(targets, dtype=np.int64), seen)


def softmax_loss(tensors: tuple[Any, ...], warm: Any, batch: Batch, id_dropout: float) -> Any:
    """Full-softmax cross-entropy of one batch: ``tensors`` are (E, A, B, H, V, bias, W)
    and optionally the MLP (U_1, c, U_2) or None (W: the readout, or None for one sum).
    ``warm`` is 1 for the items known at training time: they may have per-item parts,
    which are dropped at random (``id_dropout``). The others (a cold-start evaluation's
    held-out items) are no candidate of the softmax either: they did not exist yet, so
    training must not learn to rank them low, which would teach the text part to push
    away what new items look like. An example's own
    history is no candidate either (``batch.seen``): the protocol never ranks it, and
    pushing it down would fight the sums, which point at what the user took."""
    import torch

    E, A, B, H, V, bias, W, *rest = tensors
    mlp = rest[0] if rest else None
    n_items = E.shape[0]
    n = len(batch.targets)
    keep_h = (torch.rand(n_items, 1) >= id_dropout).float() * warm
    keep_v = (torch.rand(n_items, 1) >= id_dropout).float() * warm
    x = E @ A.T + keep_h * H
    q = None
    directions = []
    for k, (rows, cols, vals) in enumerate(batch.sums):
        index = torch.from_numpy(np.stack([rows, cols]))
        weights = torch.from_numpy(vals.astype(np.float32))
        C = torch.sparse_coo_tensor(index, weights, (n, n_items), check_invariants=False)
        s = torch.sparse.mm(C, x)
        d = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)
        directions.append(d)
        term = d if W is None else d @ W[k].T
        q = term if q is None else q + term
    if mlp is not None:
        U1, c, U2 = mlp
        q = q + torch.relu(torch.cat(directions, dim=1) @ U1.T + c) @ U2.T
    logits = q @ (E @ B.T + keep_v * V).T + (keep_v[:, 0] * bias)[None, :]
    logits = logits.masked_fill(warm[:, 0] == 0, float("-inf"))
    if len(batch.seen[0]):
        seen = (torch.from_numpy(batch.seen[0]), torch.from_numpy(batch.seen[1]))
        logits = logits.index_put(seen, torch.tensor(float("-inf")))
    return torch.nn.functional.cross_entropy(logits, torch.from_numpy(batch.targets))


@dataclasses.dataclass(frozen=True)
class HeadFinetune:
    """A feedback round's warm start: a few passes over the round's examples, at a small
    learning rate (below the first training's 1e-3) so that a round nudges the served head rather
    than overwriting it with a few thousand examples (``scripts/feedback_sweep.py``: at
    3e-3 the round lost to the served head on its hold-out; at 3e-4 it won)."""

    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 3e-4
    id_dropout: float = 0.3
    mask_history: bool = True  # as the first training (HeadConfig)
    seed: int = 0


def finetune_head(
    head: Head,
    e: np.ndarray,
    item_ids: list[str],
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
    config: HeadFinetune = HeadFinetune(),
    progress: bool = True,
) -> tuple[Head, dict[str, Any]]:
    """Warm-start from the served ``head`` and train on ``examples``: (history item
    indices, their times, their weights as the stream folded them, the target index), each
    index a row of ``e`` (the items' text vectors) and ``item_ids``. The softmax runs over
    those items. An item the head does not know joins it with per-item parts learned from
    the examples (they start at zero: the text part). ``A`` and ``B`` move for every item;
    the per-item parts of items no example names stay as they were. (head, record)."""
    import torch

    if not examples:
        raise ValueError("no examples to train the head on")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    rows_in_head = head.rows(item_ids)
    h0, v0, b0 = head.parts_of(rows_in_head)
    E = torch.from_numpy(e.astype(np.float32))
    A = torch.nn.Parameter(torch.from_numpy(head.A.astype(np.float32)))
    B = torch.nn.Parameter(torch.from_numpy(head.B.astype(np.float32)))
    H = torch.nn.Parameter(torch.from_numpy(h0.astype(np.float32)))
    V = torch.nn.Parameter(torch.from_numpy(v0.astype(np.float32)))
    bias = torch.nn.Parameter(torch.from_numpy(b0.astype(np.float32)))
    params = [A, B, H, V, bias]
    W = None
    if head.readout is not None:
        W = torch.nn.Parameter(torch.from_numpy(head.readout.astype(np.float32)))
        params.append(W)
    mlp = None
    if head.mlp is not None:
        u1, c, u2 = (torch.nn.Parameter(torch.from_numpy(a.astype(np.float32))) for a in head.mlp)
        mlp = (u1, c, u2)
        params.extend(mlp)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    warm = torch.ones(len(item_ids), 1)
    coefs = [
        sum_decays(t, head.half_lives, head.half_life_events is not None) * w
        for _, t, w, _ in examples
    ]
    losses: list[float] = []
    order = np.arange(len(examples))
    for _ in tqdm(
        range(config.epochs), desc="head", unit="epoch", disable=not progress, file=sys.stderr
    ):
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            picked = order[start : start + config.batch_size]
            batch = Batch.of(
                [examples[k][0] for k in picked],
                [coefs[k] for k in picked],
                [examples[k][3] for k in picked],
                config.mask_history,
            )
            loss = softmax_loss((E, A, B, H, V, bias, W, mlp), warm, batch, config.id_dropout)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    new = [i for i, r in zip(item_ids, rows_in_head, strict=True) if r < 0]
    at = np.where(
        rows_in_head >= 0, rows_in_head, len(head.item_ids) + np.cumsum(rows_in_head < 0) - 1
    )
    dtype = head.h.dtype
    h = np.vstack([head.h, np.zeros((len(new), head.dim), dtype)])
    v = np.vstack([head.v, np.zeros((len(new), head.dim), dtype)])
    b = np.concatenate([head.bias, np.zeros(len(new), head.bias.dtype)])
    h[at], v[at], b[at] = H.detach().numpy(), V.detach().numpy(), bias.detach().numpy()
    tuned = dataclasses.replace(
        head,
        item_ids=[*head.item_ids, *new],
        A=A.detach().numpy().astype(head.A.dtype),
        B=B.detach().numpy().astype(head.B.dtype),
        h=h,
        v=v,
        bias=b,
        readout=None if W is None else W.detach().numpy().astype(head.A.dtype),
        mlp=None if mlp is None else _arrays(mlp, head.A.dtype),
    )
    record = {
        "config": dataclasses.asdict(config),
        "examples": len(examples),
        "items": len(item_ids),
        "new_items": len(new),
        "loss": {"first": losses[0], "last": float(np.mean(losses[-max(1, len(losses) // 10) :]))},
        "seconds": round(time.perf_counter() - started, 1),
    }
    return tuned, record


def _arrays(mlp: tuple[Any, Any, Any], dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An MLP's trained tensors as the head's arrays."""
    u1, c, u2 = (t.detach().numpy().astype(dtype) for t in mlp)
    return u1, c, u2


def decay_rows(times: np.ndarray, half_lives: tuple[float, ...], by_events: bool) -> Any:
    """``coef(p)``: the (half-lives, p) coefficients of events 0..p-1 at the time of event
    p-1, one row per sum (:func:`streams.head.sum_decays`)."""

    def coef(p: int) -> np.ndarray:
        return sum_decays(times[:p], half_lives, by_events)

    return coef
