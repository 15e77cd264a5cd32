"""``interest-stream bench encoder``: raw ONNX Runtime against the runtime encoder, one run.

Raw: texts pre-tokenized, sorted by length and cut into batches of the best size found
(the most favourable case for plain ONNX Runtime, so the ratio is an upper bound on our
overhead). Encoder: the same texts through the public ``Encoder.encode`` API, from
``callers`` concurrent tasks sending ``per_call`` texts each, cache on, every text unique.
Rounds alternate raw and encoder so that machine noise hits both; figures are medians.

Throughput comes from a closed loop (callers resubmit as soon as answered), which saturates
the encoder; latency at saturation is only queueing, so p50 / p99 come from a separate
open-loop pass: calls of 4 texts arriving at random at ``latency_load`` (default half) of the
measured encoder throughput.

Text mix ``mixed`` (stated): 80% short titles (about 8-20 tokens), 20% long reviews (about
100-250 tokens), words drawn from a fixed vocabulary with accents, CJK and emoji.
``short32``: every text exactly 32 tokens (the GPU goal's shape).

``baseline``: another model version (say fp32 beside int8) whose raw throughput is measured
in the same rounds on the same texts, giving ``speedup_vs_baseline``.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from encoder.model import LoadedModel
from encoder.service import Encoder
from encoder.tokenize import pad

VOCAB = [
    "the",
    "a",
    "of",
    "and",
    "movie",
    "film",
    "story",
    "great",
    "plot",
    "slow",
    "actor",
    "actress",
    "brilliant",
    "boring",
    "twist",
    "ending",
    "sequel",
    "noir",
    "comedy",
    "drama",
    "thriller",
    "horror",
    "romance",
    "score",
    "soundtrack",
    "director",
    "cast",
    "scene",
    "visual",
    "effects",
    "pacing",
    "dialogue",
    "character",
    "emotional",
    "funny",
    "dark",
    "épique",
    "naïve",
    "déjà",
    "vu",
    "映画",
    "音楽",
    "좋은",
    "фильм",
    "🎬",
    "🍿",
    "action",
    "adventure",
    "animation",
    "children",
    "fantasy",
    "sci-fi",
    "war",
    "western",
]


def make_texts(n: int, mix: str, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        if mix == "short32":
            words = 28  # with [CLS]/[SEP] and sub-words, trimmed to 32 tokens below
        elif rng.random() < 0.8:
            words = rng.randint(4, 14)
        else:
            words = rng.randint(80, 200)
        # The index makes every text unique, so the cache never helps the encoder here.
        texts.append(f"{i} " + " ".join(rng.choice(VOCAB) for _ in range(words)))
    return texts


def _raw_rows(model: LoadedModel, texts: Sequence[str], mix: str) -> list[np.ndarray]:
    rows, _ = model.tokenize(texts)
    if mix == "short32":
        rows = [np.concatenate([r[:31], r[-1:]]) if len(r) > 32 else r for r in rows]
    return sorted(rows, key=len)


def raw_pass(model: LoadedModel, rows: list[np.ndarray], batch: int) -> float:
    batches = [pad(rows[i : i + batch], model.tokenizer.pad_id) for i in range(0, len(rows), batch)]
    started = time.perf_counter()
    for ids, mask in batches:
        model.session.run(ids, mask)
    return len(rows) / (time.perf_counter() - started)


async def encoder_pass(
    model: LoadedModel, texts: list[str], batch: int, callers: int, per_call: int
) -> tuple[float, dict[str, Any]]:
    """Throughput: a closed loop of callers, each resubmitting as soon as it is answered."""
    chunks = [texts[i : i + per_call] for i in range(0, len(texts), per_call)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)

    # Runs of the raw path's best size, so both paths do the same ONNX Runtime work.
    model.run_rows, model.run_tokens = batch, batch * model.max_length
    async with Encoder(model) as enc:

        async def caller() -> None:
            while not queue.empty():
                await enc.encode(queue.get_nowait())

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        rate = len(texts) / (time.perf_counter() - started)
        info = enc.info()
    return rate, info


async def latency_pass(
    model: LoadedModel, texts: list[str], rate: float, per_call: int, seconds: float = 8.0
) -> list[float]:
    """Latency: calls of ``per_call`` texts arriving at random (Poisson) at ``rate`` texts/s."""
    rng = random.Random(11)
    n = max(per_call * 10, min(len(texts), int(rate * seconds)))
    chunks = [texts[i : i + per_call] for i in range(0, n, per_call)]
    latencies: list[float] = []

    async with Encoder(model) as enc:

        async def timed(chunk: list[str]) -> None:
            t0 = time.perf_counter()
            await enc.encode(chunk)
            latencies.append(time.perf_counter() - t0)

        tasks = []
        for chunk in chunks:
            tasks.append(asyncio.create_task(timed(chunk)))
            await asyncio.sleep(rng.expovariate(rate / per_call))
        await asyncio.gather(*tasks)
    return latencies


def run_bench(
    model: LoadedModel,
    *,
    texts: int = 2000,
    mix: str = "mixed",
    rounds: int = 3,
    callers: int = 64,
    per_call: int = 16,
    latency_load: float = 0.5,
    batch_sizes: Sequence[int] = (16, 32, 64, 128, 256),
    baseline: LoadedModel | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    corpus = make_texts(texts, mix)
    if mix == "short32":
        # Same 32-token rows for both paths: the encoder gets texts that tokenize to 32.
        corpus = _fit_to_tokens(model, corpus, 32)
    rows = _raw_rows(model, corpus, mix)
    raw_pass(model, rows[:64], 32)  # warm-up
    probe = rows[:: max(1, len(rows) // 256)]  # every k-th row: the same mix, less time
    best = max(batch_sizes, key=lambda b: raw_pass(model, probe, b))
    raw_rates, enc_rates, base_rates = [], [], []
    base_rows = _raw_rows(baseline, corpus, mix) if baseline else []
    info: dict[str, Any] = {}
    for _ in tqdm(range(rounds), desc="bench rounds", file=sys.stderr, disable=not progress):
        if baseline is not None:
            base_rates.append(raw_pass(baseline, base_rows, best))
        raw_rates.append(raw_pass(model, rows, best))
        rate, info = asyncio.run(encoder_pass(model, corpus, best, callers, per_call))
        enc_rates.append(rate)
    raw, enc = statistics.median(raw_rates), statistics.median(enc_rates)
    offered = latency_load * enc
    lat_ms = np.asarray(asyncio.run(latency_pass(model, corpus, offered, 4))) * 1000
    extra: dict[str, Any] = {}
    if baseline is not None:
        base = statistics.median(base_rates)
        extra = {
            "baseline_version": baseline.version,
            "baseline_precision": baseline.manifest.precision,
            "baseline_raw_texts_per_s": round(base, 1),
            "speedup_vs_baseline": round(raw / base, 3),
        }
    return extra | {
        "raw_texts_per_s": round(raw, 1),
        "encoder_texts_per_s": round(enc, 1),
        "ratio": round(enc / raw, 3),
        "p50_ms": round(float(np.percentile(lat_ms, 50)), 2),
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 2),
        "latency_offered_texts_per_s": round(offered, 1),
        "latency_texts_per_call": 4,
        "precision": model.manifest.precision,
        "provider": model.provider,
        "batch_size": best,
        "texts": len(corpus),
        "mix": mix,
        "rounds": rounds,
        "callers": callers,
        "per_call": per_call,
        "version": model.version,
        "threads": model.session.threads,
        "mean_batch_rows": info.get("mean_batch_rows"),
        "mean_tokens": round(float(np.mean([len(r) for r in rows])), 1),
    }


def _fit_to_tokens(model: LoadedModel, texts: list[str], n: int) -> list[str]:
    """Cut texts so that each tokenizes to exactly n tokens (special tokens included)."""
    rows, _ = model.tokenize(texts)
    out = []
    for text, row in zip(texts, rows, strict=True):
        if len(row) > n:
            text = model.tokenizer.decode(row[1 : n - 1].tolist())
        out.append(text)
    return out
