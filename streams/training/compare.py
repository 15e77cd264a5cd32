"""``interest-stream train``: the learned head beside the baselines, in one run, on any split.

    report = compare(split, vectors, version, settings, CompareConfig(seeds=3))

Rows (test split, protocol of streams/evaluation/protocol.py), each trained row over
``seeds`` seeds (mean and standard deviation):

- ``popularity`` and ``zero-shot``: the stream's serving vector today (no training);
- ``learned head``: the two-tower head (streams/training/head.py), epochs chosen on
  validation; ``learned head, text part``: the same head with its per-item parts left out
  (what an item nobody has touched yet gets);
- ``SASRec``: the ID-only baseline trained here (streams/training/sasrec.py);
- ``cold start``: the newest ``cold_share`` of the items (by first appearance) are held out
  of training: Recall@10 of the users whose test target is one of them, for the head (its
  text part ranks them), SASRec (which cannot) and popularity. These are trained without
  the refit (what they measure, ranking items never trained on, does not need it, and it
  would double their time).

With ``head.refit`` (and ``sasrec_refit``), the trained rows come from a second run through
the validation targets, for the epochs the first chose on validation.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from streams.evaluation.metrics import metrics
from streams.evaluation.protocol import Split, SplitName
from streams.evaluation.rows import popularity_scores
from streams.evaluation.run import evaluate, ranks_by_scores, ranks_by_vectors
from streams.head import Head
from streams.settings import Settings
from streams.training.head import HeadConfig, train_head, user_vectors
from streams.training.sasrec import SasrecConfig, TrainedSasrec, train_sasrec

KEYS = ("recall@10", "ndcg@10", "recall@5", "ndcg@5")


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    seeds: int = 3
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)
    sasrec: bool = True
    sasrec_epochs: int = 400
    sasrec_seeds: int | None = None  # default: seeds
    sasrec_refit: bool = False  # as head.refit: SASRec trained again through validation
    cold_share: float = 0.15  # 0: no cold-start rows


def ranks_of(split: Split, which: SplitName, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Each user's 0-based rank of its target (history excluded), scoring by ``users @ items.T``."""
    return ranks_by_vectors(split, which, users, items)[0]


def summary(ranks: np.ndarray, n_items: int) -> dict[str, float]:
    m = metrics(ranks, np.zeros((0, 10), dtype=np.int64), n_items)
    return {k: m[k] for k in KEYS}


def cold_items(split: Split, share: float) -> np.ndarray:
    """The newest ``share`` of the items by their first interaction (item indices)."""
    first = np.full(len(split.items), np.inf)
    for seq, times in zip(split.sequences, split.times, strict=True):
        np.minimum.at(first, seq, times)
    order = np.argsort(first, kind="stable")
    return np.sort(order[len(order) - round(share * len(order)) :])


def best_index(scores: list[tuple[float, float]]) -> int:
    """The index of the best (Recall@10, NDCG@10) pair: Recall first, NDCG breaks ties.
    (``np.argmax`` of the pairs would index the flattened array.)"""
    return max(range(len(scores)), key=lambda k: scores[k])


def _mean_std(rows: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": len(rows)}
    for k in KEYS:
        values = np.asarray([r[k] for r in rows])
        out[k] = float(values.mean())
        out[f"{k}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def compare(
    split: Split,
    vectors: np.ndarray,
    version: str,
    settings: Settings,
    config: CompareConfig,
    progress: bool = True,
) -> tuple[dict[str, Any], Head]:
    """(the report, the head of the best seed on validation)."""
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    n = len(split.items)
    rows: list[dict[str, Any]] = []
    base = evaluate(
        split, vectors, version, settings, progress=False, rows={"popularity", "serving"}
    )
    for row in base["rows"]:
        if row["split"] == "test":
            name = "zero-shot" if row["name"] == "serving" else row["name"]
            rows.append({"name": name, "seeds": 0, **{k: row[k] for k in KEYS}})

    heads: list[tuple[tuple[float, float], Head, dict[str, Any]]] = []
    full, text = [], []
    for seed in range(config.seeds):
        say(f"learned head, seed {seed}")
        head, record = train_head(
            split, vectors, dataclasses.replace(config.head, seed=seed), progress=progress
        )
        val = record["epochs"][record["best_epoch"]]["validation"]
        heads.append(((val["recall@10"], val["ndcg@10"]), head, record))
        full.append(summary(_head_ranks(split, head, vectors, True), n))
        text.append(summary(_head_ranks(split, head, vectors, False), n))
    best_seed = best_index([h[0] for h in heads])
    rows.append({"name": "learned head", **_mean_std(full), "train": "torch"})
    rows.append({"name": "learned head, text part", **_mean_std(text), "train": "torch"})
    records: dict[str, Any] = {"head": [r for _, _, r in heads]}

    if config.sasrec:
        sasrec = []
        records["sasrec"] = []
        for seed in range(config.sasrec_seeds or config.seeds):
            say(f"SASRec, seed {seed}")
            sasrec_config = SasrecConfig(
                seed=seed, epochs=config.sasrec_epochs, refit=config.sasrec_refit
            )
            model, record = train_sasrec(split, sasrec_config, progress=progress)
            sasrec.append(summary(_sasrec_ranks(split, model), n))
            records["sasrec"].append(record)
        rows.append({"name": "SASRec", **_mean_std(sasrec), "train": "torch"})

    cold: dict[str, Any] | None = None
    if config.cold_share > 0:
        held = cold_items(split, config.cold_share)
        is_cold = np.zeros(n, dtype=bool)
        is_cold[held] = True
        users = np.asarray([is_cold[split.target(u, "test")] for u in range(len(split.users))])
        say(f"cold start: {len(held)} items held out; {int(users.sum())} users' targets")
        head_cold = []
        for seed in range(config.seeds):
            head, _ = train_head(
                split,
                vectors,
                dataclasses.replace(config.head, seed=seed, refit=False),
                cold=held,
                progress=progress,
            )
            head_cold.append(summary(_head_ranks(split, head, vectors, True)[users], n))
        pop = popularity_scores(split, "test")
        pop_ranks = ranks_of(split, "test", np.ones((len(split.users), 1)), pop[:, None])
        cold = {
            "items": len(held),
            "users": int(users.sum()),
            "rows": [
                {"name": "learned head (text fallback)", **_mean_std(head_cold)},
                {"name": "popularity", "seeds": 0, **summary(pop_ranks[users], n)},
            ],
        }
        if config.sasrec:
            sas_cold = []
            for seed in range(config.sasrec_seeds or config.seeds):
                model, _ = train_sasrec(
                    split,
                    SasrecConfig(seed=seed, epochs=config.sasrec_epochs),
                    cold=held,
                    progress=progress,
                )
                sas_cold.append(summary(_sasrec_ranks(split, model)[users], n))
            cold["rows"].insert(1, {"name": "SASRec", **_mean_std(sas_cold)})
    report = {
        "counts": split.counts,
        "model_version": version,
        "rows": rows,
        "cold_start": cold,
        "best_seed": best_seed,
        "records": records,
    }
    return report, heads[best_seed][1]


def _sasrec_ranks(split: Split, model: TrainedSasrec) -> np.ndarray:
    return ranks_by_scores(split, "test", model.scores(split, "test"))[0]


def _head_ranks(split: Split, head: Head, vectors: np.ndarray, ids: bool) -> np.ndarray:
    users = user_vectors(head, split, "test", vectors, ids)
    return ranks_of(split, "test", users, head.item_matrix(vectors, split.items, ids))
