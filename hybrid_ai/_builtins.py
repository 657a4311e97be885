"""The built-in components, registered through the same hooks any plugin uses.

Stage modules import their heavy dependencies (torch, transformers, scikit-learn) only when a
stage warms up, so registering them here costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._expr import BUILTIN_FUNCTIONS
from ._merge import MERGE_POLICIES
from .hookspecs import hookimpl


@hookimpl
def hybrid_ai_stages() -> Mapping[str, Callable[..., Any]]:
    from .fusion import DecideStage, FuseStage
    from .kg._stage import KGLookupStage
    from .llm._stages import EmbedStage, FewShotStage
    from .llm._tasks import ExtractStage, ZeroShotStage
    from .ml import TextClassifierStage
    from .rules import RulesStage

    return {
        "decide": DecideStage,
        "embed": EmbedStage,
        "extract": ExtractStage,
        "few_shot": FewShotStage,
        "fuse": FuseStage,
        "kg_lookup": KGLookupStage,
        "rules": RulesStage,
        "text_classifier": TextClassifierStage,
        "zero_shot": ZeroShotStage,
    }


@hookimpl
def hybrid_ai_rule_functions() -> Mapping[str, Callable[..., Any]]:
    return dict(BUILTIN_FUNCTIONS)


@hookimpl
def hybrid_ai_merge_policies() -> Mapping[str, Callable[..., Any]]:
    return dict(MERGE_POLICIES)


@hookimpl
def hybrid_ai_fusion_strategies() -> Mapping[str, Callable[..., Any]]:
    from .fusion import FUSION_STRATEGIES

    return dict(FUSION_STRATEGIES)


@hookimpl
def hybrid_ai_kg_loaders() -> Mapping[str, Callable[..., Any]]:
    from .kg import LOADERS

    return dict(LOADERS)


@hookimpl
def hybrid_ai_llm_backends() -> Mapping[str, Callable[..., Any]]:
    from .llm import Encoder
    from .llm._generative import Generator

    return {"encoder": Encoder, "generative": Generator}


@hookimpl
def hybrid_ai_cli_commands() -> Mapping[str, Any]:
    from .ml import _cli as ml_cli

    return {"train": ml_cli.train, "eval": ml_cli.evaluate}
