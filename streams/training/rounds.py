"""``interest-stream finetune``: rounds of incremental fine-tuning, each gated on a hold-out.

A round:

1. takes the serving model version's PyTorch weights (a fine-tuned version keeps them in
   ``<version>/torch/``; the default version's are the packaged all-MiniLM-L6-v2);
2. trains on the round's examples (``export/finetune.py``): the newest slice of the
   examples in time, plus a replay sample of older ones against forgetting;
3. exports the candidate through the same export path (parity checks included);
4. gates it: the candidate's Recall@10 on the hold-out (each user's validation target, i.e.
   the next item after every training interaction) must beat the serving version's, both
   measured with the user vector the stream serves (``streams.evaluation``); a better
   candidate becomes the current version, a worse one is deleted;
5. appends a record to ``<models root>/finetune.jsonl``: data span, steps, loss, metrics,
   decision, seconds.

Training uses only interactions before each user's validation target; the test targets are
reported for the curve, never used to decide. One job at a time: a second one refuses to
start while ``<models root>/.finetune.lock`` is held.

    records = run_rounds(split, settings, rounds=3, config=TrainConfig(steps=100))
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from encoder.manifest import read_manifest
from encoder.registry import ModelRegistry
from streams.errors import StreamError
from streams.evaluation.protocol import Split
from streams.evaluation.rows import event_weights
from streams.evaluation.run import encode_items, evaluate, serving_interest
from streams.settings import Settings

if TYPE_CHECKING:
    from export.finetune import TrainConfig, TrainingData

LOG_FILE = "finetune.jsonl"
LOCK_FILE = ".finetune.lock"
WEIGHTS_DIR = "torch"
REPLAY_SHARE = 0.25  # of each round's examples, drawn from earlier slices


class JobRunning(StreamError):
    """Another fine-tuning job holds the lock."""


@contextlib.contextmanager
def job_lock(models_root: Path) -> Iterator[None]:
    """Hold the models root's fine-tuning lock, or raise :class:`JobRunning` at once."""
    models_root.mkdir(parents=True, exist_ok=True)
    with (models_root / LOCK_FILE).open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise JobRunning(
                f"a fine-tuning job is already running on {models_root} "
                f"(pid {fh.read().strip() or '?'})"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def training_data(split: Split, settings: Settings) -> tuple[TrainingData, list[tuple[int, int]]]:
    """Each user's interactions before the validation target, weighted as the stream
    weighs them; examples (user, position) in time order of their target."""
    from export.finetune import TrainingData

    scheme = serving_interest(split, settings).scheme
    lengths = [split.history_length(u, "validation") for u in range(len(split.users))]
    data = TrainingData(
        texts=split.texts,
        sequences=[s[:n] for s, n in zip(split.sequences, lengths, strict=True)],
        times=[t[:n] for t, n in zip(split.times, lengths, strict=True)],
        weights=[event_weights(split, u, n, scheme, settings) for u, n in enumerate(lengths)],
    )
    examples = [(u, p) for u, n in enumerate(lengths) for p in range(1, n)]
    examples.sort(key=lambda e: data.times[e[0]][e[1]])
    return data, examples


def round_examples(
    examples: list[tuple[int, int]], round_no: int, rounds: int, size: int, seed: int
) -> list[tuple[int, int]]:
    """Round ``round_no`` (0-based) of ``rounds``: its own time slice, plus a replay sample
    of the slices before it (``REPLAY_SHARE``), ``size`` examples at most."""
    rng = np.random.default_rng(seed + round_no)
    bounds = np.linspace(0, len(examples), rounds + 1).astype(int)
    new = examples[bounds[round_no] : bounds[round_no + 1]]
    old = examples[: bounds[round_no]]
    n_old = min(len(old), int(size * REPLAY_SHARE)) if old else 0
    n_new = min(len(new), size - n_old)
    picked = [new[i] for i in rng.choice(len(new), n_new, replace=False)]
    picked += [old[i] for i in rng.choice(len(old), n_old, replace=False)] if n_old else []
    return picked


def weights_dir(registry: ModelRegistry, version: str) -> Path | None:
    """Where a version's PyTorch weights are: None means the packaged default model."""
    path = registry.path(version)
    if (path / WEIGHTS_DIR).is_dir():
        return path / WEIGHTS_DIR
    from export.source import DEFAULT_MODEL_NAME

    source = read_manifest(path).source_model
    if source == DEFAULT_MODEL_NAME:
        return None
    if Path(source).is_dir():
        return Path(source)
    raise StreamError(
        f"model version {version} has no PyTorch weights to fine-tune from "
        f"(no {path / WEIGHTS_DIR}, and its source {source!r} is not a directory)"
    )


def run_rounds(
    split: Split,
    settings: Settings,
    rounds: int,
    config: TrainConfig,
    progress: bool = True,
) -> list[dict[str, Any]]:
    if rounds < 1:
        raise StreamError("--rounds must be at least 1")
    root = settings.models_root
    registry = ModelRegistry(root)
    if registry.current() is None:
        raise StreamError(f"no current model version under {root}: run `interest-stream export`")
    data, examples = training_data(split, settings)
    if not examples:
        raise StreamError("no training examples: users need 3 interactions before validation")
    records = []
    with job_lock(root):
        scores: dict[str, dict[str, dict[str, float]]] = {}
        for round_no in range(rounds):
            picked = round_examples(
                examples, round_no, rounds, config.steps * config.batch_size, config.seed
            )
            seeded = dataclasses.replace(config, seed=config.seed + round_no)
            record = run_round(
                registry,
                data,
                picked,
                seeded,
                scores,
                lambda path: _hold_out(split, path, settings),
                progress,
            )
            record["round"] = f"{round_no + 1}/{rounds}"
            with (root / LOG_FILE).open("ab") as fh:
                fh.write(orjson.dumps(record) + b"\n")
            records.append(record)
    return records


def run_round(
    registry: ModelRegistry,
    data: TrainingData,
    picked: list[tuple[int, int]],
    config: TrainConfig,
    scores: dict[str, dict[str, dict[str, float]]],
    score: Callable[[Path], dict[str, dict[str, float]]],
    progress: bool,
) -> dict[str, Any]:
    """One round: train, export the candidate, gate it on ``score(version dir)``'s
    ``["validation"]["recall@10"]`` against the current version's, promote or delete it.
    ``scores`` caches each version's score across rounds; a ``"test"`` score, when there is
    one, is recorded but never decides."""
    from export.finetune import finetune
    from export.pipeline import export_model
    from export.source import default_model_dir, inspect_source

    started = time.perf_counter()
    parent = registry.current()
    assert parent is not None
    source = weights_dir(registry, parent) or default_model_dir()
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    say(f"fine-tuning {parent} on {len(picked)} examples")
    with tempfile.TemporaryDirectory(prefix=".finetune-", dir=registry.root) as tmp:
        trained = Path(tmp) / "source"
        train = finetune(
            source,
            data,
            picked,
            config,
            trained,
            pooling=inspect_source(source).pooling,
            progress=progress,
        )
        result = export_model(
            trained,
            registry.root,
            parent=parent,
            set_current=False,
            source_name=f"fine-tuned from {parent}",
            log=sys.stderr if progress else io.StringIO(),
        )
        candidate = result.version
        promoted = False
        try:
            for version in (parent, candidate):
                if version not in scores:
                    scores[version] = score(registry.path(version))
            hold_out = {v: scores[v]["validation"]["recall@10"] for v in (parent, candidate)}
            if hold_out[candidate] > hold_out[parent]:
                if not (result.path / WEIGHTS_DIR).exists():
                    shutil.copytree(trained, result.path / WEIGHTS_DIR)
                registry.set_current(candidate)
                promoted = True
        finally:
            if result.created and not promoted:
                shutil.rmtree(result.path)  # recorded below (unless this failed), then gone
    times = [data.times[u][p] for u, p in picked]
    return {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "parent": parent,
        "candidate": candidate,
        "decision": "promoted" if promoted else "discarded",
        "data": {
            "examples": len(picked),
            "from": datetime.datetime.fromtimestamp(min(times), datetime.UTC).date().isoformat(),
            "to": datetime.datetime.fromtimestamp(max(times), datetime.UTC).date().isoformat(),
        },
        "train": train,
        "hold_out": {
            "current": scores[parent]["validation"],
            "candidate": scores[candidate]["validation"],
        },
        **(
            {"test": {"current": scores[parent]["test"], "candidate": scores[candidate]["test"]}}
            if "test" in scores[parent]
            else {}
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _hold_out(split: Split, model_dir: Path, settings: Settings) -> dict[str, dict[str, float]]:
    """The served user vector's metrics of one version, on validation and test."""
    vectors, version = encode_items(split.texts, model_dir, settings, progress=False)
    report = evaluate(split, vectors, version, settings, progress=False, rows=("serving",))
    return {r["split"]: r for r in report["rows"] if r["name"] == "serving"}
