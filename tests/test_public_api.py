"""The public API: ``hybrid_ai.__all__`` is pinned, sorted, and every name in it exists."""

from __future__ import annotations

import importlib

import hybrid_ai

EXPECTED = [
    "BaseStage",
    "Blackboard",
    "BranchOutcome",
    "CascadeSpec",
    "Case",
    "CaseTimeoutError",
    "ConfigError",
    "Engine",
    "EvaluationError",
    "Explanation",
    "Expression",
    "ExpressionError",
    "Fact",
    "FactView",
    "Graph",
    "HybridAIError",
    "InputError",
    "Location",
    "MergePolicy",
    "MissingDependencyError",
    "NewFact",
    "ParallelSpec",
    "PipelineError",
    "PipelineSpec",
    "PluginError",
    "PluginInfo",
    "Plugins",
    "Problem",
    "Provenance",
    "Registry",
    "Result",
    "RouteSpec",
    "SerialSpec",
    "Stage",
    "StageError",
    "StageOutput",
    "StageOutputError",
    "StageSpec",
    "StageTimeoutError",
    "StageTrace",
    "UnknownComponentError",
    "UseSpec",
    "__version__",
    "build_graph",
    "cascade",
    "compile_expression",
    "hookimpl",
    "hookspec",
    "parallel",
    "read_pipeline",
    "route",
    "serial",
    "stage",
]


def test_all_is_pinned() -> None:
    assert hybrid_ai.__all__ == EXPECTED


def test_all_is_sorted_without_duplicates() -> None:
    assert hybrid_ai.__all__ == sorted(hybrid_ai.__all__)
    assert len(set(hybrid_ai.__all__)) == len(hybrid_ai.__all__)


def test_every_name_is_importable() -> None:
    module = importlib.import_module("hybrid_ai")
    for name in hybrid_ai.__all__:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from hybrid_ai import *", namespace)
    assert set(hybrid_ai.__all__) <= set(namespace)


def test_errors_share_one_root() -> None:
    errors = [getattr(hybrid_ai, n) for n in hybrid_ai.__all__ if n.endswith("Error")]
    assert errors
    for error in errors:
        assert issubclass(error, hybrid_ai.HybridAIError), error


def test_version_is_a_string() -> None:
    assert isinstance(hybrid_ai.__version__, str)
    assert hybrid_ai.__version__.count(".") >= 1
