"""``interest-stream worker`` with a Qdrant that a test can slow down or take away.

    python -m tests.streams.faulty_store worker      # INTEREST_TEST_FAULTS=DIR in the env

The store comes in through ``build_app``'s store factory, as any test's fake would.

Every store call first looks in DIR: a file ``down`` makes it fail as a refused connection
would (:class:`streams.store.StoreError`); a file ``slow`` holding a number of seconds makes
it take that much longer; a file ``bug`` holding user ids (one a line) makes a write of any of
them raise ``ZeroDivisionError``, as a bug in our own code would. Without these files the
store is the real embedded one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from streams.settings import Settings
from streams.store import StoreError, store_for
from streams.worker.main import run_worker


class FaultyStore:
    def __init__(self, store: Any, control: Path) -> None:
        self._store = store
        self._control = control

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if (self._control / "down").exists():
                raise StoreError(f"Qdrant {name}: connection refused (injected)")
            bug = self._control / "bug"
            if name == "upsert_users" and bug.exists():
                buggy = set(bug.read_text().split())
                if any(point.user_id in buggy for point in args[1]):
                    raise ZeroDivisionError("float division by zero (injected)")
            slow = self._control / "slow"
            if slow.exists():
                time.sleep(float(slow.read_text() or 1))
            return attr(*args, **kwargs)

        return call


def faulty_store_for(settings: Settings) -> Any:
    return FaultyStore(store_for(settings), Path(os.environ["INTEREST_TEST_FAULTS"]))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.streams.faulty_store")
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--loglevel", default=None)
    args = parser.parse_args()
    run_worker(Settings(), args.loglevel, store_factory=faulty_store_for)
    return 0


if __name__ == "__main__":
    sys.exit(main())
