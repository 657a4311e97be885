"""Classical ML over text: features, models, fusion, training, evaluation and datasets.

Usage: ``model = train(*load_dataset("sms_spam")[:2], features="fused", fusion="stacking")``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._stages import TextClassifierStage

if TYPE_CHECKING:
    from ._datasets import DATASETS, TextDataset, load_dataset
    from ._eval import THRESHOLDS, ablation, cascade_curve, cascade_pick, evaluate, metrics
    from ._features import (
        FEATURE_GROUPS,
        EmbeddingFeatures,
        EmbeddingStore,
        FusedFeatures,
        TfidfFeatures,
        default_store,
    )
    from ._models import (
        FEATURE_SETS,
        FUSIONS,
        MODELS,
        OOFWeightedVote,
        build_classifier,
        feature_groups,
        make_model,
    )
    from ._train import TRUSTED_TYPES, TrainedModel, data_hash, load_model, save_model, train

# Everything but the stage loads on first use: the engine imports this package to register
# text_classifier, and scikit-learn/scipy cost about a second to import.
_LAZY = {
    "DATASETS": "_datasets", "TextDataset": "_datasets", "load_dataset": "_datasets",
    "THRESHOLDS": "_eval", "ablation": "_eval", "cascade_curve": "_eval", "cascade_pick": "_eval",
    "evaluate": "_eval", "metrics": "_eval",
    "FEATURE_GROUPS": "_features", "EmbeddingFeatures": "_features",
    "EmbeddingStore": "_features", "FusedFeatures": "_features", "TfidfFeatures": "_features",
    "default_store": "_features",
    "FEATURE_SETS": "_models", "FUSIONS": "_models", "MODELS": "_models",
    "OOFWeightedVote": "_models", "build_classifier": "_models", "feature_groups": "_models",
    "make_model": "_models",
    "TRUSTED_TYPES": "_train", "TrainedModel": "_train", "data_hash": "_train",
    "load_model": "_train", "save_model": "_train", "train": "_train",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DATASETS",
    "FEATURE_GROUPS",
    "FEATURE_SETS",
    "FUSIONS",
    "MODELS",
    "THRESHOLDS",
    "TRUSTED_TYPES",
    "EmbeddingFeatures",
    "EmbeddingStore",
    "FusedFeatures",
    "OOFWeightedVote",
    "TextClassifierStage",
    "TextDataset",
    "TfidfFeatures",
    "TrainedModel",
    "ablation",
    "build_classifier",
    "cascade_curve",
    "cascade_pick",
    "data_hash",
    "default_store",
    "evaluate",
    "feature_groups",
    "load_dataset",
    "load_model",
    "make_model",
    "metrics",
    "save_model",
    "train",
]
