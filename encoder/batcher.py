"""An asyncio micro-batcher shared by many callers.

Callers hand in token rows and get one future per row. A single loop task gathers rows
first-in first-out and flushes a batch when

* the oldest row has waited ``max_wait_s``, or
* the rows waiting hold ``max_batch_tokens`` tokens or ``max_batch_rows`` rows.

A batch is what one flush takes; the model cuts it into ONNX Runtime runs of similar
lengths (:func:`encoder.model.plan_runs`), so a large batch means little padding.

The batch runs in a thread (``model.embed``: padding, ONNX Runtime, which releases the GIL),
never on the event loop, and the loop awaits it per batch, not per row. While a batch runs,
the next one gathers, so under load batches grow by themselves. Inside a batch the model
groups rows by length to cut padding (:func:`encoder.model.plan_runs`).

Bounds: at most ``max_pending`` rows wait or run at once; a caller past that awaits a free
slot (back-pressure) instead of memory growing. Rows are taken in arrival order, so no row
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
class _Row:
    model: Model
    tokens: np.ndarray
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
        self._queue: deque[_Row] = deque()
        self._queued_tokens = 0
        self._slots = asyncio.Semaphore(max_pending)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def submit(
        self, model: Model, rows: Sequence[np.ndarray]
    ) -> list[asyncio.Future[np.ndarray]]:
        """Queue rows for ``model``; returns one future per row, resolved with its vector."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._run(), name="encoder-batcher")
        futures = []
        for tokens in rows:
            await self._slots.acquire()  # back-pressure: wait while max_pending rows are out
            if self._closed:
                self._slots.release()
                raise EncoderClosedError("the encoder is closed")
            future: asyncio.Future[np.ndarray] = loop.create_future()
            self._queue.append(_Row(model, tokens, future, time.monotonic()))
            self._queued_tokens += len(tokens)
            if len(self._queue) == 1 or self._full():
                self._wakeup.set()
            futures.append(future)
        return futures

    async def aclose(self) -> None:
        """Stop the loop; rows still waiting fail with EncoderClosedError."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue:
            row = self._queue.popleft()
            if not row.future.done():
                row.future.set_exception(EncoderClosedError("the encoder was closed"))
            self._slots.release()
        self._queued_tokens = 0
        for _ in range(self.max_pending):  # wake callers blocked on back-pressure
            self._slots.release()

    def _full(self) -> bool:
        return (
            self._queued_tokens >= self.max_batch_tokens or len(self._queue) >= self.max_batch_rows
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
            batch = self._take()
            if not batch:
                continue
            model = batch[0].model
            started = time.perf_counter()
            try:
                vectors = await loop.run_in_executor(
                    self._executor, model.embed, [row.tokens for row in batch]
                )
            except Exception as exc:
                for row in batch:
                    if not row.future.done():
                        row.future.set_exception(exc)
            else:
                for row, vector in zip(batch, vectors, strict=True):
                    if not row.future.done():
                        row.future.set_result(vector)
            finally:
                self._account(batch, time.perf_counter() - started)
                for _ in batch:
                    self._slots.release()

    def _take(self) -> list[_Row]:
        """Rows from the head of the queue: one model version, within the batch limits."""
        batch: list[_Row] = []
        tokens = 0
        while self._queue:
            row = self._queue[0]
            if row.future.done():  # the caller gave up (cancelled): drop the row
                self._queue.popleft()
                self._queued_tokens -= len(row.tokens)
                self._slots.release()
                continue
            if batch and (
                row.model is not batch[0].model
                or len(batch) >= self.max_batch_rows
                or tokens + len(row.tokens) > self.max_batch_tokens
            ):
                break
            self._queue.popleft()
            self._queued_tokens -= len(row.tokens)
            batch.append(row)
            tokens += len(row.tokens)
        return batch

    def _account(self, batch: list[_Row], seconds: float) -> None:
        s = self.stats
        tokens = sum(len(r.tokens) for r in batch)
        s.batches += 1
        s.rows += len(batch)
        s.tokens += tokens
        s.busy_s += seconds
        s.max_rows = max(s.max_rows, len(batch))
        if self.on_batch is not None:
            self.on_batch(len(batch), tokens, seconds)
