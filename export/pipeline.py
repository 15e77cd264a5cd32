"""``interest-stream export``: a source model in, one checked model version directory out.

    result = export_model(None, Path("data/models"), precision="int8")
    result.version, result.path, result.parity

Steps (each announced on stderr): inspect the source, export the fp32 graph, fuse it,
convert the precision, check parity against a fresh PyTorch model, write the version. All
work happens in a hidden temporary folder under the output root, renamed into place only
when every check passed: a failure leaves no model directory behind.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from encoder.manifest import (
    MODEL_FILE,
    PRECISIONS,
    TOKENIZER_FILE,
    Manifest,
    content_version,
    sha256_file,
    write_manifest,
)
from encoder.registry import ModelRegistry
from export.errors import ExportError, MissingExtraError


@dataclasses.dataclass(frozen=True)
class ExportResult:
    version: str
    path: Path
    precision: str
    parity: dict[str, Any]
    seconds: float
    created: bool  # False when an identical version was already there
    current: bool  # whether CURRENT now names this version

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        d["seconds"] = round(self.seconds, 2)
        return d


def export_model(
    model_dir: Path | None,
    out_root: Path,
    *,
    precision: str = "fp32",
    parent: str | None = None,
    set_current: bool | None = None,
    min_cosine: float | None = None,
    source_name: str | None = None,
    log: TextIO = sys.stderr,
) -> ExportResult:
    """Export, check and write one version. ``set_current=None``: only if none is current.
    ``source_name`` is what the manifest names as the source (default: the model directory)."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    try:
        from export import graph, parity
    except ImportError as exc:  # torch, transformers or onnx missing
        raise MissingExtraError(exc.name or "torch") from exc
    from export.source import inspect_source

    started = time.perf_counter()
    steps = 6

    def step(n: int, text: str) -> None:
        print(f"[{n}/{steps}] {text}", file=log, flush=True)

    step(1, f"inspecting {model_dir or 'the default model (all-MiniLM-L6-v2)'}")
    source = inspect_source(model_dir)
    if source_name is not None:
        source = dataclasses.replace(source, name=source_name)
    print(
        f"      {source.model_type}, {source.dimension} dims, {source.pooling} pooling, "
        f"max {source.max_length} tokens",
        file=log,
    )
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(out_root)
    work = Path(tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=out_root))
    try:
        fp32 = work / "fp32.onnx"
        step(2, "exporting the fp32 graph (torch.onnx, pooling and normalisation inside)")
        graph.export_onnx(source, fp32)
        step(3, "fusing transformer blocks (ONNX Runtime optimizer)")
        fused = graph.optimize(source, fp32)
        candidate = fp32
        if precision != "fp32":
            step(4, f"converting to {precision}")
            candidate = work / f"{precision}.onnx"
            (graph.to_fp16 if precision == "fp16" else graph.to_int8)(fp32, candidate)
        else:
            step(4, "precision fp32: nothing to convert")
        step(5, "checking parity against a fresh PyTorch model")
        cases = parity.build_cases(source.tokenizer_json, source.max_length)
        fp32_out = parity.run_onnx(fp32, cases)
        report = parity.check_fp32(cases, fp32_out, parity.reference(source, cases))
        if precision != "fp32":
            got = parity.run_onnx(candidate, cases)
            floor = parity.MIN_COSINE if min_cosine is None else min_cosine
            report |= parity.check_cosine(precision, cases, got, fp32_out, floor)
        report["fused_ops"] = fused
        step(6, "writing the model version")
        result = _write_version(work, candidate, source, precision, parent, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    registry = ModelRegistry(out_root)
    make_current = set_current if set_current is not None else registry.current() is None
    if make_current:
        registry.set_current(result["version"])
    return ExportResult(
        version=result["version"],
        path=result["path"],
        precision=precision,
        parity=report,
        seconds=time.perf_counter() - started,
        created=result["created"],
        current=registry.current() == result["version"],
    )


def _remove_abandoned(out_root: Path) -> None:
    """Remove the work folders of exports whose process is gone (killed: no ``finally``
    ran), about 100 MB each; a folder of a running export is left alone."""
    for folder in out_root.glob(".export-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_version(
    work: Path,
    candidate: Path,
    source: Any,
    precision: str,
    parent: str | None,
    report: dict[str, Any],
) -> dict[str, Any]:
    stage = work / "version"
    stage.mkdir()
    os.replace(candidate, stage / MODEL_FILE)
    (stage / TOKENIZER_FILE).write_text(source.tokenizer_json, encoding="utf-8")
    files = {name: sha256_file(stage / name) for name in (MODEL_FILE, TOKENIZER_FILE)}
    version = content_version(files)
    manifest = Manifest(
        version=version,
        parent=parent,
        source_model=source.name,
        dimension=source.dimension,
        max_length=source.max_length,
        pooling=source.pooling,
        precision=precision,
        files=files,
        parity=report,
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    write_manifest(stage, manifest)
    final = work.parent / version
    if final.exists():  # content-addressed: the same bytes are already there
        return {"version": version, "path": final, "created": False}
    os.rename(stage, final)
    return {"version": version, "path": final, "created": True}
