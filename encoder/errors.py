"""Errors raised by the runtime encoder, all rooted in :class:`EncoderError`."""

from __future__ import annotations


class EncoderError(Exception):
    """Base class of every error the encoder raises."""


class ModelLoadError(EncoderError):
    """A model version directory cannot be used: missing, unreadable or inconsistent."""


class ManifestError(ModelLoadError):
    """``manifest.json`` is missing, malformed, or names an unsupported format."""


class ModelIntegrityError(ModelLoadError):
    """A file of a model version does not match the sha256 its manifest records."""


class InvalidTextError(EncoderError, ValueError):
    """A text handed to the encoder cannot be encoded (None, not a string, empty, bad UTF-8)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"text #{index}: {reason}")
        self.index = index
        self.reason = reason


class EncoderClosedError(EncoderError):
    """The encoder was closed while a request was waiting or arrived afterwards."""


class InferenceError(EncoderError):
    """ONNX Runtime failed on a batch. Transient from the caller's view: retry."""
