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
    from .llm._entities import EntitiesStage
    from .llm._sentiment import SentimentStage
    from .llm._stages import EmbedStage, FewShotStage
    from .llm._tasks import ExtractStage, ZeroShotStage
    from .ml import CheapTextStage, MLModelStage, TextClassifierStage
    from .rules import RulesStage
    from .stream import WindowStage

    return {
        "cheap_text": CheapTextStage,
        "decide": DecideStage,
        "embed": EmbedStage,
        "entities": EntitiesStage,
        "extract": ExtractStage,
        "few_shot": FewShotStage,
        "fuse": FuseStage,
        "kg_lookup": KGLookupStage,
        "ml_model": MLModelStage,
        "rules": RulesStage,
        "sentiment": SentimentStage,
        "text_classifier": TextClassifierStage,
        "window": WindowStage,
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
    from .llm._http import ChatClient

    return {"encoder": Encoder, "generative": Generator, "openai": ChatClient}


@hookimpl
def hybrid_ai_cli_commands() -> Mapping[str, Any]:
    from .kg import _cli as kg_cli
    from .llm import _cli as llm_cli
    from .ml import _cli as ml_cli
    from .rules import _cli as rules_cli

    return {"eval": ml_cli.evaluate, "kg": kg_cli.app, "rules": rules_cli.app,
            "train": ml_cli.train, "tune-encoder": llm_cli.tune_encoder_command}
