from __future__ import annotations

from pathlib import Path

import orjson

from streams.errors import InvalidJson
from streams.processor import Outcome, RawRecord
from streams.worker.stats import WorkerStats


def test_freshness_is_ack_minus_produce_time_and_bounded(tmp_path: Path) -> None:
    stats = WorkerStats(max_samples=3)
    outcome = Outcome(written=2, encoded=1)
    outcome.dead.append((RawRecord("clicks", b"x"), InvalidJson("bad")))
    stats.window("events", [1000, 1500, 1900, 2000], acked_s=2.5, outcome=outcome)
    assert stats.samples().tolist() == [[1500, 1000], [1900, 600], [2000, 500]]
    assert stats.counts["events_in"] == 4 and stats.counts["dlq"] == 1
    stats.window("events", [2400], acked_s=2.6, outcome=Outcome())  # the ring wraps
    assert stats.samples().tolist() == [[1900, 600], [2000, 500], [2400, 200]]
    stats.dump(tmp_path / "s.json")
    data = orjson.loads((tmp_path / "s.json").read_bytes())
    assert data["dlq_by_error"] == {"InvalidJson": 1} and data["counts"]["encoded_texts"] == 1
    assert data["freshness"] == [[1900, 600], [2000, 500], [2400, 200]]
