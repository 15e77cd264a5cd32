"""The embedded store on qdrant-edge-py: the Qdrant engine in-process, no server.

    store = EdgeStore.open(Path("data/qdrant-edge"))
    store.ensure_version(version, dimension=384)      # the Store API (streams/store/base.py)

Layout on disk: one Edge shard per collection (``<root>/items__<v>/``, ``<root>/users__<v>/``)
and the aliases in ``<root>/aliases.json``, replaced atomically (write, fsync, rename), so a
switch is all-or-nothing. Edge has no aliases or lookup_from of its own; the shared Store
logic resolves aliases, and :meth:`EdgeStore.recommend` reads the user's vector and then
queries the items shard: two in-process calls where a server takes one request. Edge has
no background optimizer either: the store runs it after every 50,000 points written to a
shard (index building, vacuum). Nor does it flush on its own: the store flushes a shard at
most every ``FLUSH_EVERY_S`` while it writes, as a server does. Until a flush, the space of
an overwritten payload is not reused, so without flushes the payload storage of users
rewritten window after window grows without bound.

One process owns the folder at a time (like qdrant-client's local mode): stop the worker
before ``interest-stream recommend`` reads the same folder, or point both at a server.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import qdrant_edge as qe

from streams.store.base import ITEMS, USERS, Distance, Hit, Store, StoreError, point_id

ALIASES = "aliases.json"
OPTIMIZE_EVERY = 50_000  # points written to a shard between two optimizer runs
FLUSH_EVERY_S = 5.0  # a shard written to is flushed this often (a Qdrant server's default)


class EdgeStore(Store):
    backend = "qdrant-edge"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shards: dict[str, qe.EdgeShard] = {}
        self._written: dict[str, int] = {}  # points written since the shard's last optimize
        self._flushed: dict[str, float] = {}  # monotonic time of the shard's last flush

    @classmethod
    def open(cls, root: Path) -> EdgeStore:
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def close(self) -> None:
        for shard in self.shards.values():
            shard.flush()
            shard.close()
        self.shards.clear()

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self.shards.get(name)
        if shard is None:
            if not (self.root / name).is_dir():
                raise StoreError(f"Qdrant Edge: no collection {name!r} under {self.root}")
            try:
                shard = qe.EdgeShard.load(str(self.root / name))
            except Exception as exc:
                if "WouldBlock" not in str(exc):
                    raise StoreError(f"Qdrant Edge: cannot open {self.root / name}: {exc}") from exc
                raise StoreError(
                    f"the embedded store {self.root} is held by another process (a running "
                    "worker: one process at a time); stop it to read the store here, or run "
                    "the workers on a Qdrant server (INTEREST_QDRANT_URL), which any number "
                    "of readers can query while they run"
                ) from None
            self.shards[name] = shard
        return shard

    def collections(self) -> set[str]:
        return {p.name for p in self.root.iterdir() if p.is_dir() and "__" in p.name}

    def _create(
        self, name: str, dimension: int, named: Sequence[str], distance: Distance = "cosine"
    ) -> None:
        metric = qe.Distance.Cosine if distance == "cosine" else qe.Distance.Dot
        params = qe.EdgeVectorParams(size=dimension, distance=metric)
        config = qe.EdgeConfig(vectors={n: params for n in named} if named else params)
        self.shards[name] = qe.EdgeShard.create(str(self.root / name), config)

    def aliases(self) -> dict[str, str]:
        path = self.root / ALIASES
        return dict(orjson.loads(path.read_bytes())) if path.exists() else {}

    def _point_aliases(self, targets: Mapping[str, str]) -> None:
        missing = set(targets.values()) - self.collections()
        if missing:
            raise StoreError(f"Qdrant Edge: no collection {sorted(missing)} to point an alias at")
        tmp = self.root / f".{ALIASES}.tmp"
        with tmp.open("wb") as f:
            f.write(orjson.dumps(self.aliases() | dict(targets)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / ALIASES)

    def _upsert(self, name: str, points: Sequence[tuple[str, Any, dict[str, Any]]]) -> None:
        op = qe.UpdateOperation.upsert_points(
            [qe.Point(id=i, vector=v, payload=p) for i, v, p in points]
        )
        shard = self._shard(name)
        self._call(shard.update, op)
        # Edge runs no optimizer thread of its own: build indexes and vacuum now and then.
        self._written[name] = self._written.get(name, 0) + len(points)
        if self._written[name] >= OPTIMIZE_EVERY:
            self._written[name] = 0
            self._call(shard.optimize)
        now = time.monotonic()
        if now - self._flushed.setdefault(name, now) >= FLUSH_EVERY_S:
            self._flushed[name] = now
            self._call(shard.flush)

    def _drop(self, name: str) -> None:
        shard = self.shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self.root / name)

    def _delete(self, name: str, ids: Sequence[str]) -> None:
        op = qe.UpdateOperation.delete_points([uuid.UUID(i) for i in ids])
        self._call(self._shard(name).update, op)

    def _retrieve(
        self, name: str, ids: Sequence[str], payload: Sequence[str] | bool, vectors: bool
    ) -> list[Hit]:
        records = self._call(
            self._shard(self.resolve(name)).retrieve,
            list(ids),
            with_payload=payload if isinstance(payload, bool) else list(payload),
            with_vector=vectors,
        )
        return [Hit(str(r.id), dict(r.payload or {}), vector=r.vector) for r in records]

    def count(self, name: str) -> int:
        return int(self._call(self._shard(self.resolve(name)).count, qe.CountRequest(exact=True)))

    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        # One read of the aliases for both names: a switch between two reads would query
        # one version's items with the other version's user vector.
        aliases = self.aliases()
        users, items = aliases.get(USERS, USERS), aliases.get(ITEMS, ITEMS)
        user = self._retrieve(users, [point_id("user", user_id)], False, True)
        if not user:
            return []
        skip: set[int | uuid.UUID | str] = {uuid.UUID(point_id("item", i)) for i in exclude}
        request = qe.QueryRequest(
            limit=k,
            query=qe.Query.Nearest(user[0].vector["short"]),
            filter=qe.Filter(must_not=[qe.HasIdCondition(skip)]) if skip else None,
            with_payload=True,
        )
        points = self._call(self._shard(items).query, request)
        return [Hit(str(p.id), dict(p.payload or {}), score=p.score) for p in points]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"Qdrant Edge {getattr(fn, '__name__', fn)} failed: {exc}") from exc
