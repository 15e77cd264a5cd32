"""Fine-tuning rounds: examples, the lock, and the gate (a real tiny model, trained and
exported; only the hold-out scores are forced where a test needs a verdict)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from encoder.registry import ModelRegistry
from streams.errors import StreamError
from streams.settings import Settings
from streams.training import rounds as training
from streams.training.rounds import (
    LOG_FILE,
    JobRunning,
    job_lock,
    round_examples,
    run_rounds,
    training_data,
    weights_dir,
)
from tests.streams.evaluation.test_evaluation import small_split


def test_examples_stop_before_the_validation_target() -> None:
    split = small_split()
    data, examples = training_data(split, Settings())
    for u in range(len(split.users)):
        n = split.history_length(u, "validation")
        assert len(data.sequences[u]) == n  # neither validation nor test target
        np.testing.assert_array_equal(data.sequences[u], split.sequences[u][:n])
    assert len(examples) == sum(len(s) - 1 for s in data.sequences)
    assert all(p >= 1 for _, p in examples)
    times = [data.times[u][p] for u, p in examples]
    assert times == sorted(times)
    # the stream's weights for rated events: (rating - 3) / 2
    assert split.ratings is not None
    np.testing.assert_allclose(
        data.weights[0], 2 ** ((split.ratings[0][: len(data.weights[0])] - 3) / 2)
    )


def test_rounds_take_their_own_slice_plus_a_replay_of_older_ones() -> None:
    examples = [(0, p) for p in range(1, 401)]  # already in time order
    first = round_examples(examples, 0, 4, 40, seed=0)
    assert len(first) == 40 and all(p <= 100 for _, p in first)
    third = round_examples(examples, 2, 4, 40, seed=0)
    old = [p for _, p in third if p <= 200]
    new = [p for _, p in third if 200 < p <= 300]
    assert len(old) == 10 and len(new) == 30 and len(set(third)) == 40


def test_one_job_at_a_time(tmp_path: Path) -> None:
    held = job_lock(tmp_path)
    held.__enter__()
    with pytest.raises(JobRunning, match="already running"), job_lock(tmp_path):
        pass
    held.__exit__(None, None, None)
    with job_lock(tmp_path):  # released
        pass


def test_without_a_current_version_it_says_what_to_run(tmp_path: Path) -> None:
    settings = Settings(model_dir=tmp_path / "models")
    with pytest.raises(StreamError, match="interest-stream export"):
        run_rounds(small_split(), settings, 1, _config())


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--steps", "0", "--steps must be at least 1"),
        ("--rounds", "-1", "--rounds must be at least 1"),
        ("--batch-size", "0", "--batch-size must be at least 1"),
        ("--learning-rate", "nan", "--learning-rate must be a positive number"),
    ],
)
def test_bad_finetune_options_are_one_line_errors(
    option: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import main

    assert main(["finetune", "--dataset", "movielens", "--path", ".", option, value]) == 2
    assert message in capsys.readouterr().err


def _config():  # type: ignore[no-untyped-def]
    from export.finetune import TrainConfig

    return TrainConfig(steps=2, batch_size=4)


def forced(monkeypatch: pytest.MonkeyPatch, candidate_recall: float) -> None:
    """Hold-out scores: the serving version 0.5, any other version ``candidate_recall``."""
    current: dict[str, str] = {}

    def hold_out(split, model_dir: Path, settings):  # type: ignore[no-untyped-def]
        current.setdefault("v", ModelRegistry(model_dir.parent).current() or "")
        recall = 0.5 if model_dir.name == current["v"] else candidate_recall
        row = {"recall@10": recall}
        return {"validation": row, "test": row}

    monkeypatch.setattr(training, "_hold_out", hold_out)


@pytest.mark.slow
def test_a_worse_candidate_is_recorded_and_discarded(
    tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(tiny_root)
    serving = registry.current()
    forced(monkeypatch, 0.4)
    [record] = run_rounds(small_split(), Settings(model_dir=tiny_root), 1, _config(), False)
    assert record["decision"] == "discarded" and record["parent"] == serving
    assert registry.current() == serving
    assert registry.versions() == [serving]  # the candidate is gone
    logged = [orjson.loads(line) for line in (tiny_root / LOG_FILE).read_bytes().splitlines()]
    assert logged == [record]
    assert record["train"]["steps"] == 2 and record["data"]["examples"] == 8


@pytest.mark.slow
def test_a_better_candidate_is_promoted_with_its_weights(
    tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(tiny_root)
    serving = registry.current()
    assert serving is not None
    forced(monkeypatch, 0.6)
    [record] = run_rounds(small_split(), Settings(model_dir=tiny_root), 1, _config(), False)
    assert record["decision"] == "promoted"
    assert registry.current() == record["candidate"] != serving
    weights = weights_dir(registry, record["candidate"])
    assert weights is not None and (weights / "config.json").is_file()
    manifest = orjson.loads((registry.path(record["candidate"]) / "manifest.json").read_bytes())
    assert manifest["parent"] == serving and manifest["source_model"].endswith(serving)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["training", "measuring the candidate"])
def test_a_crash_leaves_the_serving_version_alone(
    tiny_root: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    import export.finetune

    registry = ModelRegistry(tiny_root)
    serving = registry.current()

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("out of memory")

    if where == "training":
        monkeypatch.setattr(export.finetune, "finetune", boom)
    else:  # after the candidate was exported
        monkeypatch.setattr(training, "_hold_out", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_rounds(small_split(), Settings(model_dir=tiny_root), 1, _config(), False)
    assert registry.current() == serving and registry.versions() == [serving]
    assert [p.name for p in tiny_root.iterdir() if p.name.startswith(".finetune-")] == []
    with job_lock(tiny_root):  # the lock was released
        pass
