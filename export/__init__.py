"""Producing model versions: ONNX export with parity checks, fp16 / int8 variants, fine-tuning.

Needs the ``train`` extra (torch, transformers, onnx). The runtime never imports this package.
"""

from export.errors import ExportError, MissingExtraError, ParityError, SourceModelError

__all__ = ["ExportError", "MissingExtraError", "ParityError", "SourceModelError"]
