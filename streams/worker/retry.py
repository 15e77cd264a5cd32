"""The worker's retry policy: transient failures are retried with back-off, bugs are told.

    retry = Retry(metrics)
    outcome = await retry(lambda: processor.events(records), "events window")

A :class:`~streams.errors.TransientError` (Qdrant, the encoder or the broker away) is
retried with a warning and exponential back-off up to ``max_s``; meanwhile the agent takes
no more records (back-pressure) and nothing is dead-lettered. Anything else is a bug: it is
logged with its traceback and counted in ``interest_unexpected_errors{what}``, then retried
the same way, up to ``give_up_after`` times when the caller says so (then
:class:`GaveUp`), so nothing the window holds is lost or committed unwritten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streams.errors import TransientError
from streams.store import StoreError
from streams.worker.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


STOP_CHECK_S = 0.25  # a back-off sleep looks this often whether the worker is stopping


class Stopping(Exception):
    """The worker is stopping: the retried work is abandoned (nothing of it was committed;
    its records are read again after the restart)."""


class GaveUp(Exception):
    """An unexpected error outlasted the caller's retries; ``error`` is the last one."""

    def __init__(self, what: str, error: BaseException) -> None:
        super().__init__(f"{what}: {type(error).__name__}: {error}")
        self.error = error


class Retry:
    def __init__(
        self,
        metrics: Metrics,
        *,
        first_s: float = 0.5,
        max_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.metrics = metrics
        self.first_s = first_s
        self.max_s = max_s
        self.sleep = sleep
        self.stopping = stopping  # the worker was asked to stop (SIGTERM)

    async def __call__(
        self, call: Callable[[], Awaitable[T]], what: str, give_up_after: int | None = None
    ) -> T:
        """``call()`` until it succeeds; ``give_up_after``: how many unexpected errors are
        retried before :class:`GaveUp` (None: never give up; transient ones always retry)."""
        backoff = self.first_s
        unexpected = 0
        while True:
            try:
                return await call()
            except TransientError as exc:
                self.metrics.retries.labels(what).inc()
                if isinstance(exc, StoreError):
                    self.metrics.qdrant_errors.inc()
                log.warning("%s failed (%s); retrying in %.1f s", what, exc, backoff)
            except Exception as exc:
                self.metrics.unexpected.labels(what).inc()
                if give_up_after is not None and unexpected >= give_up_after:
                    log.exception("%s failed with an unexpected error; giving up on it", what)
                    raise GaveUp(what, exc) from exc
                unexpected += 1
                log.exception(
                    "%s failed with an unexpected error (a bug: please report it); "
                    "retrying in %.1f s",
                    what,
                    backoff,
                )
            await self._back_off(backoff, what)
            backoff = min(backoff * 2, self.max_s)

    async def _back_off(self, seconds: float, what: str) -> None:
        """Sleep ``seconds``, in slices, and raise :class:`Stopping` as soon as the worker
        is stopping: a shutdown never waits for a dependency to come back."""
        left = seconds
        while True:
            if self.stopping():
                log.warning("%s abandoned: the worker is stopping", what)
                raise Stopping(what)
            if left <= 0:
                return
            step = min(left, STOP_CHECK_S)
            await self.sleep(step)
            left -= step
