"""Engines of the example applications, built and warmed once per test session."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from hybrid_ai import Engine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DATA = ROOT.parent / "shared" / "data"


def load_script(path: Path, name: str) -> ModuleType:
    """Import an example's script by path (example folders are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _engine(name: str) -> Iterator[Engine]:
    pipeline = EXAMPLES / name / "pipeline.yaml"
    # Our own examples: the plugin beside the credit pipeline is code we trust.
    with Engine.from_yaml(pipeline, trust_code=True) as engine:
        yield engine.warm_up()


@pytest.fixture(scope="session")
def evaluate() -> ModuleType:
    """``examples/evaluate.py`` as a module."""
    return load_script(EXAMPLES / "evaluate.py", "examples_evaluate")


@pytest.fixture(scope="session")
def triage(encoder: object) -> Iterator[Engine]:
    """The support-triage engine (needs the shared encoder and Banking77)."""
    if not (DATA / "text" / "banking77" / "train.csv").exists():
        pytest.skip("Banking77 is not in ../shared/data")
    yield from _engine("support-triage")


@pytest.fixture(scope="session")
def monitor(encoder: object) -> Iterator[Engine]:
    """The market-sentiment-monitor engine."""
    yield from _engine("market-sentiment-monitor")


@pytest.fixture(scope="session")
def credit() -> Iterator[Engine]:
    """The credit-decision engine (trains its risk model at warm-up)."""
    if not (DATA / "german_credit" / "german.data").exists():
        pytest.skip("German Credit is not in ../shared/data")
    yield from _engine("credit-decision")
