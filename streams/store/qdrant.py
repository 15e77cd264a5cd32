"""The store over qdrant-client: a Qdrant server, or qdrant-client's local mode.

store = QdrantStore.connect("http://qdrant:6333", api_key="...")
store = QdrantStore.connect(path=Path("data/qdrant"))    # local mode on disk
store = QdrantStore.connect(url, key, prefix="staging_")  # staging_items__<v>, staging_items

A ``prefix`` keeps deployments (and tests) that share one server apart: every collection
and alias this store creates, reads or lists carries it, and the rest of the server is
invisible to it. The shared logic (streams/store/base.py) speaks of the unprefixed names.
"""

from __future__ import annotations

import urllib.parse
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from streams.store.base import ITEMS, USERS, Distance, Hit, Store, StoreError, point_id

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class QdrantStore(Store):
    """The store over qdrant-client: a server, or local mode on disk or in memory."""

    def __init__(
        self, client: QdrantClient, backend: str = "qdrant-server", prefix: str = ""
    ) -> None:
        self.client = client
        self.backend = backend
        self.prefix = prefix

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        api_key: str | None = None,
        path: Path | None = None,
        prefix: str = "",
    ) -> QdrantStore:
        """A server at ``url``; else local mode on disk at ``path``, or in memory when
        ``path`` is None or ":memory:" (nothing persists: for tests and benchmarks)."""
        if url:
            with warnings.catch_warnings():
                if urllib.parse.urlsplit(url).hostname in LOOPBACK:  # nothing on the wire
                    warnings.filterwarnings("ignore", "Api key is used with an insecure")
                # No version check: a background request per client, and a warning that
                # outlives a server stopped meanwhile (the store says what fails itself).
                client = QdrantClient(url=url, api_key=api_key, check_compatibility=False)
            return cls(client, prefix=prefix)
        if path is None or str(path) == ":memory:":
            return cls(QdrantClient(location=":memory:"), "qdrant-local-memory", prefix)
        path.mkdir(parents=True, exist_ok=True)
        return cls(QdrantClient(path=str(path)), "qdrant-local", prefix)

    def close(self) -> None:
        self.client.close()

    def _n(self, name: str) -> str:
        """The server's name of a collection or alias: with the prefix."""
        return self.prefix + name

    def collections(self) -> set[str]:
        """The collections that carry the prefix, without it."""
        p = self.prefix
        names = (c.name for c in self._call(self.client.get_collections).collections)
        return {n[len(p) :] for n in names if n.startswith(p)}

    def _create(
        self, name: str, dimension: int, named: Sequence[str], distance: Distance = "cosine"
    ) -> None:
        metric = qm.Distance.COSINE if distance == "cosine" else qm.Distance.DOT
        params = qm.VectorParams(size=dimension, distance=metric)
        config: Any = {n: params for n in named} if named else params
        self._call(self.client.create_collection, self._n(name), vectors_config=config)

    def aliases(self) -> dict[str, str]:
        p = self.prefix
        return {
            a.alias_name[len(p) :]: a.collection_name[len(p) :]
            for a in self._call(self.client.get_aliases).aliases
            if a.alias_name.startswith(p) and a.collection_name.startswith(p)
        }

    def _point_aliases(self, targets: Mapping[str, str]) -> None:
        """One request (atomic on a server): delete the old aliases, create the new ones."""
        existing = self.aliases()
        ops: list[Any] = []
        for alias, target in targets.items():
            if alias in existing:
                ops.append(
                    qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=self._n(alias)))
                )
            ops.append(
                qm.CreateAliasOperation(
                    create_alias=qm.CreateAlias(
                        collection_name=self._n(target), alias_name=self._n(alias)
                    )
                )
            )
        self._call(self.client.update_collection_aliases, change_aliases_operations=ops)

    def _upsert(self, name: str, points: Sequence[tuple[str, Any, dict[str, Any]]]) -> None:
        structs = [qm.PointStruct(id=i, vector=v, payload=p) for i, v, p in points]
        self._call(self.client.upsert, self._n(name), points=structs, wait=True)

    def _drop(self, name: str) -> None:
        self._call(self.client.delete_collection, self._n(name))

    def _delete(self, name: str, ids: Sequence[str]) -> None:
        selector = qm.PointIdsList(points=list(ids))
        self._call(self.client.delete, self._n(name), points_selector=selector)

    def _retrieve(
        self, name: str, ids: Sequence[str], payload: Sequence[str] | bool, vectors: bool
    ) -> list[Hit]:
        records = self._call(
            self.client.retrieve,
            self._n(name),
            ids=list(ids),
            with_payload=payload if isinstance(payload, bool) else list(payload),
            with_vectors=vectors,
        )
        return [Hit(str(r.id), r.payload or {}, vector=r.vector) for r in records]

    def count(self, name: str) -> int:
        return int(self._call(self.client.count, self._n(name)).count)

    def event_total(self) -> int:
        """The events counted over every user of the served version (a scroll through
        ``users``): what the benchmarks and tests check against the events sent."""
        total, offset = 0, None
        while True:
            points, offset = self._call(
                self.client.scroll,
                self._n(USERS),
                limit=1000,
                offset=offset,
                with_payload=["event_count"],
                with_vectors=False,
            )
            total += sum(int((p.payload or {}).get("event_count", 0)) for p in points)
            if offset is None:
                return total

    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        """The one call a downstream service makes: query ``items`` with the user's ``short``
        vector, looked up from ``users`` by id (``lookup_from``)."""
        skip: list[int | str | uuid.UUID] = [point_id("item", i) for i in exclude]
        query_filter = qm.Filter(must_not=[qm.HasIdCondition(has_id=skip)]) if skip else None
        points = self._call(
            self.client.query_points,
            self._n(ITEMS),
            query=point_id("user", user_id),
            lookup_from=qm.LookupLocation(collection=self._n(USERS), vector="short"),
            query_filter=query_filter,
            limit=k,
            with_payload=True,
        ).points
        return [Hit(str(p.id), p.payload or {}, score=p.score) for p in points]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError) as exc:
            raise StoreError(f"Qdrant {fn.__name__} on {args[0] if args else ''}: {exc}") from exc
        except Exception as exc:  # transport errors of the HTTP / gRPC client
            raise StoreError(f"Qdrant {fn.__name__} failed: {exc}") from exc
