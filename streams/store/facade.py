"""The facade that picks a backend from plain arguments (no Settings below this line).

open_store("http://qdrant:6333", api_key)        # a server
open_store(path=Path("data/qdrant-edge"))         # the embedded default
"""

from __future__ import annotations

from pathlib import Path

from streams.store.base import Store, StoreError
from streams.store.edge import EdgeStore
from streams.store.qdrant import QdrantStore


def backend_for(url: str | None, path: Path | None, backend: str = "edge") -> str:
    """The backend :func:`open_store` picks for these arguments, by its ``Store.backend`` name."""
    if url:
        return "qdrant-server"
    if path is None or str(path) == ":memory:":
        return "qdrant-local-memory"
    if backend not in ("edge", "local"):
        raise StoreError(f"unknown embedded Qdrant backend {backend!r} (edge or local)")
    return "qdrant-edge" if backend == "edge" else "qdrant-local"


def open_store(
    url: str | None = None,
    api_key: str | None = None,
    path: Path | None = None,
    backend: str = "edge",
    prefix: str = "",
) -> Store:
    """A server at ``url`` (qdrant-client); else the embedded store at ``path``: Qdrant Edge
    (``backend="edge"``) or qdrant-client's local mode (``"local"``). ``path=":memory:"``
    is local mode in memory, whatever the backend (nothing persists: tests, benchmarks).
    ``prefix``: of every collection and alias name, for deployments sharing one server."""
    if backend_for(url, path, backend) != "qdrant-edge":
        return QdrantStore.connect(url, api_key, path, prefix)
    assert path is not None  # backend_for says so
    if prefix:
        raise StoreError(
            f"a collection prefix ({prefix!r}) is for deployments sharing a Qdrant server "
            f"(INTEREST_QDRANT_URL); the embedded store at {path} belongs to one deployment: "
            "give each its own INTEREST_QDRANT_PATH"
        )
    return EdgeStore.open(path)
