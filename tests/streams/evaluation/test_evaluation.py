"""The evaluation protocol and metrics on hand-made data with known answers."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import orjson
import pytest

from streams.cli import main
from streams.evaluation.data import DataError, Dataset, Interaction, read_pair
from streams.evaluation.metrics import MISS, metrics, rank_targets
from streams.evaluation.protocol import five_core, leave_one_out
from streams.evaluation.report import (
    AGREE_WITHIN,
    BEGIN,
    COLUMNS,
    END,
    compare_pipeline,
    update_readme,
)
from streams.evaluation.report import main as publish
from streams.evaluation.rows import Interest, interest_vectors, popularity_scores
from streams.evaluation.run import evaluate
from streams.interest import InterestState, event_weight
from streams.settings import Settings


def inter(user: str, item: str, ts: float, rating: float | None = None) -> Interaction:
    return Interaction(user, item, ts, rating)


# -- 5-core ------------------------------------------------------------------------------


def test_five_core_repeats_until_nothing_more_drops() -> None:
    core = [inter(u, str(i), i) for u in "ABCDE" for i in range(1, 6)]  # 5 x 5: stays
    # F has 5, but item 6 only 4 (F + three others): item 6 goes, then F (now 4) goes.
    extra = [inter("F", str(i), 10 + i) for i in (1, 2, 3, 4, 6)]
    extra += [inter(u, "6", 20) for u in "ABC"]
    kept = five_core(core + extra)
    assert sorted(kept, key=repr) == sorted(core, key=repr)


def test_five_core_keeps_exactly_five() -> None:
    rows = [inter(u, str(i), i) for u in "ABCDE" for i in range(5)]
    assert len(five_core(rows)) == 25
    assert five_core(rows[:-1]) == []  # one short: everything unravels


# -- leave-one-out -----------------------------------------------------------------------


def test_timestamp_ties_break_by_item_id_as_integers() -> None:
    rows = [inter("1", "9", 100), inter("1", "10", 100), inter("1", "3", 50)]
    split = leave_one_out(rows, {"9": "a", "10": "b", "3": "c"})
    order = [split.items[i] for i in split.sequences[0]]
    assert order == ["3", "9", "10"]  # as strings "10" < "9" would flip the last two
    assert split.items[split.target(0, "test")] == "10"
    assert split.items[split.target(0, "validation")] == "9"
    assert split.history_length(0, "validation") == 1 and split.history_length(0, "test") == 2


def test_non_integer_item_ids_compare_as_strings() -> None:
    rows = [inter("u", "b", 100), inter("u", "a", 100), inter("u", "10", 100)]
    split = leave_one_out(rows, dict.fromkeys(("a", "b", "10"), "t"))
    assert [split.items[i] for i in split.sequences[0]] == ["10", "a", "b"]


def test_users_need_three_interactions() -> None:
    with pytest.raises(DataError, match="fewer than 3"):
        leave_one_out([inter("u", "a", 1), inter("u", "b", 2)], {"a": "t", "b": "t"})


# -- ranks and metrics -------------------------------------------------------------------


def test_history_is_excluded_and_ties_go_to_the_lower_item_index() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5]])
    ranks, top = rank_targets(scores, np.array([2, 2]), [np.array([0]), np.array([3])])
    # user 0: item 0 is history, item 1 is ahead -> rank 1; user 1: items 0, 1 tie ahead
    assert ranks.tolist() == [1, 2]
    assert top[0][:3].tolist() == [1, 2, 3] and top[1][:3].tolist() == [0, 1, 2]
    assert scores[0, 0] == 0.9  # the caller's scores are left alone


def test_a_target_in_the_history_is_never_a_hit() -> None:
    ranks, _ = rank_targets(np.array([[0.9, 0.1, 0.2]]), np.array([0]), [np.array([0])])
    assert ranks.tolist() == [MISS]  # not 2: two items are left, and rank 2 is a hit at 5
    assert metrics(ranks, [[1, 2]], 3)["recall@5"] == 0.0


def test_metrics_by_hand() -> None:
    ranks = np.array([0, 3, 12, 25])
    top = [[0, 1], [1, 2], [2, 3], [3, 4]]  # items shown in the top 10
    m = metrics(ranks, top, n_items=10)
    assert m["recall@5"] == m["recall@10"] == 0.5 and m["recall@20"] == 0.75
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(5)) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(14)) / 4)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 4) / 4)
    assert m["coverage@10"] == 0.5  # items 0..4 of 10


# -- rows --------------------------------------------------------------------------------


def small_split(seed: int = 0):
    rng = random.Random(seed)
    rows = [
        inter(str(u), str(rng.randrange(8)), rng.randrange(10**6) + 1e9, rng.choice([1, 3, 4, 5]))
        for u in range(12)
        for _ in range(9)
    ]
    texts = {str(i): f"item {i}" for i in range(8)}
    return leave_one_out(five_core(rows), texts)


def test_interest_vectors_equal_the_streams_fold() -> None:
    split = small_split()
    settings = Settings()
    vectors = np.random.default_rng(1).normal(size=(len(split.items), 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    spec = Interest(settings.half_life_short_s, "rating")
    offline = interest_vectors(split, "test", vectors, spec, settings)
    for u in range(len(split.users)):
        state = InterestState.empty(6, settings.half_lives)
        assert split.ratings is not None
        for j in range(split.history_length(u, "test")):
            w = event_weight("click", float(split.ratings[u][j]), {})
            state.fold(f"{u}-{j}", split.times[u][j], w, vectors[split.sequences[u][j]])
        np.testing.assert_allclose(offline[u], state.directions()["short"], atol=1e-9)


def test_popularity_counts_only_the_splits_history() -> None:
    rows = [inter(u, i, t) for u in "AB" for t, i in enumerate("xyz")]
    split = leave_one_out(rows, dict.fromkeys("xyz", "t"))
    assert popularity_scores(split, "validation").tolist() == [2, 0, 0]
    assert popularity_scores(split, "test").tolist() == [2, 2, 0]


def test_evaluate_tunes_on_validation_and_reports_every_row() -> None:
    split = small_split()
    vectors = np.random.default_rng(2).normal(size=(len(split.items), 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    report = evaluate(split, vectors, "v1", Settings(), progress=False)
    names = [(r["name"], r["split"]) for r in report["rows"]]
    assert names == [
        (name, which)
        for name in (
            "popularity",
            "last item",
            "interest short",
            "interest long",
            "interest no decay",
            "interest tuned",
            "serving",
        )
        for which in ("validation", "test")
    ]
    tuned = report["tuned"]
    val = {
        (r["half_life_s"], r["weights"]): r["recall@10"]
        for r in report["rows"]
        if r["split"] == "validation" and r["name"].startswith("interest")
    }
    assert val[tuned["half_life_s"], tuned["weights"]] == max(val.values())
    assert report["counts"] == split.counts


def test_compare_pipeline_flags_a_disagreement() -> None:
    row = {"name": "serving", "split": "test", **dict.fromkeys(COLUMNS, 0.1)}
    report = {"rows": [row]}
    compare_pipeline(report, dict.fromkeys(COLUMNS, 0.1 + AGREE_WITHIN / 2))
    assert report["pipeline"]["agree"]
    report = {"rows": [row]}
    compare_pipeline(report, dict.fromkeys(COLUMNS, 0.1 + 2 * AGREE_WITHIN))
    assert not report["pipeline"]["agree"]


# -- the generic CSV pair ----------------------------------------------------------------


def write_pair(tmp_path: Path, events: str, items: str = "item_id,text\na,A\nb,B\n"):
    (tmp_path / "events.csv").write_bytes(events.encode() if isinstance(events, str) else events)
    (tmp_path / "items.csv").write_text(items)
    return tmp_path / "events.csv", tmp_path / "items.csv"


def test_the_generic_pair_reads_with_and_without_ratings(tmp_path: Path) -> None:
    data = read_pair(*write_pair(tmp_path, "user_id,item_id,ts,rating\nu,a,5,4.5\nu,b,6,1\n"))
    assert data == Dataset([inter("u", "a", 5, 4.5), inter("u", "b", 6, 1.0)], {"a": "A", "b": "B"})
    assert data.has_ratings
    data = read_pair(*write_pair(tmp_path, "user_id,item_id,ts\nu,a,5\n"))
    assert data.interactions == [inter("u", "a", 5)] and not data.has_ratings


@pytest.mark.parametrize(
    ("events", "items", "message"),
    [
        ("user,item,ts\nu,a,1\n", None, r"missing columns \['user_id', 'item_id'\]"),
        ("user_id,item_id,ts\nu,a,yesterday\n", None, r"events\.csv:2: ts 'yesterday' is not"),
        ("user_id,item_id,ts\nu,a,nan\n", None, "not finite"),
        ("user_id,item_id,ts\nu,zz,1\n", None, r"item 'zz' is not in items\.csv"),
        ("user_id,item_id,ts\nu,a\n", None, "expected 3 fields"),
        ("user_id,item_id,ts\n,a,1\n", None, "empty user_id"),
        ("user_id,item_id,ts\n", None, "no events"),
        (b"user_id,item_id,ts\nu\xff,a,1\n", None, "utf-8"),
        ("user_id,item_id,ts\nu,a,1\n", "item_id,text\na,\n", "has no text"),
        ("user_id,item_id,ts\nu,a,1\n", "item_id,text\na,x\na,y\n", "appears twice"),
        ("user_id,item_id,ts\nu,a,1\n", "id,title\na,x\n", "missing columns"),
    ],
)
def test_malformed_files_are_refused_with_the_place(
    tmp_path: Path, events: str | bytes, items: str | None, message: str
) -> None:
    paths = write_pair(tmp_path, events, *([items] if items else []))  # type: ignore[arg-type]
    with pytest.raises(DataError, match=message):
        read_pair(*paths)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"items\.csv not found"):
        read_pair(tmp_path / "events.csv", tmp_path / "items.csv")
    (tmp_path / "items.csv").write_text("item_id,text\na,A\n")
    with pytest.raises(DataError, match=r"events\.csv not found"):
        read_pair(tmp_path / "events.csv", tmp_path / "items.csv")


def test_eval_without_data_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval"]) == 2
    assert "no data" in capsys.readouterr().err
    assert main(["eval", "--dataset", "movielens"]) == 2
    assert "--path" in capsys.readouterr().err


# -- the published report ----------------------------------------------------------------


def report_for_readme() -> dict:
    split = small_split()
    vectors = np.random.default_rng(3).normal(size=(len(split.items), 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return evaluate(split, vectors, "v1", Settings(), progress=False)


def test_the_readme_section_is_replaced_and_the_plot_written(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_bytes(orjson.dumps(report_for_readme()))
    readme = tmp_path / "README.md"
    begin, end = BEGIN.format("results"), END.format("results")
    readme.write_text(f"# x\n\n{begin}\nold\n{end}\n\ntail\n")
    plot = tmp_path / "docs" / "r.png"
    plot.parent.mkdir()
    args = [
        "--results",
        str(tmp_path / "report.json"),
        "--readme",
        str(readme),
        "--plot",
        str(plot),
    ]
    assert publish(args) == 0
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{end}\n\ntail\n")
    assert "| *SASRec, published* | 0.0993 |" in text and "![Recall@10 per row](docs/r.png)" in text
    assert "Where we stand" in text
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_a_readme_without_the_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# nothing to replace\n")
    with pytest.raises(ValueError, match="results:begin"):
        update_readme(readme, "results", "x")


def test_the_curve_section_has_one_row_per_round(tmp_path: Path) -> None:
    metrics_ = {"recall@10": 0.03}
    record = {
        "round": "1/2",
        "decision": "promoted",
        "data": {"examples": 3200, "from": "2000-01-01", "to": "2001-01-01"},
        "train": {"loss_first": 4.5, "loss_last": 4.25},
        "hold_out": {"current": metrics_, "candidate": {"recall@10": 0.04}},
        "test": {"current": metrics_, "candidate": {"recall@10": 0.05}},
        "seconds": 600,
    }
    (tmp_path / "curve.json").write_bytes(orjson.dumps([record]))
    readme = tmp_path / "README.md"
    readme.write_text(f"{BEGIN.format('curve')}\n{END.format('curve')}\n")
    assert publish(["--readme", str(readme), "--curve", str(tmp_path / "curve.json")]) == 0
    row = "| 1/2 | 3,200 (2000-01-01 .. 2001-01-01) | 4.500 -> 4.250 | 0.0300 -> 0.0400 |"
    assert row in readme.read_text() and "| promoted | 10.0 |" in readme.read_text()
