"""Liveness: stuck only while records wait and no window completes."""

from __future__ import annotations

from streams.worker.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_stuck_only_while_records_wait_without_progress() -> None:
    clock = Clock()
    live = Liveness(stuck_after_s=60, clock=clock)
    clock.now = 1000
    assert not live.stuck(waiting=0)  # idle for long: not stuck, and the wait restarts
    clock.now = 1059
    assert not live.stuck(waiting=3)
    clock.now = 1060
    assert live.stuck(waiting=3)
    live.progressed()  # a window completed
    assert not live.stuck(waiting=3)
    clock.now = 1200
    assert live.stuck(waiting=1)
    assert not live.stuck(waiting=0)
    assert not live.stuck(waiting=1)  # records again: a fresh wait
