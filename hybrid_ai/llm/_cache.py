"""A content-addressed embedding cache: an in-memory LRU in front of an optional ``.npy`` store.

Usage: ``cache = EmbeddingCache(directory=Path(".cache/emb")); Encoder(cache=cache)``.

A vector is filed under ``sha256(model_id, task, text)``, so a changed model, a changed setting
(folded into ``task``) or a changed text can never be served a stale vector. Disk entries are plain
``.npy`` files read with ``allow_pickle=False``: loading a cache directory never runs code.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hybrid_ai._errors import InputError

__all__ = ["CacheStats", "EmbeddingCache", "cache_key", "cache_root"]

_log = logging.getLogger(__name__)
_CACHE_ENV = "HYBRID_AI_CACHE_DIR"


def cache_root() -> Path:
    """``$HYBRID_AI_CACHE_DIR`` or ``~/.cache/hybrid-ai``: outside any checkout, shared by runs."""
    env = os.environ.get(_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hybrid-ai"
_HEX = frozenset("0123456789abcdef")

Vector = NDArray[np.float32]


def cache_key(model_id: str, task: str, text: str) -> str:
    """The sha256 hex key of one entry: ``cache_key("minilm-1a2b", "mean", "hi")``."""
    digest = hashlib.sha256()
    for part in (model_id, task, text):
        # Length-prefix every part so ("ab", "c") and ("a", "bc") can never share a key.
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """Counters since creation or the last ``clear()``: ``cache.stats().hits``."""

    hits: int
    misses: int
    disk_hits: int
    entries: int


class EmbeddingCache:
    """Thread-safe LRU of vectors, optionally backed by a directory: ``EmbeddingCache()``.

    ``max_entries`` bounds the memory layer (0 turns it off, leaving only the disk). Vectors
    handed out are read-only and shared; copy one before changing it.
    """

    def __init__(self, *, max_entries: int = 50_000, directory: str | Path | None = None) -> None:
        if max_entries < 0:
            raise InputError(f"max_entries must be 0 or more, got {max_entries}")
        self.max_entries = max_entries
        self.directory = Path(directory) if directory is not None else None
        self._memory: OrderedDict[str, Vector] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = self._disk_hits = 0

    def __repr__(self) -> str:
        return f"EmbeddingCache(max_entries={self.max_entries}, directory={self.directory!r})"

    def get_many(self, model_id: str, task: str, texts: Sequence[str]) -> list[Vector | None]:
        """Vectors in ``texts`` order, ``None`` per miss: ``cache.get_many(m, t, ["hi"])``."""
        keys = [cache_key(model_id, task, text) for text in texts]
        found = self._memory_get_many(keys)
        if self.directory is not None:
            pairs = zip(keys, found, strict=True)
            found = [self._disk_get(k) if v is None else v for k, v in pairs]
        self._count(found)
        return found

    def put_many(
        self, model_id: str, task: str, texts: Sequence[str], vectors: Sequence[Vector] | Vector
    ) -> None:
        """Store one vector per text: ``cache.put_many(m, t, ["hi"], np.ones((1, 3)))``."""
        if len(texts) != len(vectors):
            raise InputError(f"put_many got {len(texts)} texts but {len(vectors)} vectors")
        for text, vector in zip(texts, vectors, strict=True):
            stored = _frozen(vector)
            key = cache_key(model_id, task, text)
            self._memory_put(key, stored)
            if self.directory is not None:
                self._disk_put(key, stored)

    def stats(self) -> CacheStats:
        """Hit and miss counters: ``cache.stats().misses``."""
        with self._lock:
            return CacheStats(self._hits, self._misses, self._disk_hits, len(self._memory))

    def clear(self) -> None:
        """Forget everything, the disk entries included, and reset the counters."""
        with self._lock:
            self._memory.clear()
            self._hits = self._misses = self._disk_hits = 0
        if self.directory is not None and self.directory.is_dir():
            _remove_entries(self.directory)

    # -- memory layer ---------------------------------------------------------------------------

    def _memory_get_many(self, keys: list[str]) -> list[Vector | None]:
        # One lock round-trip per call, not per text: hits are the hot path of a warm cache.
        with self._lock:
            found = [self._memory.get(key) for key in keys]
            for key, vector in zip(keys, found, strict=True):
                if vector is not None:
                    self._memory.move_to_end(key)
        return found

    def _memory_put(self, key: str, vector: Vector) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._memory[key] = vector
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)

    def _count(self, found: list[Vector | None]) -> None:
        hits = sum(v is not None for v in found)
        with self._lock:
            self._hits += hits
            self._misses += len(found) - hits

    # -- disk layer -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        # 256 shards keep directories small enough for every filesystem to list quickly.
        return self.directory / key[:2] / f"{key}.npy"

    def _disk_get(self, key: str) -> Vector | None:
        path = self._path(key)
        try:
            loaded = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            # A torn or foreign file is only a miss: the vector is recomputed and rewritten.
            _log.warning("ignoring unreadable cache entry %s: %s", path, exc)
            return None
        if not isinstance(loaded, np.ndarray) or loaded.ndim != 1 or loaded.dtype != np.float32:
            _log.warning("ignoring cache entry %s: not a 1-d float32 vector", path)
            return None
        vector = _frozen(loaded)
        self._memory_put(key, vector)
        with self._lock:
            self._disk_hits += 1
        return vector

    def _disk_put(self, key: str, vector: Vector) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_save(path, vector)
        except OSError as exc:
            # The cache only saves time; a full or read-only disk must not fail the encoding.
            _log.warning("could not write cache entry %s: %s", path, exc)


def _frozen(vector: Vector | NDArray[np.generic]) -> Vector:
    """A read-only float32 1-d copy, so no caller can change what the cache hands to others."""
    array = np.array(vector, dtype=np.float32, copy=True).reshape(-1)
    array.flags.writeable = False
    return array


def _atomic_save(path: Path, vector: Vector) -> None:
    """Write to a temporary file beside ``path`` then rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, vector, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_entries(directory: Path) -> None:
    """Delete the cache's own shard folders and files, and nothing else in ``directory``."""
    for shard in directory.iterdir():
        if not (shard.is_dir() and len(shard.name) == 2 and set(shard.name) <= _HEX):
            continue
        for entry in [*shard.glob("*.npy"), *shard.glob(".*.tmp")]:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        with contextlib.suppress(OSError):
            shard.rmdir()
