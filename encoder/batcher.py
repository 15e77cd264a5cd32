"""An asyncio micro-batcher shared by many callers.

Callers hand in token rows and get futures back: one per chunk of their rows, resolved with
that chunk's vectors. A chunk (a request) is a caller's rows up to the batch limits; most
calls are one request. A single loop task gathers requests first-in first-out and flushes a
batch when

* the oldest request has waited ``max_wait_s``, or
* the requests waiting hold ``max_batch_tokens`` tokens or ``max_batch_rows`` rows.

The batch runs in a thread (``model.embed``: padding, ONNX Runtime, which releases the GIL),
never on the event loop, and the loop awaits it per batch, not per row. While a batch runs,
the next one gathers, so under load batches grow by themselves. Inside a batch the model
groups rows by length to cut padding (:func:`encoder.model.plan_runs`). Futures are per
request, not per row: at tens of thousands of texts a second (a GPU), per-row futures alone
would cost the event loop more than the inference.

Bounds: at most ``max_pending`` rows wait or run at once; a caller past that awaits room
(back-pressure) instead of memory growing. Requests are taken in arrival order, so no row
waits longer than ``max_wait_s`` plus the batch already running when its wait ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import numpy as np

from encoder.errors import EncoderClosedError
from encoder.model import Model


@dataclasses.dataclass(eq=False, slots=True)
class _Request:
    model: Model
    rows: list[np.ndarray]
    tokens: int
    future: asyncio.Future[np.ndarray]
    enqueued: float


@dataclasses.dataclass
class BatchStats:
    batches: int = 0
    rows: int = 0
    tokens: int = 0
    busy_s: float = 0.0  # time spent inside model.embed
    max_rows: int = 0

    @property
    def mean_rows(self) -> float:
        return self.rows / self.batches if self.batches else 0.0


class MicroBatcher:
    def __init__(
        self,
        executor: Executor,
        *,
        max_wait_s: float = 0.005,
        max_batch_tokens: int = 16384,
        max_batch_rows: int = 1024,
        max_pending: int = 8192,
    ) -> None:
        if max_wait_s < 0 or max_batch_tokens < 1 or max_batch_rows < 1 or max_pending < 1:
            raise ValueError("batcher limits must be positive")
        self.max_wait_s = max_wait_s
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_rows = max_batch_rows
        self.max_pending = max_pending
        self.stats = BatchStats()
        # Called after each batch with (rows, tokens, seconds): a metrics hook for the caller.
        self.on_batch: Callable[[int, int, float], None] | None = None
        self._executor = executor
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._queued_tokens = 0
        self._in_flight = 0  # rows queued or running: the back-pressure bound
        self._room = asyncio.Condition()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Rows waiting for a batch."""
        return self._queued_rows

    async def submit(
        self, model: Model, rows: Sequence[np.ndarray]
    ) -> list[asyncio.Future[np.ndarray]]:
        """Queue rows for ``model``; returns one future per request (consecutive rows, in
        order), each resolved with a float32 (rows, dimension) array."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._run(), name="encoder-batcher")
        futures = []
        for chunk, tokens in self._chunks(rows):
            await self._reserve(len(chunk))
            future: asyncio.Future[np.ndarray] = loop.create_future()
            self._queue.append(_Request(model, chunk, tokens, future, time.monotonic()))
            self._queued_rows += len(chunk)
            self._queued_tokens += tokens
            if len(self._queue) == 1 or self._full():
                self._wakeup.set()
            futures.append(future)
        return futures

    def _chunks(self, rows: Sequence[np.ndarray]) -> list[tuple[list[np.ndarray], int]]:
        """Cut a caller's rows into requests that fit one batch and the pending bound."""
        limit = min(self.max_batch_rows, self.max_pending)
        chunks: list[tuple[list[np.ndarray], int]] = []
        chunk: list[np.ndarray] = []
        tokens = 0
        for row in rows:
            if chunk and (len(chunk) >= limit or tokens + len(row) > self.max_batch_tokens):
                chunks.append((chunk, tokens))
                chunk, tokens = [], 0
            chunk.append(row)
            tokens += len(row)
        if chunk:
            chunks.append((chunk, tokens))
        return chunks

    async def _reserve(self, rows: int) -> None:
        """Back-pressure: wait until ``rows`` more fit under ``max_pending``."""
        if self._closed:
            raise EncoderClosedError("the encoder is closed")
        if self._in_flight + rows > self.max_pending:
            async with self._room:
                await self._room.wait_for(
                    lambda: self._closed or self._in_flight + rows <= self.max_pending
                )
            if self._closed:
                raise EncoderClosedError("the encoder is closed")
        self._in_flight += rows

    async def _release(self, rows: int) -> None:
        self._in_flight -= rows
        async with self._room:
            self._room.notify_all()

    async def aclose(self) -> None:
        """Stop the loop; requests still waiting fail with EncoderClosedError."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(EncoderClosedError("the encoder was closed"))
        self._queued_rows = self._queued_tokens = 0
        async with self._room:  # wake callers blocked on back-pressure
            self._room.notify_all()

    def _full(self) -> bool:
        return (
            self._queued_tokens >= self.max_batch_tokens or self._queued_rows >= self.max_batch_rows
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._queue[0].enqueued + self.max_wait_s
            while not self._full() and (delay := deadline - time.monotonic()) > 0:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)
            batch = await self._take()
            if not batch:
                continue
            model = batch[0].model
            rows = [row for request in batch for row in request.rows]
            started = time.perf_counter()
            try:
                vectors = await loop.run_in_executor(self._executor, model.embed, rows)
            except Exception as exc:
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
            else:
                start = 0
                for request in batch:
                    end = start + len(request.rows)
                    if not request.future.done():
                        request.future.set_result(vectors[start:end])
                    start = end
            finally:
                self._account(batch, len(rows), time.perf_counter() - started)
                await self._release(len(rows))

    async def _take(self) -> list[_Request]:
        """Requests from the head of the queue: one model version, within the batch limits
        (a batch holds at least one request)."""
        batch: list[_Request] = []
        rows = tokens = dropped = 0
        while self._queue:
            request = self._queue[0]
            n = len(request.rows)
            if request.future.done():  # the caller gave up (cancelled): drop the request
                self._queue.popleft()
                self._queued_rows -= n
                self._queued_tokens -= request.tokens
                dropped += n
                continue
            if batch and (
                request.model is not batch[0].model
                or rows + n > self.max_batch_rows
                or tokens + request.tokens > self.max_batch_tokens
            ):
                break
            self._queue.popleft()
            self._queued_rows -= n
            self._queued_tokens -= request.tokens
            batch.append(request)
            rows += n
            tokens += request.tokens
        if dropped:
            await self._release(dropped)
        return batch

    def _account(self, batch: list[_Request], rows: int, seconds: float) -> None:
        s = self.stats
        tokens = sum(r.tokens for r in batch)
        s.batches += 1
        s.rows += rows
        s.tokens += tokens
        s.busy_s += seconds
        s.max_rows = max(s.max_rows, rows)
        if self.on_batch is not None:
            self.on_batch(rows, tokens, seconds)
