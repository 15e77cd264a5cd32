"""The vector store: one interface, its backends beside it, and the facade that picks one.

    store = open_store(url="http://qdrant:6333", api_key="...")   # a Qdrant server
    store = open_store(path=Path("data/qdrant-edge"))              # Qdrant Edge, embedded
    store = store_for(settings)                                    # what the settings name

- ``base.py``: the :class:`Store` interface with the logic every backend shares (point ids,
  payloads, the older-write guard, aliases), and its records (:class:`Hit`, :class:`UserPoint`).
- ``qdrant.py``: :class:`QdrantStore` over qdrant-client (a server, or local mode).
- ``edge.py``: :class:`EdgeStore` over qdrant-edge-py (the embedded default).
- ``facade.py``: :func:`open_store`, which picks the backend from plain arguments.
- ``settings.py``: :func:`store_for`, the one adapter from Settings to these arguments.
"""

from __future__ import annotations

from streams.store.base import (
    ITEMS,
    USER_VECTORS,
    USERS,
    Hit,
    Store,
    StoreError,
    UserPoint,
    collection,
    concepts_of,
    point_id,
    recent_items,
    user_payload,
)
from streams.store.edge import EdgeStore
from streams.store.facade import backend_for, open_store
from streams.store.qdrant import QdrantStore
from streams.store.settings import store_for

__all__ = [
    "ITEMS",
    "USERS",
    "USER_VECTORS",
    "EdgeStore",
    "Hit",
    "QdrantStore",
    "Store",
    "StoreError",
    "UserPoint",
    "backend_for",
    "collection",
    "concepts_of",
    "open_store",
    "point_id",
    "recent_items",
    "store_for",
    "user_payload",
]
