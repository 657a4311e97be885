"""hybrid-ai: one engine for LLM understanding, rules, knowledge graphs and classical ML, with
one explanation per decision.

    from hybrid_ai import Engine
    engine = Engine.from_yaml("examples/support-triage/pipeline.yaml")
    result = engine.run("I think my card was stolen")
    print(result.decision, result.confidence)
    print(result.explain().text())
"""

from ._config import (
    CascadeSpec,
    ParallelSpec,
    PipelineSpec,
    RouteSpec,
    SerialSpec,
    StageSpec,
    UseSpec,
    cascade,
    parallel,
    read_pipeline,
    route,
    serial,
    stage,
)
from ._engine import Engine
from ._errors import (
    CaseTimeoutError,
    ConfigError,
    ExpressionError,
    HybridAIError,
    InputError,
    Location,
    MissingDependencyError,
    PipelineError,
    PluginError,
    Problem,
    StageError,
    StageOutputError,
    StageTimeoutError,
    UnknownComponentError,
)
from ._expr import EvaluationError, Expression, compile_expression
from ._facts import Blackboard, Case, Fact, FactView, NewFact, Provenance, StageOutput
from ._graph import Graph, build_graph
from ._merge import MergePolicy
from ._plugins import PluginInfo, Plugins, Registry
from ._result import Explanation, Result, StageTrace
from ._run import BranchOutcome
from ._stage import BaseStage, Stage
from .hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = [
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
