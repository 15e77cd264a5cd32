"""The Qdrant store: versioned collections behind the ``items`` and ``users`` aliases.

    store = QdrantStore.connect(url=None, path=Path("data/qdrant"))   # embedded (local mode)
    store = QdrantStore.connect(url="http://qdrant:6333", api_key="…")  # a server
    store.ensure_version("3fa9c2d1e0b4", dimension=384)   # items__v, users__v; aliases if none
    store.upsert_items(version, [("1", vector, {"text": "Toy Story (1995)"})])
    store.upsert_users(version, [UserPoint(...)])        # skips writes older than what is stored
    store.recommend("42", k=10)                          # the one call a downstream service makes

The embedded default and the server go through the same qdrant-client calls. Point ids are
deterministic (uuid5 of the id), so every write is idempotent. A collection only ever holds
one model version's vectors; readers go through the aliases.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from streams.errors import StreamError

NAMESPACE = uuid.UUID("6f1d8c2a-5b7e-4c1f-9a3d-2e8b7c6d5f40")
ITEMS, USERS = "items", "users"


class StoreError(StreamError):
    """Qdrant refused or failed a call. Transient for the stream: it retries, never dead-letters."""


def point_id(kind: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{key}"))


def collection(kind: str, version: str) -> str:
    return f"{kind}__{version}"


@dataclasses.dataclass(frozen=True)
class UserPoint:
    user_id: str
    vectors: dict[str, np.ndarray]  # "short", "long"
    updated_at: float
    event_count: int
    concepts: list[tuple[str, float]]
    recent_items: list[str] = dataclasses.field(default_factory=list)  # newest last, bounded


class QdrantStore:
    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    @classmethod
    def connect(
        cls, url: str | None = None, api_key: str | None = None, path: Path | None = None
    ) -> QdrantStore:
        """A server at ``url``; else the embedded store on disk at ``path``, or in memory
        when ``path`` is None or ":memory:" (nothing persists: for tests and benchmarks)."""
        if url:
            return cls(QdrantClient(url=url, api_key=api_key))
        if path is None or str(path) == ":memory:":
            return cls(QdrantClient(location=":memory:"))
        path.mkdir(parents=True, exist_ok=True)
        return cls(QdrantClient(path=str(path)))

    def close(self) -> None:
        self.client.close()

    # -- versions and aliases ------------------------------------------------------------

    def ensure_version(self, version: str, dimension: int, serve: bool | None = None) -> None:
        """Create ``items__v`` and ``users__v`` if missing; point the aliases at them when
        ``serve`` is true, or when ``serve`` is None and no alias exists yet."""
        names = {c.name for c in self.client.get_collections().collections}
        if collection(ITEMS, version) not in names:
            self.client.create_collection(
                collection(ITEMS, version),
                vectors_config=qm.VectorParams(size=dimension, distance=qm.Distance.COSINE),
            )
        if collection(USERS, version) not in names:
            self.client.create_collection(
                collection(USERS, version),
                vectors_config={
                    name: qm.VectorParams(size=dimension, distance=qm.Distance.COSINE)
                    for name in ("short", "long")
                },
            )
        if serve or (serve is None and self.serving() is None):
            self.switch(version)

    def serving(self) -> str | None:
        """The version the ``items`` alias points at, or None."""
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == ITEMS:
                return alias.collection_name.split("__", 1)[1]
        return None

    def switch(self, version: str) -> None:
        """Point both aliases at ``version`` in one request (atomic on a server)."""
        existing = {a.alias_name for a in self.client.get_aliases().aliases}
        ops: list[Any] = []
        for kind in (ITEMS, USERS):
            if kind in existing:
                ops.append(qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=kind)))
            ops.append(
                qm.CreateAliasOperation(
                    create_alias=qm.CreateAlias(
                        collection_name=collection(kind, version), alias_name=kind
                    )
                )
            )
        self.client.update_collection_aliases(change_aliases_operations=ops)

    # -- items -------------------------------------------------------------------------

    def upsert_items(
        self, version: str, items: Sequence[tuple[str, np.ndarray, dict[str, Any]]]
    ) -> None:
        if not items:
            return
        points = [
            qm.PointStruct(
                id=point_id("item", item_id),
                vector=vec.astype(np.float32).tolist(),
                payload={"item_id": item_id, "model_version": version, **payload},
            )
            for item_id, vec, payload in items
        ]
        self._call(self.client.upsert, collection(ITEMS, version), points=points, wait=True)

    def item_vectors(self, version: str, item_ids: Iterable[str]) -> dict[str, np.ndarray]:
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        records = self._call(
            self.client.retrieve,
            collection(ITEMS, version),
            ids=[point_id("item", i) for i in ids],
            with_vectors=True,
            with_payload=["item_id"],
        )
        return {r.payload["item_id"]: np.asarray(r.vector, dtype=np.float32) for r in records}

    # -- users -------------------------------------------------------------------------

    def upsert_users(self, version: str, users: Sequence[UserPoint]) -> int:
        """Write users; a user whose stored state has more events is left alone (an older
        write never overwrites a newer one). Returns how many were written."""
        if not users:
            return 0
        name = collection(USERS, version)
        stored = self._call(
            self.client.retrieve,
            name,
            ids=[point_id("user", u.user_id) for u in users],
            with_payload=["user_id", "event_count", "updated_at"],
        )
        newest = {
            r.payload["user_id"]: (r.payload["event_count"], r.payload["updated_at"])
            for r in stored
        }
        fresh = [
            u for u in users if (u.event_count, u.updated_at) >= newest.get(u.user_id, (-1, -1.0))
        ]
        points = [
            qm.PointStruct(
                id=point_id("user", u.user_id),
                vector={k: v.astype(np.float32).tolist() for k, v in u.vectors.items()},
                payload={
                    "user_id": u.user_id,
                    "updated_at": u.updated_at,
                    "event_count": u.event_count,
                    "model_version": version,
                    "concepts": [{"label": c, "p": p} for c, p in u.concepts],
                    "recent_items": u.recent_items,
                },
            )
            for u in fresh
        ]
        if points:
            self._call(self.client.upsert, name, points=points, wait=True)
        return len(points)

    def user(self, user_id: str, version: str | None = None) -> Any | None:
        name = collection(USERS, version) if version else USERS
        records = self._call(
            self.client.retrieve,
            name,
            ids=[point_id("user", user_id)],
            with_vectors=True,
            with_payload=True,
        )
        return records[0] if records else None

    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[Any]:
        """Items nearest the user's ``short`` vector: one query, through the aliases."""
        skip: list[int | str | uuid.UUID] = [point_id("item", i) for i in exclude]
        query_filter = qm.Filter(must_not=[qm.HasIdCondition(has_id=skip)]) if skip else None
        return self._call(
            self.client.query_points,
            ITEMS,
            query=point_id("user", user_id),
            lookup_from=qm.LookupLocation(collection=USERS, vector="short"),
            query_filter=query_filter,
            limit=k,
            with_payload=True,
        ).points

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError) as exc:
            raise StoreError(f"Qdrant {fn.__name__} on {args[0] if args else ''}: {exc}") from exc
        except Exception as exc:  # transport errors of the HTTP / gRPC client
            raise StoreError(f"Qdrant {fn.__name__} failed: {exc}") from exc
