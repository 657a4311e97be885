"""Feature groups, the shared embedding store, fusion across folds, and ablation."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_ai._errors import ConfigError, UnknownComponentError
from hybrid_ai.ml import (
    EmbeddingFeatures,
    EmbeddingStore,
    FusedFeatures,
    TfidfFeatures,
    ablation,
    build_classifier,
    make_model,
)

from . import CountingEncoder, corpus


def test_embedding_features_shape_and_each_text_encoded_once() -> None:
    encoder = CountingEncoder()
    features = EmbeddingFeatures(EmbeddingStore(encoder))
    texts = ["a", "b", "a", "c"]
    assert features.fit_transform(texts).shape == (4, 8)
    features.transform(["c", "d"])
    assert sorted(encoder.encoded) == ["a", "b", "c", "d"]


def test_tfidf_and_fused_groups() -> None:
    texts, _ = corpus()
    word = TfidfFeatures("word").fit(texts).transform(texts)
    store = EmbeddingStore(CountingEncoder())
    fused = FusedFeatures(store=store).fit(texts)
    assert [name for name, _ in fused.parts_] == ["word", "char", "embedding"]
    full = fused.transform(texts)
    dropped = FusedFeatures(drop=("char",), store=store).fit(texts).transform(texts)
    assert full.shape[0] == dropped.shape[0] == len(texts)
    assert dropped.shape[1] == word.shape[1] + 8 < full.shape[1]


def test_unknown_groups_and_models_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown feature group"):
        FusedFeatures(groups=("word", "bogus")).fit(["x"])
    with pytest.raises(ConfigError, match="leaves no feature group"):
        FusedFeatures(groups=("word",), drop=("word",)).fit(["x"])
    with pytest.raises(UnknownComponentError, match="logistic_regression"):
        make_model("eval_me")


@pytest.mark.parametrize("fusion", ["stacking", "oof_vote"])
def test_fusion_encodes_each_text_once_across_folds(fusion: str) -> None:
    texts, labels = corpus()
    encoder = CountingEncoder()
    clf = build_classifier("fused", fusion=fusion, store=EmbeddingStore(encoder), cv=3)
    clf.fit(texts, labels)
    proba = clf.predict_proba(texts[:4])
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert sorted(encoder.encoded) == sorted(set(texts))  # 3 folds + refit, one encoding each


def test_linear_svc_is_calibrated() -> None:
    texts, labels = corpus()
    clf = build_classifier("word", "linear_svc", {"cv": 2}).fit(texts, labels)
    assert clf.predict(["where is my card"])[0] == "card"
    assert 0.5 < clf.predict_proba(["where is my card"]).max() <= 1.0


def test_ablation_removes_each_group() -> None:
    texts, labels = corpus()
    store = EmbeddingStore(CountingEncoder())
    rows = ablation((texts, labels, texts, labels), store=store)
    assert [row["dropped"] for row in rows] == [None, "word", "char", "embedding"]
    assert rows[0]["delta_accuracy"] == 0.0
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)
