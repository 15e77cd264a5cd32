"""Liveness: a worker that has records waiting but completes no window is stuck.

    live = Liveness(stuck_after_s=120)
    live.progressed()              # a window completed
    live.stuck(waiting=5)          # True once 120 s passed without progress while records wait

The healthcheck (``interest-stream health``) reads ``interest_worker_ready``, which the worker
sets to 0 while it is stuck (``interest_worker_stuck`` 1): an orchestrator restarts it. An
idle worker (nothing waiting) is never stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Liveness:
    def __init__(self, stuck_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after_s = stuck_after_s
        self.clock = clock
        self.last = clock()

    def progressed(self) -> None:
        self.last = self.clock()

    def stuck(self, waiting: int) -> bool:
        """Records are waiting and no window completed for ``stuck_after_s``."""
        if waiting <= 0:
            self.last = self.clock()  # idle: the wait starts when records arrive
            return False
        return self.clock() - self.last >= self.stuck_after_s
