"""A model version that carries a learned interest head: the encoder's files plus ``head.npz``.

    version = write_head_version(root, parent="3fa9c2d1e0b4", head=head, meta={...})

The new version copies the parent's ``model.onnx`` and ``tokenizer.json`` and adds the
head; its version id is the content address of all three files, so the same head on the
same encoder is the same version, and a different head is another one (it writes other
vectors, into other collections). Written in a temporary folder beside the versions and
renamed into place: a crash leaves no half version.
"""

from __future__ import annotations

import dataclasses
import datetime
import shutil
import tempfile
from pathlib import Path
from typing import Any

from encoder.manifest import (
    CONTENT_FILES,
    HEAD_FILE,
    content_version,
    read_manifest,
    sha256_file,
    write_manifest,
)
from encoder.registry import ModelRegistry
from streams.head import Head


def write_head_version(
    root: Path, parent: str, head: Head, meta: dict[str, Any], set_current: bool = False
) -> tuple[str, bool]:
    """(the new version, whether it was written now: False if it existed already)."""
    registry = ModelRegistry(root)
    parent_dir = registry.path(parent)
    manifest = read_manifest(parent_dir)
    with tempfile.TemporaryDirectory(prefix=".head-", dir=root) as tmp:
        staging = Path(tmp) / "version"
        staging.mkdir()
        for name in CONTENT_FILES:
            shutil.copyfile(parent_dir / name, staging / name)
        head.save(staging / HEAD_FILE)
        files = {name: sha256_file(staging / name) for name in (*CONTENT_FILES, HEAD_FILE)}
        version = content_version(files)
        target = root / version
        created = not target.exists()
        if created:
            write_manifest(
                staging,
                dataclasses.replace(
                    manifest,
                    version=version,
                    parent=parent,
                    files=files,
                    head={"dimension": head.dim, "items": len(head.item_ids)} | meta,
                    created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                ),
            )
            staging.rename(target)
    if set_current:
        registry.set_current(version)
    return version, created
