"""``eval --through-pipeline`` on a small dataset: the real broker, worker and Qdrant rank
every user exactly as the offline ``serving`` row does.

The real model, not the tiny random one: a random BERT gives eight short titles nearly the
same vector, and float32 (Qdrant) against float64 (offline) then flips near-ties.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.evaluation.pipeline import history_events, through_pipeline
from streams.evaluation.protocol import Split
from streams.evaluation.report import COLUMNS
from streams.evaluation.run import encode_items, evaluate
from streams.settings import Settings
from tests.streams.evaluation.test_evaluation import small_split

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_history_events_leave_out_each_test_target() -> None:
    split = small_split()
    events = history_events(split)
    assert len(events) == split.counts["interactions"] - len(split.users)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    targets = {(u, split.items[split.target(i, "test")]) for i, u in enumerate(split.users)}
    # the target itself may recur earlier in a history; its last occurrence is never sent
    assert len({e.value["event_id"] for e in events}) == len(events)
    for e in events:
        assert e.topic == ("clicks" if e.value["rating"] >= 4 else "views")
    sent_last = {}
    for e in events:
        sent_last[e.value["user_id"]] = max(sent_last.get(e.value["user_id"], 0), e.ts)
    for i, user in enumerate(split.users):
        assert sent_last[user] <= split.times[i][-1]
    assert targets  # one per user


def test_for_a_head_that_decays_by_events_a_users_events_go_to_one_topic_in_order() -> None:
    """Kafka keeps order within a partition only: clicks and views on two topics reach the
    worker interleaved (MovieLens through the pipeline: 0.0213 off the offline row)."""
    split = small_split()
    events = history_events(split, one_topic=True)
    assert {e.topic for e in events} == {"clicks"}
    assert {e.value.get("type", "click") for e in events} == {"click", "view"}
    for e in events:
        assert e.value.get("type", "click") == ("click" if e.value["rating"] >= 4 else "view")
    for u, user in enumerate(split.users):
        mine = [e.value["item_id"] for e in events if e.value["user_id"] == user]
        n = split.history_length(u, "test")
        assert mine == [split.items[j] for j in split.sequences[u][:n]]


def test_the_pipeline_ranks_like_the_offline_serving_row(
    kafka_broker, default_model_dir: Path
) -> None:
    split: Split = small_split(seed=4)
    settings = Settings(
        kafka_bootstrap=kafka_broker.bootstrap,
        model_dir=default_model_dir,
        window_ms=100,
        item_wait_ms=200,
        encoder_provider="cpu",
    )
    vectors, version = encode_items(split.texts, default_model_dir, settings, progress=False)
    report = evaluate(split, vectors, version, settings, progress=False)
    offline = next(r for r in report["rows"] if r["name"] == "serving" and r["split"] == "test")
    measured = through_pipeline(split, settings, progress=False)
    for column in COLUMNS:
        assert measured[column] == pytest.approx(offline[column], abs=1e-9), column


@pytest.mark.parametrize(
    ("half_life_s", "half_life_events"), [(86_400.0, None), (None, 3.0)], ids=["time", "events"]
)
def test_a_learned_head_is_served_exactly_as_the_offline_row(
    half_life_s: float | None,
    half_life_events: float | None,
    kafka_broker,
    default_model_dir: Path,
    tmp_path: Path,
) -> None:
    """A version with a head: the worker folds x_j, Qdrant searches [y_j, b_j] with
    [normalize(s), 1] (dot product), and ranks every user as the offline head row does,
    whether the head decays by event time or by events (in the order the replay sends)."""
    import shutil

    import numpy as np

    from streams.head import Head, load_head
    from streams.training.versions import write_head_version

    split: Split = small_split(seed=4)
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(default_model_dir, root / default_model_dir.name)
    rng = np.random.default_rng(7)
    n, d = len(split.items), 16
    known = split.items[:-2]  # the last two items: new to the head, text part only
    head = Head(
        list(known),
        rng.normal(size=(d, 384)) / 20,
        rng.normal(size=(d, 384)) / 20,
        rng.normal(size=(n - 2, d)),
        rng.normal(size=(n - 2, d)),
        rng.normal(size=n - 2),
        half_life_s,
        half_life_events,
    )
    version, _ = write_head_version(root, default_model_dir.name, head, {}, set_current=True)
    settings = Settings(
        kafka_bootstrap=kafka_broker.bootstrap,
        model_dir=root,
        window_ms=100,
        item_wait_ms=200,
        encoder_provider="cpu",
    )
    vectors, served = encode_items(split.texts, root, settings, progress=False)
    assert served == version
    loaded = load_head(root / version)
    assert loaded is not None
    report = evaluate(split, vectors, version, settings, progress=False, head=loaded)
    offline = next(r for r in report["rows"] if r["name"] == "serving" and r["split"] == "test")
    assert offline["detail"] == "learned head, d=16"
    measured = through_pipeline(split, settings, progress=False)
    for column in COLUMNS:
        assert measured[column] == pytest.approx(offline[column], abs=1e-9), column
