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


@pytest.mark.kafka
def test_two_workers_share_one_qdrant_server_and_count_every_event_once(
    kafka_broker, qdrant_server, default_model_dir: Path, tmp_path: Path
) -> None:
    """bench e2e --workers 1,2: each count on its own topics and collection prefix; the
    users' event counts in the shared store add up to the events sent."""
    from streams.bench.e2e import _scale_out

    settings = Settings(
        kafka_bootstrap=kafka_broker.bootstrap,
        window_ms=50,
        model_dir=default_model_dir.parent,
        encoder_provider="cpu",
        qdrant_url=qdrant_server.url,
        qdrant_api_key=qdrant_server.api_key,
    )
    rows = _scale_out(settings, tmp_path, [1, 2], events=400, users=30, items=10, progress=False)
    assert [r["workers"] for r in rows] == [1, 2]
    for row in rows:
        assert (row["counted"], row["lost"], row["duplicated"]) == (400, 0, 0), row
        assert row["events_per_s"] > 0 and row["cpu_ms_per_1k_events"] > 0
    assert len(rows[1]["events_per_worker"]) == 2
    assert all(n > 0 for n in rows[1]["events_per_worker"])  # both took partitions
    for log in tmp_path.glob("*w-*/worker.log"):
        assert "Traceback" not in log.read_text(errors="replace")
