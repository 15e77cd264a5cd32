"""Export: parity figures, the version directory, and every refusal path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from encoder.manifest import read_manifest, verify_files
from encoder.registry import ModelRegistry
from export import graph
from export.errors import MissingExtraError, ParityError, SourceModelError
from export.parity import FP32_ATOL, build_cases
from export.pipeline import export_model
from export.source import default_model_dir, inspect_source
from tests.conftest import _Null


def test_default_model_passes_fp32_parity(default_model_dir: Path) -> None:
    manifest = read_manifest(default_model_dir)
    verify_files(default_model_dir, manifest)
    assert manifest.dimension == 384
    assert manifest.max_length == 256
    assert manifest.pooling == "mean"
    assert manifest.precision == "fp32"
    assert manifest.source_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest.parity["fp32_max_abs_diff"] <= FP32_ATOL
    assert manifest.parity["fused_ops"].get("Attention") == 6
    assert manifest.version == default_model_dir.name
    # the first export of a root becomes its serving version
    assert ModelRegistry(default_model_dir.parent).current() == manifest.version


def test_parity_cases_cover_batches_lengths_and_scripts() -> None:
    source = inspect_source(None)
    cases = {c.name: c for c in build_cases(source.tokenizer_json, source.max_length)}
    sizes = {len(c.rows) for c in cases.values()}
    assert {1, 7, 64} <= sizes
    assert len(cases["length-1"].rows[0]) == 1
    assert len(cases[f"length-{source.max_length}"].rows[0]) == source.max_length
    assert len({len(r) for r in cases["batch-64"].rows}) > 10  # mixed lengths: padding
    texts = " ".join(t for c in cases.values() for t in (c.texts or []))
    for sample in ("é", "千", "🎬"):
        assert sample in texts


def test_a_plain_hugging_face_model_exports(tiny_model_dir: Path) -> None:
    manifest = read_manifest(tiny_model_dir)
    assert (manifest.dimension, manifest.max_length, manifest.pooling) == (32, 64, "mean")
    assert manifest.parity["fp32_max_abs_diff"] <= FP32_ATOL


def test_exports_are_content_addressed(tiny_source_dir: Path, tiny_model_dir: Path) -> None:
    again = export_model(tiny_source_dir, tiny_model_dir.parent, set_current=False, log=_Null())
    assert again.version == tiny_model_dir.name
    assert not again.created


def test_fp16_is_checked_by_cosine(tiny_source_dir: Path, tmp_path: Path) -> None:
    result = export_model(tiny_source_dir, tmp_path, precision="fp16", log=_Null())
    assert result.parity["fp16_min_cosine"] >= 0.99
    assert read_manifest(result.path).precision == "fp16"


def test_a_cosine_floor_that_fails_raises_and_leaves_nothing(
    tiny_source_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ParityError, match="int8 parity failed") as info:
        export_model(tiny_source_dir, tmp_path, precision="int8", min_cosine=1.01, log=_Null())
    assert info.value.worst["case"]
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_graph_fails_parity_and_leaves_no_directory(
    tiny_source_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = graph.build_module

    def cls_pooling(source):
        module = real(source)
        module.pooling = "cls"  # the graph pools differently from the model it claims to be
        return module

    monkeypatch.setattr(graph, "build_module", cls_pooling)
    with pytest.raises(ParityError, match="fp32 parity failed") as info:
        export_model(tiny_source_dir, tmp_path, log=_Null())
    assert info.value.worst["diff"] > FP32_ATOL
    assert "tokens" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_source_errors_are_named(tmp_path: Path) -> None:
    with pytest.raises(SourceModelError, match="no such model directory"):
        inspect_source(tmp_path / "missing")
    with pytest.raises(SourceModelError, match=r"config\.json"):
        inspect_source(tmp_path)


def test_unsupported_sentence_transformers_head_is_refused(tmp_path: Path) -> None:
    src = default_model_dir()
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_text((src / name).read_text())
    modules = json.loads((src / "modules.json").read_text())
    modules.append(
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(SourceModelError, match="Dense"):
        inspect_source(tmp_path)


def test_missing_extra_error_names_the_install_command() -> None:
    assert "pip install 'interest-stream[train]'" in str(MissingExtraError("torch"))


def test_a_model_directory_without_weights_is_refused_before_any_work(tmp_path: Path) -> None:
    import shutil

    src = default_model_dir()
    shutil.copytree(src, tmp_path / "m", ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    with pytest.raises(SourceModelError, match="no weights"):
        inspect_source(tmp_path / "m")


def test_the_work_folders_of_killed_exports_are_removed_and_running_ones_kept(
    tmp_path: Path,
) -> None:
    import os
    import subprocess

    from export.pipeline import _remove_abandoned

    gone = subprocess.Popen(["true"])
    gone.wait()
    for name in (f".export-{gone.pid}-abc", ".export-oldstyle", f".export-{os.getpid()}-xyz"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "fp32.onnx").write_bytes(b"x")
    _remove_abandoned(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f".export-{os.getpid()}-xyz"]
