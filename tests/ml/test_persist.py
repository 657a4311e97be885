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


def _rehome(source: Path, target: Path, moves: dict[str, str]) -> None:
    """Copy a skops file, renaming the modules its schema records (what a tamperer does)."""
    import zipfile

    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "schema.json":
                text = data.decode()
                for old, new in moves.items():
                    text = text.replace(f'"__module__": "{old}"', f'"__module__": "{new}"')
                data = text.encode()
            zout.writestr(item, data)


def test_foreign_classes_named_by_a_sklearn_module_are_refused(tmp_path: Path) -> None:
    # scikit-learn's modules import functools.partial and gzip.GzipFile; a file that names them
    # through those modules must not pass for scikit-learn's own classes (loading it, then
    # predicting, would truncate any file the attacker names).
    import functools
    import gzip

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    step = FunctionTransformer()
    pipe = Pipeline([("f", step), ("lr", LogisticRegression())]).fit(
        np.array([[0.0], [1.0], [2.0], [3.0]]), ["a", "b", "a", "b"])
    step.func = functools.partial(gzip.GzipFile, str(victim), "wb")
    _skops().dump(pipe, tmp_path / "raw.skops")
    _rehome(tmp_path / "raw.skops", tmp_path / "model.skops", {
        "functools": "sklearn.preprocessing._function_transformer",
        "gzip": "sklearn.datasets._covtype"})
    with pytest.raises(InputError, match=r"not trusted.*partial"):
        load_model(tmp_path / "model.skops")
    assert victim.read_text() == "keep me\n"


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="hybrid-ai train"):
        load_model(tmp_path)
