"""EmbeddingCache: keys, LRU bound, disk persistence, safety of what it hands out."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from hybrid_ai._errors import InputError
from hybrid_ai.llm import EmbeddingCache, cache_key

MODEL, TASK = "model-abc", "mean"


def _vecs(n: int, dim: int = 4) -> np.ndarray:
    return np.arange(n * dim, dtype=np.float32).reshape(n, dim)


def test_key_is_stable_and_separates_every_part() -> None:
    key = cache_key(MODEL, TASK, "hello")
    assert key == cache_key(MODEL, TASK, "hello") and len(key) == 64
    others = {
        cache_key("other", TASK, "hello"),
        cache_key(MODEL, "cls", "hello"),
        cache_key(MODEL, TASK, "hello!"),
    }
    assert key not in others and len(others) == 3
    # Without a length prefix these two would hash the same bytes.
    assert cache_key("ab", "c", "") != cache_key("a", "bc", "")


def test_memory_hits_and_misses_are_counted() -> None:
    cache = EmbeddingCache()
    assert cache.get_many(MODEL, TASK, ["a", "b"]) == [None, None]
    cache.put_many(MODEL, TASK, ["a", "b"], _vecs(2))
    got = cache.get_many(MODEL, TASK, ["b", "c", "a"])
    assert got[1] is None
    np.testing.assert_array_equal(got[0], _vecs(2)[1])
    np.testing.assert_array_equal(got[2], _vecs(2)[0])
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.disk_hits, stats.entries) == (2, 3, 0, 2)


def test_task_and_model_are_part_of_the_key() -> None:
    cache = EmbeddingCache()
    cache.put_many(MODEL, TASK, ["a"], _vecs(1))
    assert cache.get_many(MODEL, "other-task", ["a"]) == [None]
    assert cache.get_many("other-model", TASK, ["a"]) == [None]


def test_lru_is_bounded_and_keeps_recently_used() -> None:
    cache = EmbeddingCache(max_entries=2)
    cache.put_many(MODEL, TASK, ["a", "b"], _vecs(2))
    cache.get_many(MODEL, TASK, ["a"])  # "a" is now the most recent, so "b" goes first
    cache.put_many(MODEL, TASK, ["c"], _vecs(1))
    hits = [v is not None for v in cache.get_many(MODEL, TASK, ["a", "b", "c"])]
    assert hits == [True, False, True]
    assert cache.stats().entries == 2


def test_handed_out_vectors_are_read_only_copies() -> None:
    cache = EmbeddingCache()
    source = _vecs(1)
    cache.put_many(MODEL, TASK, ["a"], source)
    source[0, 0] = 99.0  # changing the caller's array must not reach the cache
    (got,) = cache.get_many(MODEL, TASK, ["a"])
    assert got is not None and got[0] == 0.0
    with pytest.raises(ValueError):
        got[0] = 1.0


def test_disk_entries_survive_a_new_cache_object(tmp_path: Path) -> None:
    EmbeddingCache(directory=tmp_path).put_many(MODEL, TASK, ["a", "b"], _vecs(2))
    files = sorted(tmp_path.glob("*/*.npy"))
    assert len(files) == 2
    assert all(f.parent.name == f.name[:2] for f in files)  # sharded by key prefix
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temp files

    fresh = EmbeddingCache(directory=tmp_path)
    got = fresh.get_many(MODEL, TASK, ["a", "b", "c"])
    np.testing.assert_array_equal(np.stack([got[0], got[1]]), _vecs(2))  # type: ignore[list-item]
    assert got[2] is None
    assert fresh.stats().disk_hits == 2
    fresh.get_many(MODEL, TASK, ["a"])  # now promoted to memory: no second disk read
    assert fresh.stats().disk_hits == 2


def test_disk_only_cache_with_zero_memory_entries(tmp_path: Path) -> None:
    cache = EmbeddingCache(max_entries=0, directory=tmp_path)
    cache.put_many(MODEL, TASK, ["a"], _vecs(1))
    assert cache.stats().entries == 0
    assert cache.get_many(MODEL, TASK, ["a"])[0] is not None


def test_unreadable_disk_entry_is_a_miss(tmp_path: Path) -> None:
    EmbeddingCache(directory=tmp_path).put_many(MODEL, TASK, ["a", "b"], _vecs(2))
    key_a = cache_key(MODEL, TASK, "a")
    (tmp_path / key_a[:2] / f"{key_a}.npy").write_bytes(b"not an npy file")
    key_b = cache_key(MODEL, TASK, "b")
    # A pickled object array must be refused, never unpickled.
    np.save(tmp_path / key_b[:2] / f"{key_b}.npy", np.array([{"x": 1}], dtype=object))
    assert EmbeddingCache(directory=tmp_path).get_many(MODEL, TASK, ["a", "b"]) == [None, None]


def test_clear_forgets_memory_disk_and_counters_but_not_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    cache = EmbeddingCache(directory=tmp_path)
    cache.put_many(MODEL, TASK, ["a"], _vecs(1))
    cache.get_many(MODEL, TASK, ["a"])
    cache.clear()
    assert cache.stats().hits == 0 and cache.stats().entries == 0
    assert cache.get_many(MODEL, TASK, ["a"]) == [None]
    assert not list(tmp_path.glob("*/*.npy"))
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_put_many_rejects_mismatched_lengths() -> None:
    with pytest.raises(InputError, match="2 texts but 1 vectors"):
        EmbeddingCache().put_many(MODEL, TASK, ["a", "b"], _vecs(1))
    with pytest.raises(InputError):
        EmbeddingCache(max_entries=-1)


def test_concurrent_use_keeps_the_bound_and_the_values(tmp_path: Path) -> None:
    cache = EmbeddingCache(max_entries=50, directory=tmp_path)
    texts = [f"t{i}" for i in range(200)]
    vectors = _vecs(200)

    def work() -> None:
        for start in range(0, 200, 20):
            cache.put_many(MODEL, TASK, texts[start : start + 20], vectors[start : start + 20])
            cache.get_many(MODEL, TASK, texts[:40])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.stats().entries <= 50
    got = EmbeddingCache(directory=tmp_path).get_many(MODEL, TASK, texts)
    np.testing.assert_array_equal(np.stack(got), vectors)  # type: ignore[arg-type]
