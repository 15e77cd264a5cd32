"""Worker statistics: counters and a bounded sample of freshness, dumped to a JSON file.

Freshness of an event = time its user vector was acknowledged by Qdrant minus the event's
produce time (the Kafka record timestamp). Samples are kept in a bounded numpy ring (newest
win), so memory does not grow with time, and the dump every second writes them in one call
rather than building a Python pair per sample.

    stats = WorkerStats(max_samples=200_000)
    stats.window(kind="events", produced_ms=[...], acked_s=time.time(), outcome=outcome)
    stats.dump(Path("stats.json"))
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson


class WorkerStats:
    def __init__(self, max_samples: int = 200_000) -> None:
        self.counts: Counter[str] = Counter()
        self.dlq_by_error: Counter[str] = Counter()
        # (produce time in ms, freshness in ms) per processed event, a ring of max_samples
        self._ring = np.zeros((max_samples, 2))
        self._seen = 0  # samples ever added; the newest is at (_seen - 1) % max_samples

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
            self._add(np.asarray(produced_ms, dtype=np.float64), acked_s * 1000)

    def _add(self, produced_ms: np.ndarray, acked_ms: float) -> None:
        size = len(self._ring)
        rows = np.column_stack([produced_ms, acked_ms - produced_ms])[-size:]
        at = np.arange(self._seen, self._seen + len(rows)) % size
        self._ring[at] = rows
        self._seen += len(rows)

    def samples(self) -> np.ndarray:
        """(n, 2): produce time and freshness in ms of the kept samples, oldest first."""
        size = len(self._ring)
        if self._seen <= size:
            return self._ring[: self._seen].copy()  # the dump runs in a thread
        start = self._seen % size
        return np.concatenate([self._ring[start:], self._ring[:start]])

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "dlq_by_error": dict(self.dlq_by_error),
            "freshness": self.samples(),  # [[produce ms, freshness ms], ...]
        }

    def dump(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(self.snapshot(), option=orjson.OPT_SERIALIZE_NUMPY))
        os.replace(tmp, path)  # readers never see half a file
