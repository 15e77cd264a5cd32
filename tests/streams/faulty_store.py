"""``interest-stream worker`` with a Qdrant that a test can slow down or take away.

    python -m tests.streams.faulty_store worker      # INTEREST_TEST_FAULTS=DIR in the env

Every store call first looks in DIR: a file ``down`` makes it fail as a refused connection
would (:class:`streams.store.StoreError`); a file ``slow`` holding a number of seconds makes
it take that much longer. Without either file the store is the real embedded one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import streams.app
from streams.store import StoreError


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
            slow = self._control / "slow"
            if slow.exists():
                time.sleep(float(slow.read_text() or 1))
            return attr(*args, **kwargs)

        return call


def main() -> int:
    control = Path(os.environ["INTEREST_TEST_FAULTS"])
    real = streams.app.open_store
    streams.app.open_store = lambda settings: FaultyStore(real(settings), control)  # type: ignore[assignment,return-value]

    from streams.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
