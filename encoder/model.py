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

# On CUDA every new input shape costs ONNX Runtime a kernel (and attention graph) choice of
# many milliseconds; a stream of batches of every size and length would pay it forever.
# Runs there are padded to a few shapes: widths to a multiple of WIDTH_STEP, rows to a power
# of two. Padding is cheap on a GPU; on the CPU it is not, and shapes cost nothing, so the
# CPU pads only to the longest row.
WIDTH_STEP = 32

# Rows and padded tokens per ONNX Runtime call: small runs for the CPU's caches, large runs
# to fill a GPU.
RUN_LIMITS = {"cpu": (64, 8192), "cuda": (1024, 65536)}


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
            if self.provider == "cuda":
                ids, mask = bucket(ids, mask, self.tokenizer.pad_id, self.max_length)
            vectors = self.session.run(ids, mask)
            if vectors.shape != (len(ids), self.dimension):
                raise ModelLoadError(
                    f"{self.directory}: output shape {vectors.shape}, expected "
                    f"({len(ids)}, {self.dimension}) from the manifest"
                )
            out[run] = vectors[: len(run)]
        return out


def bucket(
    ids: np.ndarray, mask: np.ndarray, pad_id: int, max_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad a run to a bucketed shape: width up to a multiple of WIDTH_STEP (at most
    ``max_length``), rows up to a power of two. Extra rows hold one unmasked pad token."""
    n, width = ids.shape
    to_width = min(-(-width // WIDTH_STEP) * WIDTH_STEP, max(width, max_length))
    to_rows = 1 << (n - 1).bit_length()
    if (to_rows, to_width) == (n, width):
        return ids, mask
    big_ids = np.full((to_rows, to_width), pad_id, dtype=np.int64)
    big_mask = np.zeros((to_rows, to_width), dtype=np.int64)
    big_ids[:n, :width] = ids
    big_mask[:n, :width] = mask
    big_mask[n:, 0] = 1  # no all-masked row: mean pooling would divide by zero
    return big_ids, big_mask


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
    run_tokens: int | None = None,
    run_rows: int | None = None,
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
    rows, tokens = RUN_LIMITS[session.provider]
    return LoadedModel(
        directory, manifest, tokenizer, session, run_tokens or tokens, run_rows or rows
    )
