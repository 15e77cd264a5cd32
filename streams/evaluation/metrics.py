"""Ranking metrics with one target per user (so Recall@k equals HR@k).

A user's rank is the 0-based position of the target in the ranked list, history excluded;
items order by score, ties by item index (a stable sort), so every path ranks the same way.

    ranks, top = rank_targets(scores, targets, history)   # a chunk of users
    metrics(ranks, top_lists, n_items)   # {"recall@10": ..., "ndcg@10": ..., ...}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

KS = (5, 10, 20)
TOP = max(KS)  # the longest list any metric looks at
MISS = 1 << 40  # the rank of a target no list shows: excluded, or below the list


def rank_targets(
    scores: np.ndarray, targets: np.ndarray, history: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``scores`` (users x items): the target's rank and the top TOP items.

    ``history[u]`` holds the item indices excluded for user u. A target that is also in the
    history is excluded with it, and so ranks after every other item.
    """
    scores = np.array(scores, dtype=np.float64)  # a copy: history is masked in place
    rows = np.arange(len(scores))
    for u, items in enumerate(history):
        scores[u, items] = -np.inf
    target_scores = scores[rows, targets][:, None]
    index = np.arange(scores.shape[1])[None, :]
    ahead = (scores > target_scores) | ((scores == target_scores) & (index < targets[:, None]))
    ranks = np.where(np.isneginf(target_scores[:, 0]), MISS, ahead.sum(axis=1))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP]
    return ranks, top


def metrics(
    ranks: np.ndarray, top: np.ndarray | Sequence[Sequence[int]], n_items: int
) -> dict[str, float]:
    """Recall@k, NDCG@k (k in KS), MRR@10 and item coverage@10 over all users."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in KS:
        hit = ranks < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2), 0.0).mean())
    out["mrr@10"] = float(np.where(ranks < 10, 1.0 / (ranks + 1), 0.0).mean())
    shown = {int(i) for row in top for i in list(row)[:10]}
    out["coverage@10"] = len(shown) / n_items
    return out
