"""Errors raised while producing a model version, rooted in :class:`ExportError`."""

from __future__ import annotations

from typing import Any


class ExportError(Exception):
    """Base class of every error raised by export/."""


class MissingExtraError(ExportError, ImportError):
    """torch / transformers are not installed: they live in the ``train`` extra."""

    def __init__(self, missing: str) -> None:
        super().__init__(
            f"{missing} is not installed; exporting and fine-tuning need the 'train' extra: "
            "pip install 'interest-stream[train]'"
        )


class SourceModelError(ExportError):
    """The source model directory is not a usable Hugging Face / sentence-transformers model."""


class ParityError(ExportError):
    """The exported graph does not reproduce the reference within tolerance."""

    def __init__(self, message: str, worst: dict[str, Any]) -> None:
        super().__init__(message)
        self.worst = worst
