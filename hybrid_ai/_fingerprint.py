"""Content fingerprints for cache keys: stable across runs, cheap for vectors.

    fingerprint({"text": "hi", "vec": numpy.ones(3)})   # -> 'a3f0...'
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["fingerprint"]


def fingerprint(*values: Any) -> str:
    """A blake2b hex digest of nested mappings, sequences, scalars and arrays."""
    digest = hashlib.blake2b(digest_size=16)
    for value in values:
        _feed(digest, value)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, Mapping):
        digest.update(b"{")
        for key in sorted(value, key=str):
            _feed(digest, str(key))
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    elif hasattr(value, "tobytes") and hasattr(value, "dtype"):
        digest.update(f"<{value.dtype}{getattr(value, 'shape', '')}>".encode())
        digest.update(value.tobytes())
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())
