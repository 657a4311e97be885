"""Saving with skops and a model card; loading refuses types outside the trusted list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_ai._errors import InputError
from hybrid_ai.ml import EmbeddingStore, load_model, save_model, train
from hybrid_ai.ml._train import CARD_FILE, _skops

from . import CountingEncoder, corpus


class Payload:
    """A type nobody trusted: loading a file that holds it must fail."""

    def __init__(self) -> None:
        self.note = "not a model"


def test_round_trip_keeps_predictions_and_writes_a_card(tmp_path: Path) -> None:
    texts, labels = corpus()
    trained = train(texts, labels, features="tfidf", fusion="concat", dataset="tiny")
    path = save_model(trained, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.predict(texts) == trained.predict(texts)
    card = json.loads((tmp_path / "model" / CARD_FILE).read_text())
    assert card["features"] == ["word", "char"] and card["n_train"] == len(texts)
    assert len(card["data_sha256"]) == 64 and card["versions"]["scikit-learn"]
    assert path.suffix == ".skops"


@pytest.mark.parametrize("fusion", ["stacking", "oof_vote"])
def test_fused_models_save_without_their_encoder(tmp_path: Path, fusion: str) -> None:
    texts, labels = corpus()
    store = EmbeddingStore(CountingEncoder())
    trained = train(texts, labels, fusion=fusion, store=store, cv=3)
    save_model(trained, tmp_path)
    loaded = load_model(tmp_path / "model.skops")
    assert list(loaded.classifier.classes_) == ["card", "refund"]


def test_untrusted_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    _skops().dump({"model": Payload()}, path)
    with pytest.raises(InputError, match="Payload"):
        load_model(path)


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="hybrid-ai train"):
        load_model(tmp_path)
