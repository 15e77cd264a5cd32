"""One evaluation run: every row on validation and test, tuning on validation only.

Rows, in order:

1. ``popularity``;
2. ``last item``;
3. ``interest short``, ``interest long``, ``interest no decay``: the settings' two half-lives
   and none, each with the weight scheme that does best on validation;
4. ``interest tuned``: the half-life (from ``HALF_LIVES``, plus the settings' two) and
   weight scheme that do best on validation (Recall@10, then NDCG@10);
5. ``serving``: the model version's ``short`` vector exactly as the stream serves it (the
   settings' short half-life, the weights the replayed events get), the row
   ``--through-pipeline`` reproduces through Kafka, the worker and Qdrant.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from encoder.model import load_model
from encoder.registry import resolve_model_dir
from encoder.service import Encoder
from streams.evaluation.metrics import metrics, rank_targets
from streams.evaluation.protocol import SPLITS, Split, SplitName
from streams.evaluation.rows import (
    Interest,
    head_user_vectors,
    interest_vectors,
    last_item_vectors,
    popularity_scores,
    schemes_for,
    score_chunks,
)
from streams.head import Head
from streams.settings import Settings

HOUR, DAY = 3_600.0, 86_400.0
HALF_LIVES: tuple[float | None, ...] = (HOUR, DAY, 7 * DAY, 30 * DAY, 365 * DAY, None)
ENCODE_CHUNK = 256
ROWS = (
    "popularity",
    "last item",
    "interest short",
    "interest long",
    "interest no decay",
    "interest tuned",
    "serving",
)


def encode_items(
    texts: list[str], model_dir: Path, settings: Settings, progress: bool = True
) -> tuple[np.ndarray, str]:
    """Every item text through the runtime encoder (as the worker encodes items)."""
    model = load_model(
        resolve_model_dir(model_dir),
        provider=settings.encoder_provider,
        threads=settings.encoder_threads,
    )

    async def run() -> np.ndarray:
        async with Encoder(model, max_batch_tokens=settings.encoder_max_batch_tokens) as enc:
            parts = []
            bar = tqdm(
                total=len(texts),
                desc="encode items",
                unit="text",
                disable=not progress,
                file=sys.stderr,
            )
            with bar:
                for start in range(0, len(texts), ENCODE_CHUNK):
                    chunk = texts[start : start + ENCODE_CHUNK]
                    parts.append((await enc.encode(chunk)).vectors)
                    bar.update(len(chunk))
            return np.concatenate(parts)

    return asyncio.run(run()), model.version


def serving_interest(split: Split, settings: Settings) -> Interest:
    """The stream's ``short`` vector: replayed ratings weigh by rating, else clicks."""
    return Interest(
        settings.half_life_short_s, "rating" if split.ratings is not None else "uniform"
    )


def evaluate(
    split: Split,
    vectors: np.ndarray,
    version: str,
    settings: Settings,
    progress: bool = True,
    rows: Collection[str] | None = None,
    head: Head | None = None,
) -> dict[str, Any]:
    """The report: ``{"counts", "model_version", "tuned", "rows": [...]}``; ``rows`` names
    the rows to compute (default: all; the tuning runs only for "interest tuned"). With the
    version's learned ``head``, the serving row is the head's, folded as the stream does."""
    wanted = set(ROWS if rows is None else rows)
    if wanted - set(ROWS):
        raise ValueError(f"unknown rows {sorted(wanted - set(ROWS))}; expected some of {ROWS}")
    cache: dict[tuple[Interest, SplitName], dict[str, float]] = {}

    def interest(spec: Interest, which: SplitName) -> dict[str, float]:
        if (spec, which) not in cache:
            users = interest_vectors(split, which, vectors, spec, settings)
            cache[spec, which] = _by_vectors(split, which, users, vectors)
        return cache[spec, which]

    schemes = schemes_for(split)
    grid = [
        Interest(h, s)
        for h in dict.fromkeys((*HALF_LIVES, settings.half_life_short_s, settings.half_life_long_s))
        for s in schemes
    ]
    if "interest tuned" in wanted:
        for spec in tqdm(grid, desc="tune on validation", disable=not progress, file=sys.stderr):
            interest(spec, "validation")

    def best(specs: list[Interest]) -> Interest:
        return max(specs, key=lambda s: _key(interest(s, "validation")))

    out: list[dict[str, Any]] = []

    def add(name: str, measure: Callable[[SplitName], dict[str, float]], **info: Any) -> None:
        if name in wanted:
            for which in SPLITS:
                out.append({"name": name, "split": which, **measure(which), **info})

    add("popularity", lambda w: _by_scores(split, w, popularity_scores(split, w)))
    add(
        "last item",
        lambda w: _by_vectors(split, w, last_item_vectors(split, w, vectors), vectors),
        model_version=version,
    )
    fixed = (
        ("interest short", settings.half_life_short_s),
        ("interest long", settings.half_life_long_s),
        ("interest no decay", None),
    )
    for name, half_life in fixed:
        if name not in wanted:
            continue
        spec = best([Interest(half_life, s) for s in schemes])
        add(name, functools.partial(interest, spec), **_info(spec, version))
    tuned = best(grid) if "interest tuned" in wanted else None
    if tuned is not None:
        add("interest tuned", lambda w: interest(tuned, w), **_info(tuned, version))
    if head is None:
        serving = serving_interest(split, settings)
        add("serving", lambda w: interest(serving, w), **_info(serving, version))
    else:
        items = head.item_matrix(vectors, split.items)

        def by_head(which: SplitName) -> dict[str, float]:
            return _by_vectors(split, which, head_user_vectors(head, split, which, vectors), items)

        add("serving", by_head, model_version=version, detail=f"learned head, d={head.dim}")
    return {
        "counts": split.counts,
        "model_version": version,
        "tuned": {"half_life_s": tuned.half_life_s, "weights": tuned.scheme} if tuned else None,
        "rows": out,
    }


def _info(spec: Interest, version: str) -> dict[str, Any]:
    return {
        "half_life_s": spec.half_life_s,
        "weights": spec.scheme,
        "model_version": version,
        "detail": spec.describe(),
    }


def _key(m: dict[str, float]) -> tuple[float, float]:
    return m["recall@10"], m["ndcg@10"]


def ranks_by_vectors(
    split: Split, which: SplitName, users: np.ndarray, vectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's target rank and top items, scoring by ``users @ vectors.T`` (history
    excluded), in chunks that bound memory."""
    ranks, tops = [], []
    for chunk, scores in score_chunks(users, vectors):
        r, t = ranks_by_scores(split, which, scores, chunk)
        ranks.append(r)
        tops.append(t)
    return np.concatenate(ranks), np.concatenate(tops)


def ranks_by_scores(
    split: Split, which: SplitName, scores: np.ndarray, chunk: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray]:
    """Target ranks and top items of the users of ``chunk`` from their (users x items)
    ``scores``, history excluded."""
    users = range(len(split.users))[chunk]
    targets = np.asarray([split.target(u, which) for u in users])
    history = [split.sequences[u][: split.history_length(u, which)] for u in users]
    return rank_targets(scores, targets, history)


def _by_vectors(
    split: Split, which: SplitName, users: np.ndarray, vectors: np.ndarray
) -> dict[str, float]:
    return metrics(*ranks_by_vectors(split, which, users, vectors), len(split.items))


def _by_scores(split: Split, which: SplitName, item_scores: np.ndarray) -> dict[str, float]:
    users = np.ones((len(split.users), 1))  # the same scores for everyone
    return _by_vectors(split, which, users, item_scores[:, None])
