"""Classical ML over text: features, models, fusion, training, evaluation and datasets.

Usage: ``model = train(*load_dataset("sms_spam")[:2], features="fused", fusion="stacking")``;
pipelines: ``train_pipeline(spec, read_cases("train.csv"), output="models/")``. See
docs/models.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._cheap_stage import CheapTextStage
from ._model_stage import MLModelStage
from ._stages import TextClassifierStage

if TYPE_CHECKING:
    from ._cheap import (
        CHEAP_MEMBERS,
        WordVectors,
        cheap_classifier,
        stacking_oof,
    )
    from ._datasets import (
        DATASETS,
        TextDataset,
        load_dataset,
    )
    from ._eval import (
        THRESHOLDS,
        ablation,
        calibration,
        cascade_curve,
        cascade_pick,
        choose_threshold,
        confusion,
        deferral_curve,
        evaluate,
        fine_thresholds,
        metrics,
    )
    from ._features import (
        ALL_GROUPS,
        FEATURE_GROUPS,
        STRUCTURED_GROUPS,
        EmbeddingFeatures,
        EmbeddingStore,
        FusedFeatures,
        NumericFeatures,
        TfidfFeatures,
        TokenFeatures,
        cache_root,
        default_store,
    )
    from ._models import (
        CALIBRATIONS,
        FEATURE_SETS,
        FUSIONS,
        MODELS,
        GatedEnsemble,
        OOFWeightedVote,
        build_classifier,
        build_regressor,
        calibrated,
        feature_groups,
        make_model,
    )
    from ._pipeline import (
        PRESETS,
        CascadeGoal,
        LabelledCases,
        apply_thresholds,
        preset_pipeline,
        read_cases,
        train_pipeline,
    )
    from ._pipeline_eval import (
        eval_pipeline,
        score_results,
        tune_cascades,
    )
    from ._train import (
        TRUSTED_TYPES,
        TrainedModel,
        data_hash,
        load_model,
        save_model,
        train,
        train_records,
    )
    from ._weak import (
        ABSTAIN,
        DawidSkene,
        LabellingFunction,
        apply_lfs,
        lexicon_lf,
        lf_summary,
        majority_vote,
        rule_lf,
    )

# Everything but the stages loads on first use: the engine imports this package to register
# text_classifier and ml_model, and scikit-learn/scipy cost about a second to import.
_LAZY = {
    "CHEAP_MEMBERS": "_cheap",
    "WordVectors": "_cheap",
    "cheap_classifier": "_cheap",
    "stacking_oof": "_cheap",
    "DATASETS": "_datasets",
    "TextDataset": "_datasets",
    "load_dataset": "_datasets",
    "THRESHOLDS": "_eval",
    "ablation": "_eval",
    "calibration": "_eval",
    "cascade_curve": "_eval",
    "cascade_pick": "_eval",
    "choose_threshold": "_eval",
    "confusion": "_eval",
    "deferral_curve": "_eval",
    "evaluate": "_eval",
    "fine_thresholds": "_eval",
    "metrics": "_eval",
    "ALL_GROUPS": "_features",
    "FEATURE_GROUPS": "_features",
    "STRUCTURED_GROUPS": "_features",
    "EmbeddingFeatures": "_features",
    "EmbeddingStore": "_features",
    "FusedFeatures": "_features",
    "NumericFeatures": "_features",
    "TfidfFeatures": "_features",
    "TokenFeatures": "_features",
    "cache_root": "_features",
    "default_store": "_features",
    "CALIBRATIONS": "_models",
    "FEATURE_SETS": "_models",
    "FUSIONS": "_models",
    "MODELS": "_models",
    "GatedEnsemble": "_models",
    "OOFWeightedVote": "_models",
    "build_classifier": "_models",
    "build_regressor": "_models",
    "calibrated": "_models",
    "feature_groups": "_models",
    "make_model": "_models",
    "PRESETS": "_pipeline",
    "CascadeGoal": "_pipeline",
    "LabelledCases": "_pipeline",
    "apply_thresholds": "_pipeline",
    "preset_pipeline": "_pipeline",
    "read_cases": "_pipeline",
    "train_pipeline": "_pipeline",
    "eval_pipeline": "_pipeline_eval",
    "score_results": "_pipeline_eval",
    "tune_cascades": "_pipeline_eval",
    "TRUSTED_TYPES": "_train",
    "TrainedModel": "_train",
    "data_hash": "_train",
    "load_model": "_train",
    "save_model": "_train",
    "train": "_train",
    "train_records": "_train",
    "ABSTAIN": "_weak",
    "DawidSkene": "_weak",
    "LabellingFunction": "_weak",
    "apply_lfs": "_weak",
    "lexicon_lf": "_weak",
    "lf_summary": "_weak",
    "majority_vote": "_weak",
    "rule_lf": "_weak",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ABSTAIN",
    "ALL_GROUPS",
    "CALIBRATIONS",
    "CHEAP_MEMBERS",
    "DATASETS",
    "FEATURE_GROUPS",
    "FEATURE_SETS",
    "FUSIONS",
    "MODELS",
    "PRESETS",
    "STRUCTURED_GROUPS",
    "THRESHOLDS",
    "TRUSTED_TYPES",
    "CascadeGoal",
    "CheapTextStage",
    "DawidSkene",
    "EmbeddingFeatures",
    "EmbeddingStore",
    "FusedFeatures",
    "GatedEnsemble",
    "LabelledCases",
    "LabellingFunction",
    "MLModelStage",
    "NumericFeatures",
    "OOFWeightedVote",
    "TextClassifierStage",
    "TextDataset",
    "TfidfFeatures",
    "TokenFeatures",
    "TrainedModel",
    "WordVectors",
    "ablation",
    "apply_lfs",
    "apply_thresholds",
    "build_classifier",
    "build_regressor",
    "cache_root",
    "calibrated",
    "calibration",
    "cascade_curve",
    "cascade_pick",
    "cheap_classifier",
    "choose_threshold",
    "confusion",
    "data_hash",
    "default_store",
    "deferral_curve",
    "eval_pipeline",
    "evaluate",
    "feature_groups",
    "fine_thresholds",
    "lexicon_lf",
    "lf_summary",
    "load_dataset",
    "load_model",
    "majority_vote",
    "make_model",
    "metrics",
    "preset_pipeline",
    "read_cases",
    "rule_lf",
    "save_model",
    "score_results",
    "stacking_oof",
    "train",
    "train_pipeline",
    "train_records",
    "tune_cascades",
]
