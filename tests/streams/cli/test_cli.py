from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main


def test_runtime_imports_without_torch() -> None:
    code = (
        "import sys, encoder, encoder.bench, streams.cli, streams.worker.app, streams.worker.main,"
        " streams.training.rounds, streams.training.feedback, streams.rollout.dual,"
        " streams.evaluation.run, streams.evaluation.pipeline, streams.evaluation.report;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_building_the_parser_loads_no_training_module() -> None:
    # Every subcommand builds every parser; `train` reads its defaults from an import-free
    # module, so `interest-stream kafka status` does not load the training job.
    code = (
        "import sys; from streams.cli import build_parser; build_parser();"
        "bad = [m for m in ('streams.training.head', 'streams.evaluation', 'tqdm')"
        " if m in sys.modules];"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_export_prints_json(tiny_source_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", "--model", str(tiny_source_dir), "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["precision"] == "fp32" and out["current"] is True
    assert Path(out["path"], "manifest.json").is_file()
    assert out["parity"]["fp32_max_abs_diff"] <= 1e-4


def test_bench_encoder_prints_the_promised_keys(tiny_model_dir: Path, capsys) -> None:
    args = [
        "bench",
        "encoder",
        "--model",
        str(tiny_model_dir),
        "--texts",
        "64",
        "--rounds",
        "1",
        "--callers",
        "4",
        "--batch-sizes",
        "16,32",
        "--baseline",
        str(tiny_model_dir),
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "raw_texts_per_s",
        "encoder_texts_per_s",
        "ratio",
        "p50_ms",
        "p99_ms",
        "precision",
        "provider",
        "batch_size",
        "texts",
    ):
        assert key in out
    assert out["texts"] == 64 and out["encoder_texts_per_s"] > 0
    assert out["baseline_version"] == out["version"] and out["speedup_vs_baseline"] > 0


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["bench", "encoder", "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("interest-stream: error:") and "export" in err


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "export" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["export", "--precision", "int4"]])
def test_bad_arguments_exit_2(argv) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--rate", "0"), ("--rate", "fast"), ("--rate", "nan"), ("--wait-items", "-1")],
)
def test_bad_replay_options_are_one_line_errors(flag, value, tmp_path: Path, capsys) -> None:
    assert main(["replay", "--path", str(tmp_path), flag, value]) == 2  # before any broker
    err = capsys.readouterr().err
    assert err.startswith("interest-stream: error:") and flag in err


def test_switch_drops_the_old_version_after_its_grace_period_and_drop_refuses_the_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.store import open_store

    path = tmp_path / "qdrant"
    store = open_store(path=path)
    for v in ("v1", "v2"):
        store.ensure_version(v, 4)
    store.close()
    monkeypatch.setenv("INTEREST_QDRANT_PATH", str(path))
    assert main(["switch", "v2", "--drop-old-after", "-1"]) == 2
    assert main(["drop", "v1"]) == 2  # served
    assert "served by the aliases" in capsys.readouterr().err
    assert main(["switch", "v2", "--drop-old-after", "0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"before": "v1", "serving": "v2", "dropped": ["items__v1", "users__v1"]}
    assert main(["drop", "v1"]) == 0
    assert "nothing" in capsys.readouterr().out


def test_switch_points_both_aliases_and_refuses_an_unbuilt_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.store import open_store

    path = tmp_path / "qdrant"
    store = open_store(path=path)
    store.ensure_version("v1", 4)
    store.ensure_version("v2", 4)  # built, not served
    store.close()
    monkeypatch.setenv("INTEREST_QDRANT_PATH", str(path))
    assert main(["switch", "v3"]) == 2
    assert "no items__v3, users__v3" in capsys.readouterr().err
    assert main(["switch", "v2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "before": "v1",
        "serving": "v2",
        "dropped": [],
    }
    assert main(["switch", "v1"]) == 0  # roll-back
    assert "v2 -> v1" in capsys.readouterr().err
    store = open_store(path=path)
    try:
        assert store.aliases() == {"items": "items__v1", "users": "users__v1"}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "--path", ".", "--limit", "-3"], "--limit: expected a whole number >= 1"),
        (["recommend", "alice", "-k", "-1"], "-k: expected a whole number >= 1, not -1"),
        (["recommend", "alice", "-k", "0"], "-k: expected a whole number >= 1, not 0"),
        (["export", "--min-cosine", "2"], "--min-cosine: expected a cosine in (0, 1]"),
        (["bench", "encoder", "--batch-sizes", "abc"], "--batch-sizes: expected a whole number"),
        (["bench", "encoder", "--batch-sizes", ","], "expected numbers separated by commas"),
        (["kafka", "status", "--port", "70000"], "--port: expected a TCP port 1..65535"),
    ],
)
def test_bad_options_are_usage_errors_before_any_work(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eval_of_a_folder_where_a_csv_belongs_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", "--events", ".", "--items", "."]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a CSV file" in err and "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("interest-stream ")


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import build_parser

    def commands(parser, path):
        for action in parser._actions:  # argparse keeps subparsers here
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield [*path, name]
                    yield from commands(sub, [*path, name])

    found = list(commands(build_parser(), []))
    assert ["train"] in found and ["bench", "soak"] in found
    for command in found:
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0, command
        assert "usage: interest-stream" in capsys.readouterr().out


def test_kafka_status_of_a_stopped_broker_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.streams.kafka_helpers import free_port

    assert main(["kafka", "status", "--home", str(tmp_path), "--port", str(free_port())]) == 1
    out = capsys.readouterr().out
    assert out.startswith("kafka stopped on 127.0.0.1:") and "pid" not in out


def test_recommend_shows_producers_control_characters_escaped() -> None:
    from streams.cli.recommend import printable

    assert printable("Heat \x1b[2J (1995)\n") == "Heat \\x1b[2J (1995)\\n"
    assert printable("Amélie, 東京") == "Amélie, 東京"  # letters of any script are kept


def test_drop_says_what_it_would_delete_and_asks_for_yes_off_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from streams.store import open_store

    path = tmp_path / "qdrant"
    store = open_store(path=path)
    store.ensure_version("v1", 4)
    store.ensure_version("v2", 4)
    store.upsert_items("v2", [("a", np.ones(4), {})])
    store.close()
    monkeypatch.setenv("INTEREST_QDRANT_PATH", str(path))
    assert main(["drop", "v2", "--dry-run"]) == 0
    assert "would drop items__v2 (1 points), users__v2 (0 points)" in capsys.readouterr().out
    assert main(["drop", "v2"]) == 2  # stdin is no terminal here: --yes is needed
    assert "add --yes to confirm" in capsys.readouterr().err
    assert main(["drop", "v2", "--yes"]) == 0
    assert "dropped items__v2, users__v2" in capsys.readouterr().out


def test_every_option_and_argument_has_help_text() -> None:
    from streams.cli import build_parser

    def bare(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from bare(sub, [*path, name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                yield " ".join([*path, *(action.option_strings or [action.dest])])

    assert list(bare(build_parser(), [])) == []
