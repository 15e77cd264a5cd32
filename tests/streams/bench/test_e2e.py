"""bench e2e's parts against the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings


@pytest.mark.kafka
def test_the_bench_baseline_worker_consumes_and_commits_every_event(
    kafka_broker, tmp_path: Path
) -> None:
    """bench e2e's ceiling: the same Faust app and windows, every record acknowledged."""
    from streams.bench.e2e import _ceiling

    settings = Settings(kafka_bootstrap=kafka_broker.bootstrap, window_ms=50)
    per_s, cpu_s = _ceiling(settings, tmp_path, events=300, users=20, items=10, progress=False)
    assert per_s > 0  # _ceiling returns only once the group has committed all 300
    assert cpu_s > 0  # the worker's own CPU time over the phase
    assert "Traceback" not in (tmp_path / "worker.log").read_text(errors="replace")
