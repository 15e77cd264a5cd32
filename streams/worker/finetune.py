"""The worker's half of fine-tuning from feedback: when to start a job, and starting it.

The job itself (``interest-stream finetune --feedback``, streams/training/feedback.py) runs
in its own process; the worker never imports it. It only counts the examples the feedback
agent stored, asks the :class:`Trigger`, and starts the command in a new session.

    trigger = Trigger(min_examples=500, every_s=86_400)
    trigger.add(3); trigger.due(); trigger.started()
    launcher = FinetuneLauncher(trigger, steps=100, log_dir=Path("data/finetune"), metrics)
    await launcher.maybe_start()            # from a timer: at most one job at a time
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streams.worker.metrics import Metrics

log = logging.getLogger(__name__)

JOB_BUSY_EXIT = 3  # `finetune` exit code when another job holds the models root's lock


class Trigger:
    """Due when ``min_examples`` new examples arrived, or ``every_s`` passed since the last
    job with at least one new example. ``min_examples=0`` turns it off."""

    def __init__(
        self, min_examples: int, every_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.min_examples = min_examples
        self.every_s = every_s
        self.clock = clock
        self.new = 0
        self.last = clock()

    def add(self, examples: int) -> None:
        self.new += examples

    def due(self) -> bool:
        if not self.min_examples or not self.new:
            return False
        return self.new >= self.min_examples or self.clock() - self.last >= self.every_s

    def started(self) -> None:
        self.new = 0
        self.last = self.clock()


class FinetuneLauncher:
    """Starts ``interest-stream finetune --feedback`` when the trigger is due, never two
    from this worker at once (the job's lock keeps it to one per models root)."""

    def __init__(self, trigger: Trigger, steps: int, log_dir: Path, metrics: Metrics) -> None:
        self.trigger = trigger
        self.steps = steps
        self.log_dir = log_dir
        self.metrics = metrics
        self.job: asyncio.subprocess.Process | None = None
        self._watchers: set[asyncio.Future[None]] = set()  # held until done (not collected)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.returncode is None

    async def maybe_start(self) -> None:
        if self.running or not self.trigger.due():
            return
        log_path = self.log_dir / f"job-{int(time.time())}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as out:
            job = self.job = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streams.cli",
                "finetune",
                "--feedback",
                "--steps",
                str(self.steps),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        log.info(
            "fine-tuning job started on %d new examples (pid %d, log %s)",
            self.trigger.new,
            job.pid,
            log_path,
        )
        self.metrics.finetune_jobs.labels("started").inc()
        self.trigger.started()
        watcher = asyncio.ensure_future(self._done(job, log_path))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _done(self, job: asyncio.subprocess.Process, log_path: Path) -> None:
        code = await job.wait()
        outcome = {0: "finished", JOB_BUSY_EXIT: "busy"}.get(code, "failed")
        self.metrics.finetune_jobs.labels(outcome).inc()
        (log.info if code == 0 else log.warning)(
            "fine-tuning job %d %s (exit %d); log %s", job.pid, outcome, code, log_path
        )
