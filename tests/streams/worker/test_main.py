"""run_worker: what the process sets up before Faust's worker loop takes over."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from streams.settings import Settings
from streams.worker import main


def blas_threads() -> set[int]:
    """The threads of every BLAS loaded: numpy's, and torch's too once a test imported it."""
    return {int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_the_worker_runs_numpy_on_the_blas_threads_its_settings_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert np.ones(2) @ np.ones(2) == 2  # numpy's BLAS is loaded
    seen: list[set[int]] = []
    monkeypatch.setattr(main, "ensure_topics", lambda settings: [])
    monkeypatch.setattr(main, "build_app", lambda *args: object())
    monkeypatch.setattr(main, "StreamWorker", _Recorder(seen))
    with threadpool_limits(2, user_api="blas"):  # what a 2-core machine starts with
        main.run_worker(Settings(metrics_port=0))
        main.run_worker(Settings(metrics_port=0, blas_threads=2))
    assert seen == [{1}, {2}]


class _Recorder:
    """Stands in for StreamWorker: notes the BLAS threads when the loop would start."""

    def __init__(self, seen: list[set[int]]) -> None:
        self.seen = seen

    def __call__(self, *args: Any, **kwargs: Any) -> _Recorder:
        return self

    def execute_from_commandline(self) -> None:
        self.seen.append(blas_threads())
