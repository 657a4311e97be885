"""Fit a text classifier, save it with skops plus a JSON model card, and load it back safely.

Usage: ``save_model(train(texts, labels, fusion="stacking"), "out/"); load_model("out/")``.

Files are written with skops, never pickle: loading only builds the types listed in
:data:`TRUSTED_TYPES` or defined by scikit-learn itself (``sklearn.*``: any estimator a stage
may name), and a file that holds anything else is refused before any of it is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import platform
import time
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import InputError, MissingDependencyError
from .._files import read_text
from ._features import EmbeddingStore, default_store
from ._models import build_classifier, feature_groups

__all__ = [
    "CARD_FILE",
    "MODEL_FILE",
    "TRUSTED_TYPES",
    "TrainedModel",
    "data_hash",
    "label_warnings",
    "load_model",
    "save_model",
    "train",
    "train_records",
]

MODEL_FILE = "model.skops"
CARD_FILE = "model_card.json"
_SKOPS_INSTALL = "pip install skops"

# Everything a model built by build_classifier may hold; skops refuses any other type.
TRUSTED_TYPES: tuple[str, ...] = (
    "hybrid_ai.ml._cheap.WordVectors",
    "hybrid_ai.ml._features.EmbeddingFeatures",
    "hybrid_ai.ml._features.FusedFeatures",
    "hybrid_ai.ml._features.NumericFeatures",
    "hybrid_ai.ml._features.TfidfFeatures",
    "hybrid_ai.ml._features.TokenFeatures",
    "hybrid_ai.ml._models.GatedEnsemble",
    "hybrid_ai.ml._models.OOFWeightedVote",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.slice",
    "collections.defaultdict",
    "numpy.dtype",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.ndarray",
    "scipy.sparse._csr.csr_matrix",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._stacking.StackingClassifier",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
)


@dataclass
class TrainedModel:
    """A fitted classifier and its card: ``TrainedModel(clf, card).predict(["hi"])``."""

    classifier: Any
    card: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Labels for texts: ``model.predict(["Where is my card?"]) == ["card_arrival"]``."""
        return [str(label) for label in self.classifier.predict(list(texts))]

    def predict_proba(self, texts: Sequence[str]) -> Any:
        """Class probabilities, columns in ``classifier.classes_`` order."""
        return self.classifier.predict_proba(list(texts))


def data_hash(texts: Sequence[Any], labels: Sequence[Any]) -> str:
    """sha256 over (text, label) pairs in order: the card's record of the training data.

    A record (a dict) counts by its text and fields, in key order.
    """
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        if isinstance(text, dict):
            text = json.dumps([text.get("text", ""), text.get("fields", {})], sort_keys=True,
                              default=str)
        for part in (str(text), str(label)):
            raw = part.encode("utf-8", "surrogatepass")
            digest.update(len(raw).to_bytes(8, "little") + raw)  # length-prefixed: no collisions
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("hybrid-ai", "scikit-learn", "numpy", "scipy", "skops"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def train(texts: Sequence[str], labels: Sequence[str], *, features: str = "fused",
          model: str = "logistic_regression", params: Mapping[str, Any] | None = None,
          fusion: str = "concat", store: EmbeddingStore | None = None,
          dataset: str | None = None, cv: int = 5) -> TrainedModel:
    """Fit on labelled texts: ``train(texts, labels, features="tfidf")``."""
    if len(texts) != len(labels) or not texts:
        raise InputError(f"need as many labels as texts, got {len(texts)} and {len(labels)}")
    _two_classes([str(label) for label in labels])
    groups = feature_groups(features)
    classifier = build_classifier(groups, model, params, fusion=fusion, store=store, cv=cv)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_iter was reached.*")
        classifier.fit(list(texts), list(labels))
    card = {
        "dataset": dataset, "n_train": len(texts), "data_sha256": data_hash(texts, labels),
        "features": list(groups), "model": model, "params": dict(params or {}), "fusion": fusion,
        "cv": cv, "classes": sorted({str(label) for label in labels}),
        "fit_seconds": round(time.perf_counter() - started, 2), "versions": _versions(),
    }
    if warned := label_warnings(labels):
        card["warnings"] = warned
    if "embedding" in groups:
        card["encoder"] = _encoder_id(store)
        if store is not None and store.model_path:
            card["encoder_path"] = str(store.model_path)
    return TrainedModel(classifier, card)


def train_records(records: Sequence[Any], labels: Sequence[Any], *,
                  task: str = "classification", features: str | Sequence[str] = "fused",
                  model: str = "logistic_regression", params: Mapping[str, Any] | None = None,
                  fusion: str = "concat", calibration: str = "auto",
                  fields: Mapping[str, Sequence[str]] | None = None,
                  store: EmbeddingStore | None = None, cv: int = 5, search: bool = False,
                  dataset: str | None = None) -> TrainedModel:
    """Fit on records (or texts) for classification or regression, with an optional
    cross-validated search: ``train_records(records, labels, features="numeric", ...)``."""
    from ._models import build_classifier, build_regressor

    if len(records) != len(labels) or not records:
        raise InputError(f"need as many labels as records, got {len(records)} and {len(labels)}")
    groups = feature_groups(features)
    if task == "regression":
        values: list[Any] = [float(v) for v in labels]
        estimator = build_regressor(groups, model, params, store=store, fields=fields)
    else:
        values = [str(v) for v in labels]
        _two_classes(values)
        estimator = build_classifier(groups, model, params, fusion=fusion, store=store, cv=cv,
                                     fields=fields, calibration=calibration)
    started = time.perf_counter()
    found: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_iter was reached.*")
        if search:
            estimator, found = _search(estimator, list(records), values, task, cv)
        else:
            estimator.fit(list(records), values)
    card = {
        "dataset": dataset, "task": task, "n_train": len(records),
        "data_sha256": data_hash(list(records), values), "features": list(groups),
        "fields": dict(fields or {}), "model": model, "params": dict(params or {}),
        "fusion": fusion if task == "classification" else "concat", "calibration": calibration,
        "cv": cv, "fit_seconds": round(time.perf_counter() - started, 2),
        "versions": _versions(),
    }
    if task == "classification":
        card["classes"] = sorted(set(values))
        if warned := label_warnings(values):
            card["warnings"] = warned
    if found:
        card["search"] = found
    if "embedding" in groups:
        card["encoder"] = _encoder_id(store)
        if store is not None and store.model_path:
            card["encoder_path"] = str(store.model_path)
    return TrainedModel(estimator, card)


def label_warnings(labels: Sequence[Any], shown: int = 20) -> list[str]:
    """Warnings about the training labels: those with a single example (nothing to learn
    them from; cross-validated fusions and calibration cannot stratify them)."""
    counts = Counter(str(label) for label in labels)
    single = sorted(label for label, n in counts.items() if n == 1)
    if not single:
        return []
    more = f" and {len(single) - shown} more" if len(single) > shown else ""
    return [f"{len(single)} label(s) have a single training example: "
            f"{', '.join(map(repr, single[:shown]))}{more}; add examples or merge them"]


def _two_classes(labels: Sequence[str]) -> None:
    if len(set(labels)) < 2:
        raise InputError(f"need at least two classes to train, got {sorted(set(labels))}; "
                         "add examples of another label")


# Small grids over the parameters most estimators share; only those the estimator has are used.
_GRIDS: dict[str, list[Any]] = {
    "C": [0.3, 1.0, 3.0, 10.0, 30.0],
    "alpha": [0.01, 0.1, 1.0, 10.0],
    "max_depth": [None, 4, 8],
    "learning_rate": [0.03, 0.1, 0.3],
}


def _search(estimator: Any, records: list[Any], values: list[Any], task: str,
            cv: int) -> tuple[Any, dict[str, Any]]:
    """Grid search (``cv`` folds) over :data:`_GRIDS` for the final model of a pipeline."""
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    names = set(estimator.get_params())
    grid = {f"model__{k}": v for k, v in _GRIDS.items() if f"model__{k}" in names}
    grid |= {f"model__estimator__{k}": v for k, v in _GRIDS.items()
             if f"model__estimator__{k}" in names and f"model__{k}" not in names}
    if not grid:
        estimator.fit(records, values)
        return estimator, {"skipped": "no searchable parameter (ensembles are not searched)"}
    folds = (StratifiedKFold(cv, shuffle=True, random_state=0) if task == "classification"
             else KFold(cv, shuffle=True, random_state=0))
    scoring = "accuracy" if task == "classification" else "neg_mean_absolute_error"
    search = GridSearchCV(estimator, grid, cv=folds, scoring=scoring, n_jobs=1)
    search.fit(records, values)
    return search.best_estimator_, {"grid": grid, "best_params": search.best_params_,
                                    "cv_score": float(search.best_score_), "scoring": scoring}


def _encoder_id(store: EmbeddingStore | None) -> str:
    encoder = (store or default_store()).encoder
    return str(getattr(encoder, "model_id", type(encoder).__name__))


def _skops() -> Any:
    try:
        # importlib rather than import: skops has no type information for mypy to read.
        return importlib.import_module("skops.io")
    except ImportError as exc:
        raise MissingDependencyError("skops (safe model files)", _SKOPS_INSTALL) from exc


def save_model(trained: TrainedModel, directory: str | Path) -> Path:
    """Write ``model.skops`` and ``model_card.json`` into a folder; returns the model file."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODEL_FILE
    # Deflate: the vocabularies and coefficient arrays compress several-fold.
    _skops().dump(trained.classifier, path, compression=zipfile.ZIP_DEFLATED)
    card = trained.card | {"model_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2, default=str) + "\n",
                                    encoding="utf-8")
    return path


def _sklearn_type(name: str) -> bool:
    """A class defined by scikit-learn itself (a private helper class too, not a function).

    The class must live where its name says: scikit-learn's modules import foreign classes
    (``functools.partial``, ``gzip.GzipFile``), and a tampered file can name one of them by
    the module that imported it.
    """
    if not name.startswith("sklearn."):
        return False
    module, _, attr = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return (isinstance(found, type) and found.__module__ == module
            and found.__qualname__ == attr)


def load_model(path: str | Path) -> TrainedModel:
    """Load a folder written by :func:`save_model` (or its .skops file); untrusted types refuse."""
    target = Path(path)
    model_file = target / MODEL_FILE if target.is_dir() else target
    if not model_file.is_file():
        raise InputError(f"no model file at {model_file}; train one with `hybrid-ai train`")
    sio = _skops()
    with _unreadable(model_file):
        found = set(sio.get_untrusted_types(file=model_file))
    untrusted = sorted(t for t in found - set(TRUSTED_TYPES) if not _sklearn_type(t))
    if untrusted:
        raise InputError(f"{model_file} holds types that are not trusted: {', '.join(untrusted)};"
                         " refusing to load it")
    with _unreadable(model_file):
        classifier = sio.load(model_file, trusted=sorted(found | set(TRUSTED_TYPES)))
    card = _read_card(model_file.parent / CARD_FILE)
    _check_estimator(classifier, model_file, card)
    if card.get("encoder_path"):  # embeddings must come from the encoder it was trained on
        from ._model_stage import _attach_store

        _attach_store(classifier, EmbeddingStore(model_path=card["encoder_path"]))
    return TrainedModel(classifier, card)


@contextlib.contextmanager
def _unreadable(model_file: Path) -> Iterator[None]:
    """A damaged model file (truncated, not a zip, missing parts) becomes an InputError."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError, EOFError,
            OSError) as exc:
        raise InputError(f"{model_file} is not a model file written by `hybrid-ai train` "
                         f"({type(exc).__name__}: {exc}); retrain it or restore the "
                         "folder") from None


def _read_card(card_file: Path) -> dict[str, Any]:
    """The model card (``{}`` when there is none); a card that is not a JSON object is an
    InputError naming the line and column."""
    if not card_file.is_file():
        return {}
    text = read_text(card_file, "model card", InputError)
    try:
        card = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{card_file}:{exc.lineno}:{exc.colno}: the model card is not valid "
                         f"JSON ({exc.msg}); restore it or retrain the model") from None
    if not isinstance(card, dict):
        raise InputError(f"{card_file}: the model card must be a JSON object, got "
                         f"{type(card).__name__}; restore it or retrain the model")
    return card


def _check_estimator(classifier: Any, model_file: Path, card: Mapping[str, Any]) -> None:
    """The loaded object can predict (and, for a classifier, give probabilities)."""
    needed = ["predict"] if card.get("task") == "regression" else ["predict", "predict_proba"]
    lacking = [name for name in needed if not callable(getattr(classifier, name, None))]
    if lacking:
        raise InputError(f"{model_file} holds a {type(classifier).__name__}, not a fitted "
                         f"model (it has no {' or '.join(lacking)}); retrain it with "
                         "`hybrid-ai train`")
