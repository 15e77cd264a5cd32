"""A loaded model version: manifest + tokenizer + ONNX Runtime session.

    model = load_model(Path("data/models/3fa9c2d1e0b4"))
    rows, truncated = model.tokenize(["Toy Story (1995) Adventure|Animation"])
    vectors = model.embed(rows)          # float32 (n, dimension), unit length

Both calls block: the async :class:`encoder.service.Encoder` runs them in threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from encoder.errors import ModelLoadError
from encoder.manifest import (
    MODEL_FILE,
    TOKENIZER_FILE,
    Manifest,
    read_manifest,
    verify_files,
)
from encoder.session import OnnxSession, Provider
from encoder.tokenize import TextTokenizer, pad

# Runs are split where padding would waste more than this share of a run's tokens.
PAD_SLACK = 0.25


class Model(Protocol):
    """What the encoder service needs of a model; tests pass fakes with the same shape."""

    version: str
    dimension: int
    max_length: int  # tokens; longer texts are truncated

    def tokenize(self, texts: Sequence[str]) -> tuple[list[np.ndarray], int]: ...

    def embed(self, rows: Sequence[np.ndarray]) -> np.ndarray: ...


class LoadedModel:
    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        tokenizer: TextTokenizer,
        session: OnnxSession,
        run_tokens: int,
        run_rows: int,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.version = manifest.version
        self.dimension = manifest.dimension
        self.max_length = manifest.max_length
        self.tokenizer = tokenizer
        self.session = session
        self.run_tokens = run_tokens  # padded tokens per ONNX Runtime call
        self.run_rows = run_rows  # rows per ONNX Runtime call

    @property
    def provider(self) -> str:
        return self.session.provider

    def tokenize(self, texts: Sequence[str]) -> tuple[list[np.ndarray], int]:
        return self.tokenizer.encode(texts)

    def embed(self, rows: Sequence[np.ndarray]) -> np.ndarray:
        """Vectors for token rows in their given order, run in length-grouped sub-batches."""
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        lengths = [len(r) for r in rows]
        for run in plan_runs(lengths, self.run_tokens, self.run_rows):
            ids, mask = pad([rows[i] for i in run], self.tokenizer.pad_id)
            vectors = self.session.run(ids, mask)
            if vectors.shape != (len(run), self.dimension):
                raise ModelLoadError(
                    f"{self.directory}: output shape {vectors.shape}, expected "
                    f"({len(run)}, {self.dimension}) from the manifest"
                )
            out[run] = vectors
        return out


def plan_runs(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Group row indices into ONNX runs: sorted by length, each run's padded size bounded.

    A run ends when it reaches ``max_rows``, when its padded token count would pass
    ``max_tokens``, or when padding would exceed PAD_SLACK of its tokens.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    runs: list[list[int]] = []
    run: list[int] = []
    total = 0
    for i in order:
        n = lengths[i]
        if run:
            padded = n * (len(run) + 1)  # sorted ascending: the new row is the longest
            wasteful = padded - (total + n) > PAD_SLACK * padded
            if len(run) >= max_rows or padded > max_tokens or wasteful:
                runs.append(run)
                run, total = [], 0
        run.append(i)
        total += n
    if run:
        runs.append(run)
    return runs


def load_model(
    directory: Path,
    *,
    provider: Provider = "auto",
    threads: int | None = None,
    verify: bool = True,
    run_tokens: int = 8192,
    run_rows: int = 64,
) -> LoadedModel:
    """Load a model version directory, checking file hashes against the manifest."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"{directory}: no such model directory")
    manifest = read_manifest(directory)
    if verify:
        verify_files(directory, manifest)
    tokenizer = TextTokenizer.from_file(directory / TOKENIZER_FILE, manifest.max_length)
    session = OnnxSession(directory / MODEL_FILE, provider=provider, threads=threads)
    return LoadedModel(directory, manifest, tokenizer, session, run_tokens, run_rows)
