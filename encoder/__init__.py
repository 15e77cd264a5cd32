"""Runtime text encoding on ONNX Runtime. Never imports torch.

from encoder import Encoder, load_model
async with Encoder(load_model(path)) as enc:
    result = await enc.encode(["some text"])
"""

from encoder.errors import (
    EncoderClosedError,
    EncoderError,
    InferenceError,
    InvalidTextError,
    ManifestError,
    ModelIntegrityError,
    ModelLoadError,
)
from encoder.model import LoadedModel, load_model
from encoder.registry import ModelRegistry, resolve_model_dir
from encoder.service import Encoded, Encoder

__all__ = [
    "Encoded",
    "Encoder",
    "EncoderClosedError",
    "EncoderError",
    "InferenceError",
    "InvalidTextError",
    "LoadedModel",
    "ManifestError",
    "ModelIntegrityError",
    "ModelLoadError",
    "ModelRegistry",
    "load_model",
    "resolve_model_dir",
]
