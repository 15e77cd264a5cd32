"""A fake model with the shape of encoder.model.Model: deterministic, fast, observable."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np


class FakeModel:
    """Vector of a text = f(version, token row); ``embed`` sleeps ``delay`` seconds a call.

    A row containing the token 666 (the text "boom") makes the whole call raise, like an
    ONNX Runtime failure would.
    """

    def __init__(
        self, version: str = "fake-a", dimension: int = 8, delay: float = 0.0, max_length: int = 16
    ) -> None:
        self.version = version
        self.dimension = dimension
        self.delay = delay
        self.max_length = max_length
        self.calls: list[int] = []  # rows per embed call
        self.threads: set[str] = set()
        self.tokenize_threads: set[str] = set()

    def tokenize(self, texts: Sequence[str]) -> tuple[list[np.ndarray], int]:
        self.tokenize_threads.add(threading.current_thread().name)
        rows = []
        truncated = 0
        for text in texts:
            ids = [666] if text == "boom" else [ord(c) % 1000 for c in text]
            if len(ids) > self.max_length:
                truncated += 1
                ids = ids[: self.max_length]
            rows.append(np.asarray(ids, dtype=np.int64))
        return rows, truncated

    def embed(self, rows: Sequence[np.ndarray]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.calls.append(len(rows))
        if self.delay:
            time.sleep(self.delay)
        if any(666 in r for r in rows):
            raise RuntimeError("simulated inference failure")
        return np.stack([self.vector(r) for r in rows])

    def vector(self, row: np.ndarray) -> np.ndarray:
        seed = (hash(self.version) + int(row.sum()) * 31 + len(row)) % (2**32)
        v = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return v / np.linalg.norm(v)

    def expected(self, text: str) -> np.ndarray:
        return self.vector(self.tokenize([text])[0][0])
