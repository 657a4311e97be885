"""Classifiers by name, and the fusions of TF-IDF and embedding features.

Usage: ``clf = build_classifier("fused", "logistic_regression", fusion="stacking")``.

Only names in :data:`MODELS` can be built, so a config file never names an arbitrary class.
Every model exposes ``predict_proba`` (LinearSVC is wrapped in sigmoid calibration), because
the cascade and the engine's ``prediction`` facts read the top probability as confidence.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, UnknownComponentError
from ._features import FEATURE_GROUPS, EmbeddingStore, FusedFeatures

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, clone
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    from .._errors import MissingDependencyError

    raise MissingDependencyError("scikit-learn", "pip install scikit-learn") from exc

__all__ = [
    "FEATURE_SETS",
    "FUSIONS",
    "MODELS",
    "OOFWeightedVote",
    "build_classifier",
    "feature_groups",
    "make_model",
]


def _logistic_regression(**params: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    # saga with a loose tolerance: same accuracy as lbfgs to convergence, about 9x faster on
    # Banking77 (measured for TextClassifierStage); C=10 suits L2-normalised rows.
    # random_state: saga visits samples in random order, so without it refits differ slightly.
    defaults: dict[str, Any] = {"C": 10.0, "solver": "saga", "max_iter": 300, "tol": 1e-3,
                                "random_state": 0}
    return LogisticRegression(**(defaults | params))


def _linear_svc(**params: Any) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    cv = int(params.pop("cv", 3))
    svc = LinearSVC(**({"C": 0.5, "random_state": 0} | params))
    return CalibratedClassifierCV(svc, method="sigmoid", cv=cv)


def _random_forest(**params: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**({"n_estimators": 300, "random_state": 0, "n_jobs": 1}
                                     | params))


def _knn(**params: Any) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(**({"n_neighbors": 10, "weights": "distance"} | params))


MODELS: dict[str, Callable[..., Any]] = {
    "logistic_regression": _logistic_regression,
    "linear_svc": _linear_svc,
    "random_forest": _random_forest,
    "knn": _knn,
}

# Short names for feature-group sets; any comma-separated list of groups works too.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "tfidf": ("word", "char"),
    "word": ("word",),
    "embedding": ("embedding",),
    "minilm": ("embedding",),
    "fused": FEATURE_GROUPS,
}
FUSIONS = ("concat", "stacking", "oof_vote")


def make_model(name: str, params: Mapping[str, Any] | None = None) -> Any:
    """A fresh estimator from the whitelist: ``make_model("linear_svc", {"C": 1.0})``."""
    factory = MODELS.get(name)
    if factory is None:
        raise UnknownComponentError("model", name, MODELS)
    try:
        return factory(**dict(params or {}))
    except TypeError as exc:
        raise ConfigError(f"bad parameters for model {name!r}: {exc}") from None


def feature_groups(features: str | Sequence[str]) -> tuple[str, ...]:
    """Groups for a set name or list: ``feature_groups("tfidf") == ("word", "char")``."""
    if isinstance(features, str):
        if features in FEATURE_SETS:
            return FEATURE_SETS[features]
        features = [f.strip() for f in features.split(",") if f.strip()]
    unknown = [f for f in features if f not in FEATURE_GROUPS]
    if unknown or not features:
        known = sorted(set(FEATURE_SETS) | set(FEATURE_GROUPS))
        raise ConfigError(f"unknown feature set {unknown or features!r}; use one of {known} "
                          "or a comma-separated list of groups")
    return tuple(features)


def _pipeline(groups: Sequence[str], model: str, params: Mapping[str, Any] | None,
              drop: Sequence[str], store: EmbeddingStore | None) -> Any:
    from sklearn.pipeline import Pipeline

    features = FusedFeatures(groups=tuple(groups), drop=tuple(drop), store=store)
    return Pipeline([("features", features), ("model", make_model(model, params))])


def _members(groups: Sequence[str], model: str, params: Mapping[str, Any] | None,
             drop: Sequence[str], store: EmbeddingStore | None) -> list[tuple[str, Any]]:
    """One model on the TF-IDF groups and one on the embedding, each over what is not dropped."""
    tfidf = [g for g in groups if g != "embedding" and g not in drop]
    members = [("tfidf", tfidf)] if tfidf else []
    if "embedding" in groups and "embedding" not in drop:
        members.append(("embedding", ["embedding"]))
    return [(name, _pipeline(part, model, params, (), store)) for name, part in members]


def build_classifier(features: str | Sequence[str] = "fused", model: str = "logistic_regression",
                     params: Mapping[str, Any] | None = None, *, fusion: str = "concat",
                     drop: Sequence[str] = (), store: EmbeddingStore | None = None,
                     cv: int = 5) -> Any:
    """An unfitted classifier over texts: ``build_classifier("tfidf").fit(texts, labels)``.

    ``concat`` puts all groups into one model; ``stacking`` and ``oof_vote`` train one model on
    the TF-IDF groups and one on the embedding, then combine their out-of-fold probabilities
    (a logistic-regression meta model, or the weights that score best out of fold).
    """
    groups = feature_groups(features)
    if fusion not in FUSIONS:
        raise UnknownComponentError("fusion", fusion, FUSIONS)
    members = _members(groups, model, params, drop, store)
    if fusion == "concat" or len(members) < 2:
        return _pipeline(groups, model, params, drop, store)
    if fusion == "oof_vote":
        return OOFWeightedVote(members, cv=cv)
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(cv, shuffle=True, random_state=0)
    return StackingClassifier(members, final_estimator=LogisticRegression(C=1.0, max_iter=1000),
                              cv=folds, stack_method="predict_proba")


class OOFWeightedVote(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Soft voting with weights chosen on out-of-fold probabilities: ``OOFWeightedVote(members)``.

    Weights run over a 0.1 grid on the simplex; the best out-of-fold accuracy wins (ties go to
    the lower log-loss). Members are then refit on all the data.
    """

    def __init__(self, estimators: Sequence[tuple[str, Any]], cv: int = 5,
                 step: float = 0.1) -> None:
        self.estimators = estimators
        self.cv = cv
        self.step = step

    def fit(self, X: Any, y: Any) -> OOFWeightedVote:
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        texts, labels = list(X), np.asarray(y)
        self.classes_ = np.unique(labels)
        folds = StratifiedKFold(self.cv, shuffle=True, random_state=0)
        oof = [cross_val_predict(clone(est), texts, labels, cv=folds, method="predict_proba")
               for _, est in self.estimators]
        self.weights_ = self._best_weights(oof, np.searchsorted(self.classes_, labels))
        self.estimators_ = [clone(est).fit(texts, labels) for _, est in self.estimators]
        return self

    def _best_weights(self, oof: list[NDArray[np.float64]],
                      target: NDArray[np.intp]) -> NDArray[np.float64]:
        steps = round(1 / self.step)
        best: tuple[float, float] = (-1.0, 0.0)
        chosen = np.full(len(oof), 1 / len(oof))
        for combo in itertools.product(range(steps + 1), repeat=len(oof)):
            if sum(combo) != steps:
                continue
            w = np.asarray(combo, dtype=np.float64) / steps
            proba = sum(wi * p for wi, p in zip(w, oof, strict=True))
            picked = np.clip(proba[np.arange(len(target)), target], 1e-12, None)
            score = (float(np.mean(proba.argmax(axis=1) == target)), float(np.mean(np.log(picked))))
            if score > best:
                best, chosen = score, w
        return chosen

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        texts = list(X)
        parts = [w * est.predict_proba(texts) for w, est in zip(self.weights_, self.estimators_,
                                                                 strict=True)]
        total: NDArray[np.float64] = np.sum(parts, axis=0)
        return total

    def predict(self, X: Any) -> NDArray[Any]:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
