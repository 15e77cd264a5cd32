"""Fine-tuning from feedback: the job a worker's trigger starts (streams/worker/finetune.py).

The worker's ``feedback`` agent turns each signal on the ``feedback`` topic into a training
example (``EventProcessor.feedback``): the user's history before the signal (item ids,
texts, times and weights as the stream folded them) paired with the item and its reward.
Examples go to the ``examples`` topic (durable; bounded to 90 days and 1 GiB per partition)
before the feedback is acknowledged, and count towards the worker's trigger. When it is
due, the worker starts ``interest-stream finetune --feedback`` in its own process:

1. read every example from the ``examples`` topic;
2. hold out the newest positive examples by time (``HOLD_OUT_SHARE``, at least one);
3. train (``export/finetune.py``) on the positives that arrived since the last feedback job
   plus a replay sample of older ones (``REPLAY_SHARE``), with the items of the user's
   negative signals as extra negatives;
4. export, gate and promote or delete the candidate as every fine-tuning round does
   (``streams/training.py``): the gate is Recall@10 of the hold-out's items, each ranked
   among every item the examples name by the user vector computed as the stream computes
   it (decayed, weighted, from the history);
5. append the record to ``<models root>/finetune.jsonl`` (``"source": "feedback"``).

A version that serves a learned head (streams/head.py) gets a head round instead
(:func:`run_head_round`, ``"kind": "head"``): the encoder stays, the head warm-starts from the
served one and trains on the same examples (their histories as the stream folded them),
items it did not know get their per-item parts, and the gate compares the two heads on the
hold-out, each folding the histories as the stream would serve it. The better head becomes
a new version and CURRENT; the worker rolls it out as any new version.

One job at a time: the job holds the models root's lock; a job that finds it held raises
:class:`~streams.training.rounds.JobRunning` (the CLI exits with ``JOB_BUSY_EXIT``).

    record = run_feedback_job(settings, TrainConfig(steps=100))
"""

from __future__ import annotations

import asyncio
import datetime
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from encoder.manifest import read_manifest
from encoder.registry import ModelRegistry
from streams.errors import StreamError
from streams.head import Head, load_head
from streams.kafka.client import kafka_security
from streams.records import Example, ForgetMarker, decode_example
from streams.settings import Settings

if TYPE_CHECKING:
    from export.finetune import TrainConfig, TrainingData
    from streams.training.head import HeadFinetune

HOLD_OUT_SHARE = 0.1  # of the positive examples, the newest
REPLAY_SHARE = 0.25  # of a job's training examples, drawn from before the last job
MAX_EXAMPLES = 200_000  # read at most this many (the newest) from the topic
READ_TIMEOUT_S = 300.0  # reading the examples topic to its end
K = 10


def read_examples(settings: Settings, limit: int = MAX_EXAMPLES) -> list[Example | ForgetMarker]:
    """Every example in the ``examples`` topic (the newest ``limit``), oldest first."""
    return asyncio.run(_read(settings, limit))


async def _read(settings: Settings, limit: int) -> list[Example | ForgetMarker]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        **kafka_security(settings),
    )
    await consumer.start()
    try:
        topic = settings.topic("examples")
        await consumer._client.force_metadata_update()  # see a topic made after start
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        left = {tp: ends[tp] - starts[tp] for tp in parts}
        for tp in parts:
            consumer.seek(tp, starts[tp])
        out: list[Example | ForgetMarker] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(n > 0 for n in left.values()):
            if time.monotonic() > deadline:
                raise StreamError(
                    f"reading {topic} timed out with {sum(left.values())} examples left "
                    f"after {READ_TIMEOUT_S:.0f} s"
                )
            batches = await consumer.getmany(*[tp for tp in parts if left[tp] > 0], timeout_ms=2000)
            for tp, messages in batches.items():
                for m in messages:
                    if m.offset < ends[tp]:
                        out.append(decode_example(m.value))
                left[tp] = ends[tp] - 1 - messages[-1].offset if messages else left[tp]
        out.sort(key=lambda e: e.ts)
        return out[-limit:]
    finally:
        await consumer.stop()


def feedback_data(
    records: list[Example | ForgetMarker], since: float | None, size: int, seed: int
) -> tuple[TrainingData, list[tuple[int, int]], list[int]]:
    """Training data from examples: (data, the job's training examples, the hold-out).

    Each example is its own sequence: its history, then its item. Examples of a user who
    asked to be forgotten, up to the forget time, are left out. ``since``: the newest
    example time the last feedback job saw; positives after it are new, the rest may be
    replayed. Negative examples (reward <= 0) become negatives of their user's sequences.
    """
    from export.finetune import TrainingData

    index: dict[str, int] = {}
    texts: list[str] = []

    def item(item_id: str, text: str) -> int:
        if item_id not in index:
            index[item_id] = len(texts)
            texts.append(text)
        return index[item_id]

    forgotten: dict[str, float] = {}  # user -> forget time (markers from the events agent)
    for r in records:
        if isinstance(r, ForgetMarker):
            forgotten[r.user_id] = max(r.ts, forgotten.get(r.user_id, r.ts))
    examples = [
        r for r in records if isinstance(r, Example) and r.ts > forgotten.get(r.user_id, -math.inf)
    ]
    sequences: list[np.ndarray] = []
    times: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    owners: list[str] = []
    negative_items: dict[str, set[int]] = defaultdict(set)
    positives: list[int] = []
    for ex in examples:
        target = item(ex.item_id, ex.item_text)
        if ex.reward <= 0:
            negative_items[ex.user_id].add(target)
            continue
        if not ex.history:
            continue
        positives.append(len(sequences))
        sequences.append(np.asarray([item(h.item_id, h.text) for h in ex.history] + [target]))
        times.append(np.asarray([h.ts for h in ex.history] + [ex.ts], dtype=np.float64))
        weights.append(np.asarray([h.weight for h in ex.history] + [0.0], dtype=np.float64))
        owners.append(ex.user_id)
    data = TrainingData(
        texts=texts,
        sequences=sequences,
        times=times,
        weights=weights,
        negatives=[np.asarray(sorted(negative_items[u]), dtype=np.int64) for u in owners],
        item_ids=list(index),
    )
    positives.sort(key=lambda s: times[s][-1])
    n_hold = max(1, math.ceil(len(positives) * HOLD_OUT_SHARE)) if len(positives) > 1 else 0
    hold_out = positives[len(positives) - n_hold :]
    train = positives[: len(positives) - n_hold]
    new = [s for s in train if since is None or times[s][-1] > since]
    old = [s for s in train if since is not None and times[s][-1] <= since]
    rng = np.random.default_rng(seed)
    n_new = min(len(new), size - min(len(old), int(size * REPLAY_SHARE)))
    n_old = min(len(old), size - n_new)
    picked = list(rng.choice(new, n_new, replace=False)) if n_new else []
    picked += list(rng.choice(old, n_old, replace=False)) if n_old else []
    return data, [(int(s), len(sequences[s]) - 1) for s in picked], hold_out


def hold_out_recall(
    model_dir: Path, data: TrainingData, hold_out: list[int], half_life_s: float, settings: Settings
) -> dict[str, float]:
    """Recall@10 and MRR@10 of the hold-out's items among every item of ``data``, by the
    user vector the stream would hold (decayed, weighted history), history excluded."""
    from streams.evaluation.run import encode_items

    vectors, _ = encode_items(data.texts, model_dir, settings, progress=False)

    def scores(seq: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
        decay = w * np.exp2((t - t.max()) / half_life_s)
        return vectors @ (decay @ vectors[seq])

    return _rank_hold_out(data, hold_out, scores)


def hold_out_head(
    head: Head, e: np.ndarray, data: TrainingData, hold_out: list[int]
) -> dict[str, float]:
    """:func:`hold_out_recall` for a head version: each hold-out history folded as the
    stream folds it for ``head`` (``[q, 1]`` against ``[y_j, b_j]``), the items of
    ``data`` (text vectors ``e``) ranked, history excluded. Items the head does not know
    score by their text part, as the stream serves them."""
    assert data.item_ids is not None
    x = head.history_vectors(e, data.item_ids)
    items = head.item_matrix(e, data.item_ids)
    return _rank_hold_out(data, hold_out, lambda seq, t, w: items @ head.fold(x, seq, t, w))


def _rank_hold_out(
    data: TrainingData,
    hold_out: list[int],
    scores_of: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> dict[str, float]:
    """Recall@10 and MRR@10 of each hold-out sequence's last item among every item, by
    ``scores_of(history items, times, weights)``, the history's own items left out."""
    hits, rr = 0, 0.0
    for s in hold_out:
        seq, t, w = data.sequences[s], data.times[s], data.weights[s]
        scores = scores_of(seq[:-1], t[:-1], w[:-1])
        scores[seq[:-1]] = -np.inf
        rank = int((scores > scores[seq[-1]]).sum())
        if rank < K:
            hits += 1
            rr += 1 / (rank + 1)
    n = len(hold_out)
    return {
        "recall@10": hits / n if n else 0.0,
        "mrr@10": rr / n if n else 0.0,
        "examples": float(n),
        "items": float(len(data.texts)),
    }


def head_examples(
    data: TrainingData, picked: list[int]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """The ``picked`` sequences as :func:`finetune_head` takes them: (history items, their
    times, their weights, the target item)."""
    return [
        (
            data.sequences[s][:-1],
            data.times[s][:-1],
            data.weights[s][:-1],
            int(data.sequences[s][-1]),
        )
        for s in picked
    ]


def run_head_round(
    registry: ModelRegistry,
    settings: Settings,
    data: TrainingData,
    picked: list[int],
    hold_out: list[int],
    progress: bool = True,
    config: HeadFinetune | None = None,
) -> dict:
    """A feedback round for a version that serves a learned head: warm-start the head on
    the ``picked`` examples (streams/training/head.py, :func:`finetune_head`), give the items
    it did not know their per-item parts, gate on the hold-out against the served head and
    promote the better one as a new version (CURRENT). The encoder stays as it is."""
    from streams.evaluation.run import encode_items
    from streams.training.head import HeadFinetune, finetune_head
    from streams.training.versions import write_head_version

    started = time.perf_counter()
    parent = registry.current()
    assert parent is not None and data.item_ids is not None
    served = load_head(registry.path(parent))
    assert served is not None
    e, _ = encode_items(data.texts, registry.path(parent), settings, progress=progress)
    tuned, train = finetune_head(
        served, e, data.item_ids, head_examples(data, picked), config or HeadFinetune(), progress
    )
    scores = {
        "current": hold_out_head(served, e, data, hold_out),
        "candidate": hold_out_head(tuned, e, data, hold_out),
    }
    promoted = scores["candidate"]["recall@10"] > scores["current"]["recall@10"]
    meta = {**(read_manifest(registry.path(parent)).head or {}), "source": "feedback"}
    candidate, created = write_head_version(registry.root, parent, tuned, meta)
    if promoted:
        registry.set_current(candidate)
    elif created:
        shutil.rmtree(registry.path(candidate))  # recorded below, then gone
    times = [float(data.times[s][-1]) for s in picked]
    day = lambda t: datetime.datetime.fromtimestamp(t, datetime.UTC).date().isoformat()  # noqa: E731
    return {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "kind": "head",
        "parent": parent,
        "candidate": candidate,
        "decision": "promoted" if promoted else "discarded",
        "data": {"examples": len(picked), "from": day(min(times)), "to": day(max(times))},
        "train": train,
        "hold_out": scores,
        "seconds": round(time.perf_counter() - started, 1),
    }


def last_feedback_ts(models_root: Path) -> float | None:
    """The newest example time the last feedback job trained on (finetune.jsonl)."""
    from streams.training.rounds import LOG_FILE

    path = models_root / LOG_FILE
    if not path.exists():
        return None
    seen = [
        r["data"].get("to_ts")
        for r in map(orjson.loads, path.read_bytes().splitlines())
        if r.get("source") == "feedback"
    ]
    seen = [t for t in seen if t is not None]
    return max(seen) if seen else None


def run_feedback_job(settings: Settings, config: TrainConfig, progress: bool = True) -> dict:
    """One fine-tuning round on the stored examples; the record it appended."""
    from streams.training.rounds import LOG_FILE, job_lock

    root = settings.models_root
    registry = ModelRegistry(root)
    if registry.current() is None:
        raise StreamError(f"no current model version under {root}: run `interest-stream export`")
    with job_lock(root):
        examples = read_examples(settings)
        data, picked, hold_out = feedback_data(
            examples, last_feedback_ts(root), config.steps * config.batch_size, config.seed
        )
        if not picked or not hold_out:
            raise StreamError(
                f"not enough feedback to train on: {len(examples)} examples, "
                f"{len(picked)} to train and {len(hold_out)} to hold out (both need one)"
            )
        if load_head(registry.path(registry.current() or "")) is not None:
            record = run_head_round(
                registry, settings, data, [s for s, _ in picked], hold_out, progress
            )
        else:
            record = _encoder_round(registry, settings, data, picked, hold_out, config, progress)
        record["source"] = "feedback"
        record["data"]["to_ts"] = max(float(data.times[s][-1]) for s, _ in picked)
        record["data"]["hold_out"] = len(hold_out)
        with (root / LOG_FILE).open("ab") as fh:
            fh.write(orjson.dumps(record) + b"\n")
    return record


def _encoder_round(
    registry: ModelRegistry,
    settings: Settings,
    data: TrainingData,
    picked: list[tuple[int, int]],
    hold_out: list[int],
    config: TrainConfig,
    progress: bool,
) -> dict:
    """A feedback round that fine-tunes the encoder (a version without a head)."""
    from streams.training.rounds import run_round

    half_life = settings.half_life_short_s
    return run_round(
        registry,
        data,
        picked,
        config,
        {},
        lambda path: {"validation": hold_out_recall(path, data, hold_out, half_life, settings)},
        progress,
    )
