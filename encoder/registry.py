"""Model versions on disk: a root folder of version directories and a ``CURRENT`` pointer.

data/models/
    CURRENT                 # one line: the serving version
    3fa9c2d1e0b4/           # model.onnx, tokenizer.json, manifest.json
    9b1e07c44a2d/

registry = ModelRegistry(Path("data/models"))
registry.current()                  # "3fa9c2d1e0b4"
registry.resolve(Path("data/models"))  # -> data/models/3fa9c2d1e0b4
"""

from __future__ import annotations

import os
from pathlib import Path

from encoder.errors import ModelLoadError
from encoder.manifest import MANIFEST_FILE

CURRENT_FILE = "CURRENT"


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST_FILE).is_file())

    def path(self, version: str) -> Path:
        path = self.root / version
        if not (path / MANIFEST_FILE).is_file():
            raise ModelLoadError(f"model version {version!r} not found under {self.root}")
        return path

    def current(self) -> str | None:
        try:
            version = (self.root / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return version or None

    def set_current(self, version: str) -> None:
        self.path(version)  # must exist
        tmp = self.root / f".{CURRENT_FILE}.tmp"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / CURRENT_FILE)  # atomic: readers see old or new


def resolve_model_dir(path: Path) -> Path:
    """A version directory as given, or the current version of a models root."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file():
        return path
    registry = ModelRegistry(path)
    version = registry.current()
    if version is None:
        hint = "run `interest-stream export` first"
        if not path.exists():
            raise ModelLoadError(f"{path}: no such model directory; {hint}")
        raise ModelLoadError(
            f"{path}: neither a model version nor a models root with CURRENT; {hint}"
        )
    return registry.path(version)
