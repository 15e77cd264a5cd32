"""The manifest of a model version directory, and its integrity check.

A model version is a directory holding ``model.onnx``, ``tokenizer.json`` and
``manifest.json``. Versions are *content-addressed*: the version string is the first 12 hex
digits of the sha256 over the model and tokenizer files, so the same export yields the same
version and two different models can never share one.

    manifest = read_manifest(path)      # raises ManifestError
    verify_files(path, manifest)        # raises ModelIntegrityError
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from encoder.errors import ManifestError, ModelIntegrityError

FORMAT = 1
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
HEAD_FILE = "head.npz"  # the learned interest head, when the version has one
CONTENT_FILES = (MODEL_FILE, TOKENIZER_FILE)
OPTIONAL_FILES = (HEAD_FILE,)
VERSION_NAME = re.compile(r"[0-9a-f]{12}")  # what content_version gives
POOLINGS = ("mean", "cls", "max")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclasses.dataclass(frozen=True)
class Manifest:
    version: str
    parent: str | None
    source_model: str
    dimension: int
    max_length: int
    pooling: str
    precision: str
    files: Mapping[str, str]  # file name -> sha256 hex
    parity: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    created_at: str = ""
    format: int = FORMAT
    # The learned interest head (streams/training/head.py): its dimension, items, half-life
    # and training record; empty when the version serves the encoder's vectors as they are.
    head: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> bytes:
        data = dataclasses.asdict(self)
        data["files"] = dict(self.files)
        data["parity"] = dict(self.parity)
        data["head"] = dict(self.head)
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, raw: bytes, where: str = "manifest.json") -> Manifest:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ManifestError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        if data.get("format") != FORMAT:
            raise ManifestError(f"{where}: format {data.get('format')!r}, expected {FORMAT}")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(fields - {"parity", "created_at", "format", "head"} - set(data))
        if missing:
            raise ManifestError(f"{where}: missing fields {missing}")
        manifest = cls(**{k: v for k, v in data.items() if k in fields})
        _check(manifest, where)
        return manifest


def _check(m: Manifest, where: str) -> None:
    problems = []
    if not isinstance(m.version, str) or not m.version:
        problems.append("version must be a non-empty string")
    if not isinstance(m.dimension, int) or m.dimension <= 0:
        problems.append("dimension must be a positive integer")
    if not isinstance(m.max_length, int) or m.max_length < 2:
        problems.append("max_length must be an integer >= 2")
    if m.pooling not in POOLINGS:
        problems.append(f"pooling must be one of {POOLINGS}")
    if m.precision not in PRECISIONS:
        problems.append(f"precision must be one of {PRECISIONS}")
    if not isinstance(m.files, Mapping) or set(CONTENT_FILES) - set(m.files):
        problems.append(f"files must list sha256 for {CONTENT_FILES}")
    elif bool(m.head) != (HEAD_FILE in m.files):
        problems.append(f"a head needs {HEAD_FILE} in files, and {HEAD_FILE} a head")
    if problems:
        raise ManifestError(f"{where}: " + "; ".join(problems))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_version(hashes: Mapping[str, str]) -> str:
    """The content address of a model: 12 hex digits over its files' hashes (a head's too,
    when it has one; a version without one keeps the address it always had)."""
    names = [*CONTENT_FILES, *(n for n in OPTIONAL_FILES if n in hashes)]
    joined = "\n".join(f"{name}:{hashes[name]}" for name in names)
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(
            f"{path} not found: {directory} is not a model version directory "
            "(make one with `interest-stream export`)"
        ) from None
    except OSError as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    return Manifest.from_json(raw, str(path))


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (Path(directory) / MANIFEST_FILE).write_bytes(manifest.to_json() + b"\n")


def verify_files(directory: Path, manifest: Manifest) -> None:
    """Check each file against the manifest's sha256; ModelIntegrityError on the first miss."""
    for name, expected in sorted(manifest.files.items()):
        path = Path(directory) / name
        if not path.is_file():
            raise ModelIntegrityError(f"{path}: missing (the manifest lists it)")
        actual = sha256_file(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"{path}: sha256 {actual[:16]}… does not match the manifest's {expected[:16]}…; "
                "the file is corrupt or was replaced; export the model again"
            )
    # The hashes match the files, but the manifest itself may have been edited with them:
    # the version must still be the content address of the files, and the folder's name.
    derived = content_version(manifest.files)
    if derived != manifest.version:
        raise ModelIntegrityError(
            f"{directory}: the manifest says version {manifest.version}, but its files are "
            f"version {derived}: the model was changed after export; export it again"
        )
    name = Path(directory).name
    if VERSION_NAME.fullmatch(name) and name != manifest.version:
        raise ModelIntegrityError(
            f"{directory}: a folder named as version {name} holds version {manifest.version}"
        )
