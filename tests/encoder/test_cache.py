from __future__ import annotations

import numpy as np
import pytest

from encoder.cache import VectorCache


def vec(x: float) -> np.ndarray:
    return np.full(4, x, dtype=np.float32)


def test_least_recently_used_entry_is_evicted_first() -> None:
    cache = VectorCache(max_entries=2)
    cache.put("v1", "a", vec(1))
    cache.put("v1", "b", vec(2))
    assert cache.get("v1", "a") is not None  # "a" is now the most recent
    cache.put("v1", "c", vec(3))
    assert cache.get("v1", "b") is None
    assert cache.get("v1", "a") is not None
    assert len(cache) == 2


def test_hits_and_misses_are_counted() -> None:
    cache = VectorCache(max_entries=10)
    cache.put("v1", "a", vec(1))
    cache.get("v1", "a")
    cache.get("v1", "zzz")
    assert (cache.hits, cache.misses, cache.hit_ratio) == (1, 1, 0.5)


def test_versions_never_share_an_entry() -> None:
    cache = VectorCache(max_entries=10)
    cache.put("v1", "a", vec(1))
    assert cache.get("v2", "a") is None
    cache.put("v2", "a", vec(2))
    assert cache.drop_version("v1") == 1
    assert cache.get("v1", "a") is None
    assert cache.get("v2", "a")[0] == 2


def test_cached_vectors_are_private_and_read_only() -> None:
    cache = VectorCache(max_entries=10)
    original = vec(1)
    cache.put("v1", "a", original)
    original[:] = 9
    got = cache.get("v1", "a")
    assert got[0] == 1
    with pytest.raises(ValueError):
        got[0] = 5


def test_size_zero_turns_the_cache_off() -> None:
    cache = VectorCache(max_entries=0)
    cache.put("v1", "a", vec(1))
    assert cache.get("v1", "a") is None and len(cache) == 0
    with pytest.raises(ValueError):
        VectorCache(max_entries=-1)
