"""Switching the aliases to a version, and dropping the version served before.

    before, dropped = switch_to(store, "3fa9c2d1e0b4", grace_s=600)

The switch is one request (atomic on a server): no query sees two versions. After the grace
period the version served before is dropped, unless the aliases were moved back meanwhile
(a roll-back).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

from streams.errors import StreamError
from streams.store import ITEMS, USERS, Store, collection


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def switch_to(
    store: Store,
    version: str,
    grace_s: float | None = None,
    say: Callable[[str], None] = _stderr,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str | None, list[str]]:
    """Point the aliases at ``version``; after ``grace_s`` seconds drop the version served
    before, unless the aliases moved back meanwhile. (version served before, dropped)."""
    if grace_s is not None and not 0 <= grace_s < math.inf:
        raise StreamError(f"--drop-old-after must be seconds >= 0, not {grace_s}")
    names = store.collections()
    missing = [c for c in (collection(k, version) for k in (ITEMS, USERS)) if c not in names]
    if missing:
        raise StreamError(
            f"version {version} has no {', '.join(missing)} in Qdrant: a worker on "
            "that version builds them (README, Fine-tuning: roll-out)"
        )
    before = store.serving()
    store.switch(version)
    say(f"aliases items, users: {before} -> {version}")
    dropped: list[str] = []
    if grace_s is not None and before not in (None, version):
        say(f"dropping {before} in {grace_s:.0f} s")
        sleep(grace_s)
        if store.serving() == version:  # not rolled back meanwhile
            dropped = store.drop(before)
    return before, dropped
