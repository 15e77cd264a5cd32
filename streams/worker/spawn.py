"""A worker in a subprocess, on its own topics, consumer group and embedded Qdrant.

For commands that drive the whole pipeline on one machine (``bench e2e``,
``eval --through-pipeline``): nothing they write touches the topics, group or store of a
worker that is already running.

    run = private_settings(Settings(), "eval")     # prefix and group "eval<time>."
    with spawned_worker(run, workdir, models_root) as worker:
        ... publish to run's topics; wait_caught_up(..., check=worker.check)
    open_store(..., worker.qdrant_location, ...)   # the worker's store, after it stopped
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.errors import StreamError
from streams.kafka.topics import ensure_topics
from streams.settings import Settings

STOP_TIMEOUT_S = 60.0


def private_settings(settings: Settings, name: str) -> Settings:
    """``settings`` with a fresh topic prefix and consumer group, metrics off (a worker of
    the user's may hold the port); the topics are created."""
    tag = f"{name}{int(time.time() * 1000)}"
    private = {"topic_prefix": f"{tag}.", "consumer_group": tag, "metrics_port": 0}
    run = Settings(**(settings.model_dump() | private))
    ensure_topics(run)  # no broker: a StreamError that says how to start one
    return run


@dataclasses.dataclass
class SpawnedWorker:
    process: subprocess.Popen[bytes]
    log: Path
    qdrant_location: Path
    stats_file: Path

    def check(self) -> None:
        """Raise if the worker has exited (its log names why)."""
        code = self.process.poll()
        if code is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise StreamError(f"the worker exited with code {code}; log {self.log}:\n{tail}")


@contextlib.contextmanager
def spawned_worker(
    settings: Settings,
    workdir: Path,
    models_root: Path,
    module: str = "streams.cli worker",
    server: tuple[str, str, str] | None = None,
) -> Iterator[SpawnedWorker]:
    """Run ``interest-stream worker`` for ``settings``' topics and group; stop it on exit.

    Its Qdrant is the embedded one under ``workdir`` (the settings' backend), never a
    configured server, unless ``server`` names one: (url, API key, collection prefix), for
    several workers sharing a store. ``module``: the Python module (and its arguments) to
    run instead, with the same environment (``bench e2e`` runs its no-op baseline worker
    this way).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    qdrant = workdir / "qdrant"
    stats_file = workdir / "stats.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEREST_")}
    env |= worker_env(settings)
    env |= {
        "INTEREST_DATA_DIR": str(workdir / "data"),
        "INTEREST_MODEL_DIR": str(models_root.absolute()),
        "INTEREST_QDRANT_PATH": str(qdrant),
        "INTEREST_STATS_FILE": str(stats_file),
    }
    env.pop("INTEREST_QDRANT_URL", None)
    env.pop("INTEREST_QDRANT_API_KEY", None)
    if server is not None:
        url, key, prefix = server
        env |= {
            "INTEREST_QDRANT_URL": url,
            "INTEREST_QDRANT_API_KEY": key,
            "INTEREST_QDRANT_COLLECTION_PREFIX": prefix,
        }
    log_path = workdir / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *module.split()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,  # no .env of the caller's folder: the environment says it all
        )
        try:
            with _exit_on_sigterm():
                yield SpawnedWorker(process, log_path, qdrant, stats_file)
        finally:
            _stop(process)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM ends this process through its ``finally`` blocks, as Ctrl-C does, so that
    the worker (in a session of its own, out of reach of the terminal's signals) is
    stopped too rather than left running. Python's default for SIGTERM is to die at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def worker_env(settings: Settings) -> dict[str, str]:
    """Every setting as its ``INTEREST_*`` variable (None: left unset, i.e. the default)."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = value.absolute()
        env[f"INTEREST_{name.upper()}"] = str(value)
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
