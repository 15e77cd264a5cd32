"""A bounded LRU cache of text vectors, keyed by (model version, text hash).

Keying on the version means a model swap can never serve an old model's vector, and the
hash (blake2b, 16 bytes) keeps long texts from pinning memory as dictionary keys.

    cache = VectorCache(max_entries=20_000)
    cache.put("3fa9c2d1e0b4", "Toy Story", vector)
    cache.get("3fa9c2d1e0b4", "Toy Story")   # -> vector or None
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np


def text_key(version: str, text: str) -> tuple[str, bytes]:
    return version, hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class VectorCache:
    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0 (0 turns the cache off)")
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, version: str, text: str) -> np.ndarray | None:
        return self.get_key(text_key(version, text))

    def get_key(self, key: tuple[str, bytes]) -> np.ndarray | None:
        """``get`` for a key already computed with :func:`text_key`."""
        if not self.max_entries:
            self.misses += 1
            return None
        vector = self._data.get(key)
        if vector is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return vector

    def put(self, version: str, text: str, vector: np.ndarray) -> None:
        self.put_key(text_key(version, text), vector)

    def put_key(self, key: tuple[str, bytes], vector: np.ndarray) -> None:
        """``put`` for a key already computed with :func:`text_key`."""
        if not self.max_entries:
            return
        frozen = np.array(vector, dtype=np.float32)  # a private copy callers cannot change
        frozen.flags.writeable = False
        self._data[key] = frozen
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def drop_version(self, version: str) -> int:
        """Forget every vector of one model version (after it is retired)."""
        stale = [k for k in self._data if k[0] == version]
        for k in stale:
            del self._data[k]
        return len(stale)

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
