"""A Qdrant server process on this machine, for tests and benchmarks of the server path.

    with LocalQdrant.start(storage=tmp / "qdrant", api_key="k") as server:
        store = open_store(server.url, server.api_key, prefix="t1_")

The binary is ``INTEREST_QDRANT_BIN``, else ``../shared/tools/qdrant/qdrant`` beside the
project (a Qdrant 1.19.0 server built from the upstream source; the compose stack runs the
official image of the same version). It listens on 127.0.0.1 only, on free ports, requires
the API key, keeps its collections in ``storage`` and logs to ``storage/server.log``.
:meth:`LocalQdrant.stop` ends it with SIGTERM (a clean stop), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from streams.errors import StreamError

DEFAULT_BIN = Path(__file__).resolve().parents[2].parent / "shared/tools/qdrant/qdrant"


class QdrantServerError(StreamError):
    """The local Qdrant server cannot be found or started; the message says why."""


def qdrant_binary() -> Path | None:
    """The server binary to run, or None when there is none on this machine."""
    path = Path(os.environ.get("INTEREST_QDRANT_BIN") or DEFAULT_BIN)
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class LocalQdrant:
    process: subprocess.Popen[bytes]
    url: str
    api_key: str
    storage: Path

    @classmethod
    def start(cls, storage: Path, api_key: str, timeout_s: float = 30.0) -> LocalQdrant:
        binary = qdrant_binary()
        if binary is None:
            raise QdrantServerError(
                "no Qdrant server binary: set INTEREST_QDRANT_BIN to one "
                f"(looked for {os.environ.get('INTEREST_QDRANT_BIN') or DEFAULT_BIN})"
            )
        storage.mkdir(parents=True, exist_ok=True)
        http, grpc = _free_port(), _free_port()
        env = os.environ | {
            "QDRANT__STORAGE__STORAGE_PATH": str(storage / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(storage / "snapshots"),
            "QDRANT__SERVICE__HOST": "127.0.0.1",
            "QDRANT__SERVICE__HTTP_PORT": str(http),
            "QDRANT__SERVICE__GRPC_PORT": str(grpc),
            "QDRANT__SERVICE__API_KEY": api_key,
            "QDRANT__TELEMETRY_DISABLED": "true",
        }
        log = (storage / "server.log").open("ab")
        process = subprocess.Popen(
            [str(binary)], cwd=storage, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        server = cls(process, f"http://127.0.0.1:{http}", api_key, storage)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise QdrantServerError(
                    f"the Qdrant server exited with {process.returncode}; see "
                    f"{storage / 'server.log'}"
                )
            if server.ready():
                return server
            time.sleep(0.1)
        server.stop()
        raise QdrantServerError(f"the Qdrant server was not ready within {timeout_s:g} s")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LocalQdrant:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(OSError):
            self.stop()
