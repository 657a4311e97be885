"""Tests of hybrid_ai.ml; the package holds a counting fake encoder and a tiny corpus."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


class CountingEncoder:
    """Deterministic 8-d vectors from a text hash; ``encoded`` lists every text it was given."""

    def __init__(self) -> None:
        self.encoded: list[str] = []
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        self.encoded.extend(texts)
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8)
                for t in texts]
        return np.asarray(rows, dtype=np.float32) / 255.0


def corpus(n: int = 24) -> tuple[list[str], list[str]]:
    """n short texts, two classes told apart by their words."""
    texts, labels = [], []
    for i in range(n):
        if i % 2:
            texts.append(f"my card {i} never arrived, where is the card")
            labels.append("card")
        else:
            texts.append(f"refund {i} please, I want my money back")
            labels.append("refund")
    return texts, labels
