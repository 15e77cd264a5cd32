"""The Store interface: versioned collections behind the ``items`` and ``users`` aliases.

    store = open_store(url, api_key, path, backend)       # streams.store: picks the backend
    store.ensure_version("3fa9c2d1e0b4", dimension=384)   # items__v, users__v; aliases if none
    store.upsert_items(version, [("1", vector, {"text": "Toy Story (1995)"})])
    store.upsert_users(version, [UserPoint(...)])        # skips writes older than what is stored
    store.recommend("42", k=10)                          # what a downstream service asks

Two backends share this class's logic (point ids, payloads, the older-write guard, aliases)
and differ only in a handful of primitive calls:

- ``qdrant.py``, :class:`QdrantStore` (qdrant-client): a Qdrant server, or qdrant-client's
  local mode (embedded, pure Python) on disk or in memory. The compose stack uses it.
- ``edge.py``, :class:`EdgeStore` (qdrant-edge-py): the Qdrant engine in-process, one shard
  per collection. The embedded default, because it keeps up with the stream where local mode
  does not (README, "Benchmarks").

Point ids are deterministic (uuid5 of the id), so every write is idempotent. A collection
only ever holds one model version's vectors; readers go through the aliases.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import orjson

from streams.errors import TransientError

NAMESPACE = uuid.UUID("6f1d8c2a-5b7e-4c1f-9a3d-2e8b7c6d5f40")
ITEMS, USERS = "items", "users"
Distance = Literal["cosine", "dot"]
USER_VECTORS = ("short", "long")


class StoreError(TransientError):
    """Qdrant refused or failed a call. Transient for the stream: it retries, never dead-letters."""


@functools.lru_cache(maxsize=1 << 16)
def point_id(kind: str, key: str) -> str:
    """The point id of an item or user: uuid5 of ``kind:key`` (cached: hot users repeat)."""
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


@dataclasses.dataclass(frozen=True)
class Hit:
    """A point as the store returns it: id, payload, score (queries) and vectors (lookups)."""

    id: str
    payload: dict[str, Any]
    score: float = 0.0
    vector: Any = None  # a list, or {name: list} for named vectors


RecentItemsPayload = Literal["json", "list"]


def user_payload(
    u: UserPoint, version: str, recent_items: RecentItemsPayload = "json"
) -> dict[str, Any]:
    """The payload of a user point (DESIGN.md, "Contracts").

    ``recent_items`` is a JSON array inside one string by default, and ``concepts`` one
    object of ``label: p``: a payload value costs per element on every write (on Qdrant Edge
    a list of ``{label, p}`` objects cost about twice the rest of the point), and a user is
    written on every window that touches it. ``recent_items="list"`` writes a payload list
    instead, for downstream filters on a server.
    """
    return {
        "user_id": u.user_id,
        "updated_at": u.updated_at,
        "event_count": u.event_count,
        "model_version": version,
        "concepts": dict(u.concepts),
        "recent_items": (
            list(u.recent_items)
            if recent_items == "list"
            else orjson.dumps(u.recent_items).decode()
        ),
    }


def concepts_of(payload: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The user's top concepts as (label, p), most likely first, from a user payload (also
    the list of ``{label, p}`` that earlier versions wrote)."""
    raw = payload.get("concepts") or {}
    pairs = raw.items() if isinstance(raw, Mapping) else ((c["label"], c["p"]) for c in raw)
    return sorted(((str(c), float(p)) for c, p in pairs), key=lambda cp: -cp[1])


def recent_items(payload: Mapping[str, Any]) -> list[str]:
    """The user's recent item ids (newest last) from a user payload."""
    raw = payload.get("recent_items", "[]")
    return list(orjson.loads(raw)) if isinstance(raw, str) else list(raw)


class Store(abc.ABC):
    """Versions, aliases, items and users on top of a backend's primitive calls."""

    backend = "abstract"
    recent_items_payload: RecentItemsPayload = "json"  # how user_payload writes recent_items

    # -- primitives, one set per backend ------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def collections(self) -> set[str]: ...

    @abc.abstractmethod
    def _create(
        self, name: str, dimension: int, named: Sequence[str], distance: Distance = "cosine"
    ) -> None:
        """Create a collection: one unnamed vector, or the ``named`` vectors."""

    @abc.abstractmethod
    def aliases(self) -> dict[str, str]:
        """alias -> collection"""

    @abc.abstractmethod
    def _point_aliases(self, targets: Mapping[str, str]) -> None:
        """Point each alias at its collection, all at once."""

    @abc.abstractmethod
    def _upsert(self, name: str, points: Sequence[tuple[str, Any, dict[str, Any]]]) -> None:
        """Write (id, vector or {name: vector}, payload) points and wait for the ack."""

    @abc.abstractmethod
    def _drop(self, name: str) -> None:
        """Delete a whole collection."""

    @abc.abstractmethod
    def _delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id (missing ids are not an error)."""

    @abc.abstractmethod
    def _retrieve(
        self, name: str, ids: Sequence[str], payload: Sequence[str] | bool, vectors: bool
    ) -> list[Hit]: ...

    @abc.abstractmethod
    def count(self, name: str) -> int:
        """Points in a collection (or alias)."""

    @abc.abstractmethod
    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        """Items nearest the user's ``short`` vector, through the aliases."""

    # -- versions and aliases -------------------------------------------------------------

    def ensure_version(
        self,
        version: str,
        dimension: int,
        serve: bool | None = None,
        distance: Distance = "cosine",
    ) -> None:
        """Create ``items__v`` and ``users__v`` if missing; point the aliases at them when
        ``serve`` is true, or when ``serve`` is None and no alias exists yet. ``distance``:
        cosine for the encoder's vectors, dot for a learned head's ``[y, b]`` items and
        ``[q, 1]`` users."""
        names = self.collections()
        if collection(ITEMS, version) not in names:
            self._create(collection(ITEMS, version), dimension, (), distance)
        if collection(USERS, version) not in names:
            self._create(collection(USERS, version), dimension, USER_VECTORS, distance)
        if serve or (serve is None and self.serving() is None):
            self.switch(version)

    def serving(self) -> str | None:
        """The version the ``items`` alias points at, or None."""
        target = self.aliases().get(ITEMS)
        return target.split("__", 1)[1] if target else None

    def switch(self, version: str) -> None:
        """Point both aliases at ``version`` at once (a roll-out, or a roll-back)."""
        self._point_aliases({kind: collection(kind, version) for kind in (ITEMS, USERS)})

    def drop(self, version: str) -> list[str]:
        """Delete ``items__v`` and ``users__v`` of a version no alias points at (after a
        roll-out's grace period); returns the collections deleted."""
        served = set(self.aliases().values())
        names = [collection(kind, version) for kind in (ITEMS, USERS)]
        if served & set(names):
            raise StoreError(f"version {version} is served by the aliases: switch first")
        existing = [n for n in names if n in self.collections()]
        for name in existing:
            self._drop(name)
        return existing

    def resolve(self, name: str) -> str:
        """A collection name (``kind__version``), or the collection an alias points at."""
        return name if "__" in name else self.aliases().get(name, name)

    # -- items ----------------------------------------------------------------------------

    def upsert_items(
        self, version: str, items: Sequence[tuple[str, np.ndarray, dict[str, Any]]]
    ) -> None:
        if not items:
            return
        points = [
            (
                point_id("item", item_id),
                vec.astype(np.float32).tolist(),
                {"item_id": item_id, "model_version": version, **payload},
            )
            for item_id, vec, payload in items
        ]
        self._upsert(collection(ITEMS, version), points)

    def _items(
        self, version: str, item_ids: Iterable[str], payload: Sequence[str], vectors: bool
    ) -> list[Hit]:
        """The stored points of these items (each id once; unknown ids are left out)."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return []
        points = [point_id("item", i) for i in ids]
        return self._retrieve(collection(ITEMS, version), points, ["item_id", *payload], vectors)

    def item_vectors(self, version: str, item_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """What an event of each item folds: its vector, or a head's ``history`` payload
        (a head's items are stored as ``[y, b]``, what is searched)."""
        hits = self._items(version, item_ids, ["history"], True)
        return {
            h.payload["item_id"]: np.asarray(h.payload.get("history", h.vector), dtype=np.float32)
            for h in hits
        }

    def item_texts(self, version: str, item_ids: Iterable[str]) -> dict[str, str]:
        """The stored texts of items (the first 500 characters); unknown ids are left out."""
        hits = self._items(version, item_ids, ["text"], False)
        return {h.payload["item_id"]: h.payload.get("text", "") for h in hits}

    # -- users ----------------------------------------------------------------------------

    def upsert_users(self, version: str, users: Sequence[UserPoint]) -> int:
        """Write users; a user whose stored point has more events is left alone (an older
        write never overwrites a newer one). Returns how many were written."""
        if not users:
            return 0
        name = collection(USERS, version)
        ids = [point_id("user", u.user_id) for u in users]
        stored = self._retrieve(name, ids, ["event_count", "updated_at"], False)
        newest = {h.id: (h.payload["event_count"], h.payload["updated_at"]) for h in stored}
        points = [
            (
                pid,
                {k: v.astype(np.float32).tolist() for k, v in u.vectors.items()},
                user_payload(u, version, self.recent_items_payload),
            )
            for pid, u in zip(ids, users, strict=True)
            if (u.event_count, u.updated_at) >= newest.get(pid, (-1, -1.0))
        ]
        if points:
            self._upsert(name, points)
        return len(points)

    def forget_users(self, user_ids: Sequence[str]) -> None:
        """Delete these users' points from every version's users collection."""
        if not user_ids:
            return
        ids = [point_id("user", u) for u in user_ids]
        for name in sorted(self.collections()):
            if name.startswith(f"{USERS}__"):
                self._delete(name, ids)

    def user(self, user_id: str, version: str | None = None) -> Hit | None:
        name = collection(USERS, version) if version else self.resolve(USERS)
        hits = self._retrieve(name, [point_id("user", user_id)], True, True)
        return hits[0] if hits else None
