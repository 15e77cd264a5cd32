"""Forward-decayed interest vectors (DESIGN.md, "Interest math").

For each half-life h the state keeps ``S_h = Σ w_i · exp(λ_h (t_i - L)) · e_i`` with
``λ_h = ln 2 / h``, landmark ``L`` and unit vectors ``e_i``. The vector at time T is
``S_h · exp(-λ_h (T - L))``: only its length decays, so its *direction*, all a cosine index
sees, changes only when events arrive. The sum does not depend on order, so late and
out-of-order events need no special case. When an exponent would grow past REBASE_AT the
landmark moves forward and the sums are scaled to match.

    state = InterestState.empty(dimension=384, half_lives={"short": 86400, "long": 2592000})
    state.fold("e1", ts=1_700_000_000, weight=1.0, vector=e)   # False for a repeated event_id
    state.directions()    # {"short": unit vector, "long": unit vector}

The state serializes to plain JSON-able data (``to_dict`` / ``from_dict``) for the Faust
table and its changelog.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

LN2 = math.log(2.0)
REBASE_AT = 60.0  # exp(60) ~ 1e26: far from float64 overflow, and rebasing is rare


@dataclasses.dataclass
class InterestState:
    half_lives: dict[str, float]
    landmark: float | None
    sums: dict[str, np.ndarray]  # float64, one per half-life
    event_count: int = 0
    updated_at: float = 0.0  # latest event time folded in
    seen: deque[str] = dataclasses.field(default_factory=deque)
    dedupe_window: int = 1024
    recent_items: deque[str] = dataclasses.field(default_factory=deque)  # newest last
    history_items: int = 200

    def __post_init__(self) -> None:
        self._seen_set = set(self.seen)  # O(1) membership; the deque keeps the order

    @classmethod
    def empty(
        cls, dimension: int, half_lives: Mapping[str, float], dedupe_window: int = 1024
    ) -> InterestState:
        return cls(
            half_lives=dict(half_lives),
            landmark=None,
            sums={name: np.zeros(dimension) for name in half_lives},
            dedupe_window=dedupe_window,
        )

    def fold(
        self,
        event_id: str,
        ts: float,
        weight: float,
        vector: np.ndarray,
        item_id: str | None = None,
    ) -> bool:
        """Add one event; False (and no change) when its event_id was seen already."""
        if event_id in self._seen_set:
            return False
        self.seen.append(event_id)
        self._seen_set.add(event_id)
        while len(self.seen) > self.dedupe_window:
            self._seen_set.discard(self.seen.popleft())
        if item_id is not None:
            if item_id in self.recent_items:
                self.recent_items.remove(item_id)
            self.recent_items.append(item_id)
            while len(self.recent_items) > self.history_items:
                self.recent_items.popleft()
        if self.landmark is None:
            self.landmark = ts
        fastest = max(LN2 / h for h in self.half_lives.values())
        if fastest * (ts - self.landmark) > REBASE_AT:
            self._rebase(ts)
        e = np.asarray(vector, dtype=np.float64)
        for name, h in self.half_lives.items():
            self.sums[name] += weight * math.exp(LN2 / h * (ts - self.landmark)) * e
        self.event_count += 1
        self.updated_at = max(self.updated_at, ts)
        return True

    def _rebase(self, new_landmark: float) -> None:
        assert self.landmark is not None
        for name, h in self.half_lives.items():
            self.sums[name] *= math.exp(LN2 / h * (self.landmark - new_landmark))
        self.landmark = new_landmark

    def directions(self) -> dict[str, np.ndarray]:
        """Unit vectors per half-life (zeros when the weights cancel out), float32."""
        out = {}
        for name, s in self.sums.items():
            norm = float(np.linalg.norm(s))
            out[name] = (s / norm if norm > 0 else s).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "half_lives": self.half_lives,
            "landmark": self.landmark,
            "sums": {k: v.tolist() for k, v in self.sums.items()},
            "event_count": self.event_count,
            "updated_at": self.updated_at,
            "seen": list(self.seen),
            "dedupe_window": self.dedupe_window,
            "recent_items": list(self.recent_items),
            "history_items": self.history_items,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InterestState:
        return cls(
            half_lives=dict(data["half_lives"]),
            landmark=data["landmark"],
            sums={k: np.asarray(v, dtype=np.float64) for k, v in data["sums"].items()},
            event_count=int(data["event_count"]),
            updated_at=float(data["updated_at"]),
            seen=deque(data["seen"]),
            dedupe_window=int(data["dedupe_window"]),
            recent_items=deque(data.get("recent_items", ())),
            history_items=int(data.get("history_items", 200)),
        )


def event_weight(
    kind: str,
    rating: float | None,
    weights: Mapping[str, float],
    rating_center: float = 3.0,
    rating_scale: float = 2.0,
) -> float:
    """The weight of an event: by type, or derived from its rating when it has one."""
    if rating is not None and kind != "negative":
        return (rating - rating_center) / rating_scale
    return weights[kind]


def top_concepts(
    user: np.ndarray, concepts: np.ndarray, labels: list[str], temperature: float, k: int
) -> list[tuple[str, float]]:
    """``p(c | u) = softmax_c(u · v_c / τ)``; the k most likely (label, p)."""
    if k == 0 or not labels or not np.any(user):
        return []
    logits = concepts @ user.astype(np.float64) / temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    best = np.argsort(-p)[:k]
    return [(labels[i], round(float(p[i]), 4)) for i in best]
