from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from encoder.errors import ManifestError, ModelIntegrityError
from encoder.manifest import (
    Manifest,
    content_version,
    read_manifest,
    sha256_file,
    verify_files,
    write_manifest,
)


def make_version(tmp_path: Path) -> tuple[Path, Manifest]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "model.onnx").write_bytes(b"graph bytes")
    (tmp_path / "tokenizer.json").write_text("{}")
    files = {n: sha256_file(tmp_path / n) for n in ("model.onnx", "tokenizer.json")}
    manifest = Manifest(
        version=content_version(files),
        parent=None,
        source_model="test",
        dimension=8,
        max_length=16,
        pooling="mean",
        precision="fp32",
        files=files,
        parity={"fp32_max_abs_diff": 1e-7},
    )
    write_manifest(tmp_path, manifest)
    return tmp_path, manifest


def test_round_trip(tmp_path: Path) -> None:
    path, manifest = make_version(tmp_path)
    assert read_manifest(path) == manifest
    verify_files(path, manifest)


def test_content_version_follows_the_bytes(tmp_path: Path) -> None:
    _, manifest = make_version(tmp_path)
    files = dict(manifest.files)
    assert content_version(files) == manifest.version
    files["model.onnx"] = "0" * 64
    assert content_version(files) != manifest.version


def test_a_corrupted_model_file_is_refused(tmp_path: Path) -> None:
    path, manifest = make_version(tmp_path)
    (path / "model.onnx").write_bytes(b"graph bytEs")
    with pytest.raises(ModelIntegrityError, match="does not match"):
        verify_files(path, manifest)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path, manifest = make_version(tmp_path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        verify_files(path, manifest)


def test_missing_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="interest-stream export"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"format": 99}', "format 99"),
        (b'{"format": 1, "version": "x"}', "missing fields"),
    ],
)
def test_malformed_manifests_are_refused(tmp_path: Path, raw: bytes, match: str) -> None:
    (tmp_path / "manifest.json").write_bytes(raw)
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path)


def test_invalid_field_values_are_named(tmp_path: Path) -> None:
    path, manifest = make_version(tmp_path)
    write_manifest(path, dataclasses.replace(manifest, pooling="weird", dimension=0))
    with pytest.raises(ManifestError, match="pooling") as info:
        read_manifest(path)
    assert "dimension" in str(info.value)


def test_a_file_edited_with_its_hash_is_refused_under_the_old_version(tmp_path: Path) -> None:
    """A tokenizer changed together with its sha256 in the manifest keeps the old version
    name, so it would write into the real model's collections: refused at load."""
    path, manifest = make_version(tmp_path)
    (path / "tokenizer.json").write_text('{"edited": true}')
    files = dict(manifest.files) | {"tokenizer.json": sha256_file(path / "tokenizer.json")}
    edited = dataclasses.replace(manifest, files=files)
    write_manifest(path, edited)
    with pytest.raises(ModelIntegrityError, match="the model was changed after export"):
        verify_files(path, read_manifest(path))


def test_a_folder_named_as_another_version_is_refused(tmp_path: Path) -> None:
    path, manifest = make_version(tmp_path / "x")
    wrong = path.parent / ("0" * 12)
    path.rename(wrong)
    with pytest.raises(ModelIntegrityError, match="holds version"):
        verify_files(wrong, manifest)
    right = wrong.rename(wrong.parent / manifest.version)
    verify_files(right, manifest)
