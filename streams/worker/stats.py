"""Worker statistics: counters and a bounded sample of freshness, dumped to a JSON file.

Freshness of an event = time its user vector was acknowledged by Qdrant minus the event's
produce time (the Kafka record timestamp). Samples are kept in a bounded ring (newest win),
so memory does not grow with time.

    stats = WorkerStats(max_samples=200_000)
    stats.window(kind="events", produced_ms=[...], acked_s=time.time(), outcome=outcome)
    stats.dump(Path("stats.json"))
"""

from __future__ import annotations

import os
from collections import Counter, deque
from pathlib import Path
from typing import Any

import orjson


class WorkerStats:
    def __init__(self, max_samples: int = 200_000) -> None:
        self.counts: Counter[str] = Counter()
        self.dlq_by_error: Counter[str] = Counter()
        # (produce time in ms, freshness in ms) per processed event
        self.freshness: deque[tuple[int, float]] = deque(maxlen=max_samples)

    def window(self, kind: str, produced_ms: list[int], acked_s: float, outcome: Any) -> None:
        self.counts[f"{kind}_in"] += len(produced_ms)
        self.counts["encoded_texts"] += outcome.encoded
        self.counts["written"] += outcome.written
        self.counts["duplicates"] += outcome.duplicates
        self.counts["unknown_items"] += outcome.unknown_items
        self.counts["parked"] += len(outcome.parked)
        self.counts["dlq"] += len(outcome.dead)
        for _, error in outcome.dead:
            self.dlq_by_error[type(error).__name__] += 1
        if kind == "events":
            acked_ms = acked_s * 1000
            self.freshness.extend((p, acked_ms - p) for p in produced_ms)

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "dlq_by_error": dict(self.dlq_by_error),
            "freshness": list(self.freshness),
        }

    def dump(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(self.snapshot()))
        os.replace(tmp, path)  # readers never see half a file
