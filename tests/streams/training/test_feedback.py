"""The feedback loop: signals become examples, the trigger starts a job, the job gates."""

from __future__ import annotations

import math
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import pytest

from encoder.registry import ModelRegistry
from streams.cli import main
from streams.head import Head
from streams.kafka.topics import ensure_topics
from streams.records import Example, ForgetMarker, Seen, decode_example, encode_example
from streams.settings import Settings
from streams.training.feedback import feedback_data, hold_out_recall, read_examples
from streams.training.rounds import LOG_FILE, job_lock
from streams.worker.finetune import JOB_BUSY_EXIT, Trigger
from tests.streams.kafka_helpers import WorkerProcess, free_port, produce, wait_committed

T0 = 1_600_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_trigger_fires_on_enough_examples_or_enough_time() -> None:
    clock = Clock()
    trigger = Trigger(min_examples=5, every_s=60, clock=clock)
    trigger.add(4)
    assert not trigger.due()
    trigger.add(1)
    assert trigger.due()
    trigger.started()
    assert not trigger.due() and trigger.new == 0
    clock.now = 61
    assert not trigger.due()  # time alone, with nothing new, starts nothing
    trigger.add(1)
    assert trigger.due()  # one new example and a minute: due
    off = Trigger(min_examples=0, every_s=1, clock=clock)
    off.add(1000)
    clock.now = 1e9
    assert not off.due()


def example(user: str, item: str, ts: float, reward: float = 1.0, history=None) -> Example:
    history = history if history is not None else [["h", "history item", ts - 10, 1.0]]
    return Example(
        user_id=user,
        item_id=item,
        item_text=f"text {item}",
        reward=reward,
        ts=ts,
        served_by=None,
        history=tuple(Seen(*h) for h in history),
    )


def test_examples_and_forget_markers_survive_the_topic_unchanged() -> None:
    for record in (example("u1", "i1", T0), ForgetMarker("u1", T0 + 5)):
        assert decode_example(encode_example(record)) == record


def test_examples_make_sequences_a_time_hold_out_and_negatives() -> None:
    examples = [example("u1", f"i{k}", T0 + k) for k in range(20)]
    examples.append(example("u1", "bad", T0 + 5, reward=-1.0))
    examples.append(example("u2", "lonely", T0 + 6, history=[]))  # no history: unusable
    data, picked, hold_out = feedback_data(examples, since=T0 + 9, size=8, seed=0)
    assert len(data.sequences) == 20
    # The newest 10% of the positives are held out, never trained on.
    assert [data.times[s][-1] for s in hold_out] == [T0 + 18, T0 + 19]
    assert not {s for s, _ in picked} & set(hold_out)
    # 8 examples: the new ones after `since` first, 25% replayed from before it.
    times = sorted(data.times[s][-1] for s, _ in picked)
    assert len(picked) == 8 and sum(t > T0 + 9 for t in times) == 6
    assert all(p == len(data.sequences[s]) - 1 for s, p in picked)
    bad = data.texts.index("text bad")
    assert data.negatives is not None and all(list(n) == [bad] for n in data.negatives)


def test_examples_before_a_forget_are_never_trained_on() -> None:
    examples = [example("u1", f"i{k}", T0 + k) for k in range(10)]
    examples += [example("u2", f"j{k}", T0 + k) for k in range(10)]
    examples.append(ForgetMarker("u1", T0 + 5))
    data, _, _ = feedback_data(examples, since=None, size=100, seed=0)
    kept = sorted(data.texts[seq[-1]] for seq in data.sequences)
    assert kept == sorted([f"text i{k}" for k in range(6, 10)] + [f"text j{k}" for k in range(10)])


def test_a_feedback_job_with_a_dataset_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["finetune", "--feedback", "--dataset", "movielens", "--path", "."]) == 2
    assert "--feedback trains on the stored examples: give no dataset" in capsys.readouterr().err


def test_a_job_finds_the_lock_held_and_says_so(tiny_root: Path) -> None:
    with job_lock(tiny_root):
        assert main(["finetune", "--feedback", "--model", str(tiny_root)]) == JOB_BUSY_EXIT


@pytest.mark.slow
def test_the_hold_out_ranks_by_the_vector_the_stream_holds(tiny_model_dir: Path) -> None:
    from streams.evaluation.run import encode_items

    rng = np.random.default_rng(0)
    examples = []
    for k in range(30):
        history = [
            [f"i{j}", f"item number {j}", T0 + j, float(rng.choice([1.0, 0.5]))]
            for j in rng.choice(40, 4, replace=False)
        ]
        examples.append(example(f"u{k}", f"i{rng.integers(40)}", T0 + 100 + k, history=history))
    data, _, hold_out = feedback_data(examples, None, size=10, seed=0)
    got = hold_out_recall(tiny_model_dir, data, hold_out, 3600.0, Settings())
    vectors, _ = encode_items(data.texts, tiny_model_dir, Settings(), progress=False)
    hits = 0
    for s in hold_out:  # the oracle: loops, no vectorisation
        seq = data.sequences[s]
        user = sum(
            data.weights[s][j]
            * 2 ** ((data.times[s][j] - data.times[s][:-1].max()) / 3600.0)
            * vectors[seq[j]]
            for j in range(len(seq) - 1)
        )
        scores = {i: float(vectors[i] @ user) for i in range(len(data.texts)) if i not in seq[:-1]}
        better = sum(v > scores[seq[-1]] for v in scores.values())
        hits += better < 10
    assert got["recall@10"] == pytest.approx(hits / len(hold_out))
    assert got["examples"] == len(hold_out) == 3


@pytest.mark.kafka
@pytest.mark.slow
def test_feedback_through_the_worker_starts_a_gated_job(
    kafka_broker, tiny_root: Path, tmp_path: Path
) -> None:
    """Feedback on the topic -> examples in the examples topic -> the trigger starts
    `finetune --feedback` in its own process -> a record, promoted or discarded."""
    serving = ModelRegistry(tiny_root).current()
    prefix = f"fb{uuid.uuid4().hex[:6]}."
    settings = Settings(kafka_bootstrap=kafka_broker.bootstrap, topic_prefix=prefix)
    ensure_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_")} | {
        "INTEREST_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "INTEREST_MODEL_DIR": str(tiny_root),
        "INTEREST_DATA_DIR": str(tmp_path / "data"),
        "INTEREST_TOPIC_PREFIX": prefix,
        "INTEREST_CONSUMER_GROUP": f"g-{prefix}",
        "INTEREST_WINDOW_MS": "100",
        "INTEREST_ENCODER_PROVIDER": "cpu",
        "INTEREST_METRICS_PORT": str(free_port()),
        "INTEREST_FINETUNE_MIN_EXAMPLES": "20",
        "INTEREST_FINETUNE_STEPS": "2",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        items = [
            (f"{prefix}items", {"item_id": i, "text": f"film {i}"}, str(i).encode())
            for i in range(30)
        ]
        produce(kafka_broker.bootstrap, items)
        wait_committed(kafka_broker.bootstrap, f"g-{prefix}", [f"{prefix}items"])
        clicks = [
            (
                f"{prefix}clicks",
                {
                    "event_id": f"e{u}-{k}",
                    "user_id": f"u{u}",
                    "item_id": (u + k) % 30,
                    "ts": T0 + k,
                },
                f"u{u}".encode(),
            )
            for u in range(10)
            for k in range(5)
        ]
        produce(kafka_broker.bootstrap, clicks)
        wait_committed(kafka_broker.bootstrap, f"g-{prefix}", [f"{prefix}clicks"])
        signals = [
            (
                f"{prefix}feedback",
                {"user_id": f"u{u}", "item_id": (u + k) % 30, "ts": T0 + 100 + k, "signal": s},
                f"u{u}".encode(),
            )
            for u in range(10)
            for k, s in ((5, "positive"), (6, "positive"), (7, "negative"))
        ]
        produce(kafka_broker.bootstrap, signals)
        wait_committed(kafka_broker.bootstrap, f"g-{prefix}", [f"{prefix}feedback"])
        stored = read_examples(settings)
        assert len(stored) == 30
        assert all(
            isinstance(e, Example) and len(e.history) == 5 for e in stored
        )  # every click came before
        log = tiny_root / LOG_FILE
        deadline = time.monotonic() + 300
        while not log.exists():
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        worker.stop()
    (record,) = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert record["source"] == "feedback" and record["parent"] == serving
    assert record["decision"] in ("promoted", "discarded")
    assert record["data"]["hold_out"] == 2 and record["train"]["steps"] == 2
    assert "recall@10" in record["hold_out"]["candidate"]
    current = ModelRegistry(tiny_root).current()
    assert current == (record["candidate"] if record["decision"] == "promoted" else serving)
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


@pytest.mark.kafka
def test_a_job_without_enough_feedback_is_a_one_line_error(
    kafka_broker,
    tiny_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"fb{uuid.uuid4().hex[:6]}."
    monkeypatch.setenv("INTEREST_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    monkeypatch.setenv("INTEREST_TOPIC_PREFIX", prefix)
    ensure_topics(Settings())
    assert main(["finetune", "--feedback", "--model", str(tiny_root)]) == 2
    assert "not enough feedback to train on: 0 examples" in capsys.readouterr().err


def chain_examples(n: int, items: int, seed: int = 0) -> list[Example | ForgetMarker]:
    """Users walk item k -> k+1 (mod ``items``): the next item is plain from ids alone."""
    rng = np.random.default_rng(seed)
    out: list[Example | ForgetMarker] = []
    for k in range(n):
        start = int(rng.integers(items))
        history = [
            [f"i{(start + j) % items}", f"text i{(start + j) % items}", T0 + k + j / 10, 1.0]
            for j in range(3)
        ]
        out.append(example(f"u{k}", f"i{(start + 3) % items}", T0 + k + 0.5, history=history))
    return out


def serve_head(
    root: Path,
    items: list[str],
    parts: np.ndarray,
    half_life_s: float | None,
    meta: dict,
    extra: tuple[float, ...] = (),
) -> tuple[Head, str]:
    """A head of 8 dimensions over the current encoder (``parts`` as both per-item parts,
    biases 0; ``extra`` half-lives read out as the first sum alone) written as a version
    and made CURRENT: (the head, its version)."""
    from encoder.manifest import read_manifest
    from streams.training.versions import write_head_version

    encoder = ModelRegistry(root).current()
    assert encoder is not None
    d = read_manifest(root / encoder).dimension
    readout = None
    if extra:
        readout = np.zeros((1 + len(extra), 8, 8))
        readout[0] = np.eye(8)
    head = Head(
        items,
        np.eye(8, d),
        np.eye(8, d),
        parts,
        parts,
        np.zeros(len(items)),
        half_life_s,
        extra_half_lives=extra,
        readout=readout,
    )
    version, _ = write_head_version(root, encoder, head, meta, True)
    return head, version


@pytest.mark.slow
def test_a_head_version_gets_a_head_round_that_learns_new_items_and_gates(
    tiny_root: Path,
) -> None:
    pytest.importorskip("torch")
    from streams.evaluation.run import encode_items
    from streams.head import load_head
    from streams.training.feedback import hold_out_head, run_head_round
    from streams.training.head import HeadFinetune

    registry = ModelRegistry(tiny_root)
    known = [f"i{j}" for j in range(20)] + ["never-named"]  # i20..i29 are new to the head
    parts = np.random.default_rng(1).normal(scale=0.1, size=(len(known), 8))
    served, parent = serve_head(tiny_root, known, parts, 3600.0, {"half_life_s": 3600.0})
    data, picked, hold_out = feedback_data(chain_examples(300, 30), None, size=1000, seed=0)

    picked_ids = [s for s, _ in picked]
    record = run_head_round(
        registry, Settings(), data, picked_ids, hold_out, False, HeadFinetune(epochs=30)
    )

    assert record["kind"] == "head" and record["parent"] == parent
    assert record["train"]["new_items"] == 10 and record["data"]["examples"] == len(picked)
    assert record["decision"] == "promoted", record["hold_out"]
    assert registry.current() == record["candidate"] != parent
    tuned = load_head(tiny_root / record["candidate"])
    assert tuned is not None and tuned.half_life_s == 3600.0
    assert tuned.item_ids[: len(known)] == known and len(tuned.item_ids) == len(known) + 10
    untouched = known.index("never-named")
    np.testing.assert_array_equal(tuned.h[untouched], served.h[untouched])
    assert np.abs(tuned.h[len(known) :]).sum() > 0  # the new items learned their own parts
    e, _ = encode_items(data.texts, tiny_root / parent, Settings(), progress=False)
    for name, head in (("current", served), ("candidate", tuned)):  # what the gate compared
        assert record["hold_out"][name] == hold_out_head(head, e, data, hold_out)
    assert record["hold_out"]["candidate"]["recall@10"] > record["hold_out"]["current"]["recall@10"]


def test_a_head_round_trains_the_readout_of_a_head_with_several_sums(tiny_root: Path) -> None:
    """A served head with sums of several half-lives: the warm start trains its readout
    with the rest, keeps its half-lives, and ranks the hold-out better than it did."""
    pytest.importorskip("torch")
    from streams.evaluation.run import encode_items
    from streams.training.feedback import head_examples, hold_out_head
    from streams.training.head import HeadFinetune, finetune_head

    items = [f"i{j}" for j in range(30)]
    parts = np.random.default_rng(1).normal(scale=0.1, size=(len(items), 8))
    served, parent = serve_head(tiny_root, items, parts, 3600.0, {}, extra=(0.05, math.inf))
    data, picked, hold_out = feedback_data(chain_examples(300, 30), None, size=1000, seed=0)
    assert data.item_ids is not None
    e, _ = encode_items(data.texts, tiny_root / parent, Settings(), progress=False)
    tuned, _ = finetune_head(
        served,
        e,
        data.item_ids,
        head_examples(data, [s for s, _ in picked]),
        HeadFinetune(epochs=30),
        progress=False,
    )
    assert tuned.extra_half_lives == (0.05, math.inf)
    assert tuned.readout is not None and served.readout is not None
    assert not np.allclose(tuned.readout, served.readout)
    before = hold_out_head(served, e, data, hold_out)
    after = hold_out_head(tuned, e, data, hold_out)
    assert after["mrr@10"] > before["mrr@10"] and after["recall@10"] >= before["recall@10"]


def test_a_discarded_head_round_leaves_the_served_version(
    tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from streams.training import feedback

    registry = ModelRegistry(tiny_root)
    items = [f"i{j}" for j in range(12)]
    _, parent = serve_head(tiny_root, items, np.zeros((len(items), 8)), None, {})
    monkeypatch.setattr(feedback, "hold_out_head", lambda head, *a: {"recall@10": 0.5})
    data, picked, hold_out = feedback_data(chain_examples(40, 12), None, size=100, seed=0)
    before = sorted(p.name for p in tiny_root.iterdir())

    record = feedback.run_head_round(
        registry, Settings(), data, [s for s, _ in picked], hold_out, False
    )

    assert record["decision"] == "discarded"  # not better on the hold-out: equal
    assert registry.current() == parent
    assert sorted(p.name for p in tiny_root.iterdir()) == before  # the candidate is gone
