"""The runtime encoder: the one object the stream talks to.

    encoder = Encoder(load_model(path))
    result = await encoder.encode(["Toy Story (1995)", "a long review ..."])
    result.vectors        # float32 (2, 384), unit rows
    result.version        # the model version that made every row of this answer
    encoder.swap(load_model(newer_path))   # in-flight requests finish on the old model
    await encoder.aclose()

Texts go through validation, the (version, text) cache, the tokenizer (in a thread, once per
call), then the shared :class:`MicroBatcher`. Every call is answered by exactly one model
version: the one current when the call began.

Input rules (documented behaviour, see README): ``None``, non-strings, empty or whitespace-only
text, bytes that are not UTF-8 and strings with unpaired surrogates raise
:class:`InvalidTextError` naming the index; nothing is queued for that call, and other callers
are not affected. Text longer than ``model.max_length`` tokens is truncated and counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from encoder.batcher import MicroBatcher
from encoder.cache import VectorCache, text_key
from encoder.errors import EncoderClosedError, InvalidTextError
from encoder.model import Model
from encoder.session import default_threads
from encoder.tokenize import CHARS_PER_TOKEN_CAP


@dataclasses.dataclass(frozen=True)
class Encoded:
    vectors: np.ndarray  # float32 (n, dimension)
    version: str
    truncated: int  # texts cut to the model's max length in this call
    cached: int  # rows served from the cache


@dataclasses.dataclass
class EncoderStats:
    texts: int = 0
    truncated: int = 0
    invalid_calls: int = 0


class Encoder:
    def __init__(
        self,
        model: Model,
        *,
        cache_entries: int = 20_000,
        max_wait_ms: float = 5.0,
        max_batch_tokens: int = 32768,
        max_batch_rows: int = 1024,
        max_pending: int = 8192,
        tokenize_threads: int | None = None,
    ) -> None:
        self._model = model
        self.cache = VectorCache(cache_entries)
        self.stats = EncoderStats()
        # One thread runs inference (one batch at a time, on every core); others tokenize,
        # so the next calls' tokens are ready while a batch runs. The tokenizer spreads one
        # call over the cores itself, but each row comes back to Python one by one: with
        # many cores (a GPU machine) several calls at once keep the GPU fed.
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="encoder-infer")
        self._token_pool = ThreadPoolExecutor(
            tokenize_threads or default_tokenize_threads(), thread_name_prefix="encoder-tokenize"
        )
        self.batcher = MicroBatcher(
            self._infer_pool,
            max_wait_s=max_wait_ms / 1000,
            max_batch_tokens=max_batch_tokens,
            max_batch_rows=max_batch_rows,
            max_pending=max_pending,
        )
        self._closed = False

    @property
    def model(self) -> Model:
        return self._model

    @property
    def version(self) -> str:
        return self._model.version

    @property
    def dimension(self) -> int:
        return self._model.dimension

    def swap(self, model: Model) -> Model:
        """Serve new calls with ``model``; calls already started finish on the old one."""
        old, self._model = self._model, model
        return old

    async def encode(self, texts: Sequence[Any]) -> Encoded:
        if self._closed:
            raise EncoderClosedError("the encoder is closed")
        model = self._model  # one version answers the whole call
        clean = self._validate(texts, model.max_length * CHARS_PER_TOKEN_CAP)
        self.stats.texts += len(clean)
        vectors = np.empty((len(clean), model.dimension), dtype=np.float32)
        # text -> (cache key, positions); a text repeated in the call is encoded once
        todo: dict[str, tuple[tuple[str, bytes], list[int]]] = {}
        for i, text in enumerate(clean):
            if text in todo:
                todo[text][1].append(i)
                continue
            key = text_key(model.version, text)
            hit = self.cache.get_key(key)
            if hit is None:
                todo[text] = (key, [i])
            else:
                vectors[i] = hit
        misses = sum(len(positions) for _, positions in todo.values())
        cached = len(clean) - misses
        truncated = 0
        if todo:
            unique = list(todo)
            loop = asyncio.get_running_loop()
            rows, truncated = await loop.run_in_executor(self._token_pool, model.tokenize, unique)
            futures = await self.batcher.submit(model, rows)
            results = await asyncio.gather(*futures)
            fresh = results[0] if len(results) == 1 else np.concatenate(results)
            if len(unique) == len(clean):  # the common case: all new, no repeats, in order
                vectors[:] = fresh
            else:
                for (_, positions), vector in zip(todo.values(), fresh, strict=True):
                    vectors[positions] = vector
            for (key, _), vector in zip(todo.values(), fresh, strict=True):
                self.cache.put_key(key, vector)
            self.stats.truncated += truncated
        return Encoded(vectors, model.version, truncated, cached)

    def _validate(self, texts: Sequence[Any], max_chars: int) -> list[str]:
        if isinstance(texts, (str, bytes)):
            raise InvalidTextError(0, "expected a sequence of texts, got a single text")
        clean = []
        for i, text in enumerate(texts):
            try:
                clean.append(_clean_text(i, text, max_chars))
            except InvalidTextError:
                self.stats.invalid_calls += 1
                raise
        return clean

    def info(self) -> dict[str, Any]:
        b = self.batcher.stats
        return {
            "version": self.version,
            "texts": self.stats.texts,
            "truncated": self.stats.truncated,
            "cache_entries": len(self.cache),
            "cache_hits": self.cache.hits,
            "cache_hit_ratio": round(self.cache.hit_ratio, 4),
            "batches": b.batches,
            "mean_batch_rows": round(b.mean_rows, 2),
            "max_batch_rows": b.max_rows,
            "pending": self.batcher.pending,
        }

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.batcher.aclose()
        self._infer_pool.shutdown(wait=True)
        self._token_pool.shutdown(wait=True)

    async def __aenter__(self) -> Encoder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def default_tokenize_threads() -> int:
    """1 on small machines (2 cores here: inference needs them); up to 4 on large ones."""
    return max(1, min(4, default_threads() // 4))


def _clean_text(index: int, text: Any, max_chars: int) -> str:
    if type(text) is str and text.isascii() and 0 < len(text) <= max_chars and not text.isspace():
        return text  # the common case, decided without the checks below
    if text is None:
        raise InvalidTextError(index, "is None")
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidTextError(
                index, f"is not valid UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
    if not isinstance(text, str):
        raise InvalidTextError(index, f"expected str, got {type(text).__name__}")
    if len(text) > max_chars:
        text = text[:max_chars]  # past max_length tokens anyway; see tokenize.CHARS_PER_TOKEN_CAP
    if not text.strip():
        raise InvalidTextError(index, "is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTextError(
            index, f"is not valid Unicode ({exc.reason} at {exc.start})"
        ) from None
    return text
