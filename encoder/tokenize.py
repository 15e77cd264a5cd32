"""Fast tokenization with the model directory's ``tokenizer.json`` (HF ``tokenizers``, Rust).

tok = TextTokenizer.from_file(path / "tokenizer.json", max_length=256)
rows, truncated = tok.encode(["a title", "a long review ..."])
ids, mask = pad(rows, pad_id=tok.pad_id)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from encoder.errors import ModelLoadError

# A text is cut to this many characters per token of max_length before tokenizing. English
# averages about 4 characters a token, so a cut this generous changes no result in practice,
# and it keeps a 10 MB string from costing seconds of tokenizer time.
CHARS_PER_TOKEN_CAP = 32


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        self._tok = tokenizer
        self.max_length = max_length
        self.max_chars = max_length * CHARS_PER_TOKEN_CAP
        # The file may carry padding or truncation settings of its own; ours replace them.
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length)
        self.pad_id = _pad_id(tokenizer)

    @classmethod
    def from_file(cls, path: Path, max_length: int) -> TextTokenizer:
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise ModelLoadError(f"{path}: cannot load tokenizer ({exc})") from exc
        return cls(tok, max_length)

    def encode(self, texts: Sequence[str]) -> tuple[list[np.ndarray], int]:
        """Token ids per text (int64 arrays, special tokens included) and how many were cut."""
        clipped = [t if len(t) <= self.max_chars else t[: self.max_chars] for t in texts]
        encodings = self._tok.encode_batch(clipped)
        truncated = sum(
            1
            for text, enc in zip(texts, encodings, strict=True)
            if enc.overflowing or len(text) > self.max_chars
        )
        rows = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        return rows, truncated

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids)))


def pad(rows: Sequence[np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad rows to the longest one: (input_ids, attention_mask), both int64."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max())
    if (lengths == width).all():  # one length (the usual case after plan_runs): no padding
        return np.stack(rows).astype(np.int64, copy=False), np.ones((len(rows), width), np.int64)
    mask = np.arange(width) < lengths[:, None]
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    ids[mask] = np.concatenate(rows)  # row-major order: each row's tokens, left to right
    return ids, mask.astype(np.int64)


def _pad_id(tok: Tokenizer) -> int:
    for token in ("[PAD]", "<pad>", "<|padding|>"):
        idx = tok.token_to_id(token)
        if idx is not None:
            return idx
    return 0  # masked out by attention_mask, so any valid id will do
