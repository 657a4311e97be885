"""Classifiers by name, and the fusions of TF-IDF and embedding features.

Usage: ``clf = build_classifier("fused", "logistic_regression", fusion="stacking")``.

Models are named: the short names of :data:`MODELS`, or the class name of any scikit-learn
classifier or regressor (``"HistGradientBoostingClassifier"``, ``"Ridge"``), found through
``sklearn.utils.all_estimators``, so a config file never names an arbitrary class. Every
classifier exposes ``predict_proba`` (one without it is wrapped in sigmoid calibration),
because the cascade and the engine's ``prediction`` facts read the top probability as
confidence.

Fusions of the feature groups (members: one model on TF-IDF, one on the embedding, one on the
structured groups): ``concat`` (one model over all groups), ``soft_vote`` (mean probability),
``oof_vote`` (weighted mean, weights fitted out of fold), ``stacking`` (LR meta model over
out-of-fold probabilities), ``stacking_all`` (the same with the concatenation as one more
member) and ``gating`` (per-input weights: an LR over each member's confidence and the text
length predicts which member to trust).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, UnknownComponentError
from ._features import ALL_GROUPS, EmbeddingStore, FusedFeatures

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, clone
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    from .._errors import MissingDependencyError

    raise MissingDependencyError("scikit-learn", "pip install scikit-learn") from exc

__all__ = [
    "CALIBRATIONS",
    "FEATURE_SETS",
    "FUSIONS",
    "MODELS",
    "GatedEnsemble",
    "OOFWeightedVote",
    "build_classifier",
    "build_regressor",
    "calibrated",
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


def _ridge(**params: Any) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(**({"alpha": 1.0} | params))


def _gradient_boosting(**params: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**({"random_state": 0} | params))


MODELS: dict[str, Callable[..., Any]] = {
    "gradient_boosting": _gradient_boosting,
    "knn": _knn,
    "linear_svc": _linear_svc,
    "logistic_regression": _logistic_regression,
    "random_forest": _random_forest,
    "ridge": _ridge,
}
CALIBRATIONS = ("auto", "sigmoid", "isotonic", "none")

# Short names for feature-group sets; any comma-separated list of groups works too.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "tfidf": ("word", "char"),
    "word": ("word",),
    "embedding": ("embedding",),
    "minilm": ("embedding",),
    "fused": ("word", "char", "embedding"),
}
FUSIONS = ("concat", "gating", "oof_vote", "soft_vote", "stacking", "stacking_all")


def _sklearn_estimators() -> dict[str, Any]:
    from sklearn.utils import all_estimators

    found = all_estimators(type_filter=["classifier", "regressor"])
    return {name: cls for name, cls in found}


def make_model(name: str, params: Mapping[str, Any] | None = None) -> Any:
    """A fresh estimator by name: ``make_model("linear_svc", {"C": 1.0})`` or any scikit-learn
    class name, ``make_model("ExtraTreesClassifier", {"n_estimators": 100})``."""
    factory = MODELS.get(name)
    if factory is None:
        factory = _sklearn_estimators().get(name)
    if factory is None:
        raise UnknownComponentError("model", name,
                                    [*sorted(MODELS), "<any scikit-learn estimator class name>"])
    try:
        return _validated(factory(**dict(params or {})))
    except (TypeError, ValueError) as exc:  # sklearn's InvalidParameterError is both
        reason = str(exc).rstrip(".")
        raise ConfigError(f"bad parameters for model {name!r}: {reason}; fix the value "
                          "(--param NAME=VALUE, or `params:` in a pipeline)") from None


def _validated(estimator: Any) -> Any:
    """scikit-learn checks parameter values only in ``fit``: check them now (a wrapped
    estimator's too), so a bad value fails before training, not after."""
    nested = [v for v in estimator.get_params(deep=True).values() if hasattr(v, "get_params")]
    for part in (estimator, *nested):
        check = getattr(part, "_validate_params", None)
        if callable(check):
            check()
    return estimator


def calibrated(estimator: Any, method: str = "auto", cv: int = 3) -> Any:
    """Wrap a classifier so ``predict_proba`` means something: ``calibrated(svc, "sigmoid")``.

    ``auto`` wraps only estimators without ``predict_proba`` (SVMs, ridge classifiers); a
    cascade or a fusion reads the top probability, so every classifier must have one.
    """
    if method not in CALIBRATIONS:
        raise UnknownComponentError("calibration", method, CALIBRATIONS)
    from sklearn.calibration import CalibratedClassifierCV

    if method == "none" or isinstance(estimator, CalibratedClassifierCV):
        return estimator
    if method == "auto":
        if hasattr(estimator, "predict_proba"):
            return estimator
        method = "sigmoid"
    return CalibratedClassifierCV(estimator, method=method, cv=cv)


def feature_groups(features: str | Sequence[str]) -> tuple[str, ...]:
    """Groups for a set name or list: ``feature_groups("tfidf") == ("word", "char")``."""
    if isinstance(features, str):
        if features in FEATURE_SETS:
            return FEATURE_SETS[features]
        features = [f.strip() for f in features.split(",") if f.strip()]
    unknown = [f for f in features if f not in ALL_GROUPS]
    if unknown or not features:
        known = sorted(set(FEATURE_SETS) | set(ALL_GROUPS))
        raise ConfigError(f"unknown feature set {unknown or features!r}; use one of {known} "
                          "or a comma-separated list of groups")
    return tuple(features)


def _pipeline(groups: Sequence[str], model: str, params: Mapping[str, Any] | None,
              drop: Sequence[str], store: EmbeddingStore | None,
              fields: Mapping[str, Sequence[str]] | None = None, calibration: str = "auto") -> Any:
    from sklearn.pipeline import Pipeline

    fields = fields or {}
    estimator = make_model(model, params)
    features = FusedFeatures(groups=tuple(groups), drop=tuple(drop), store=store,
                             numeric=tuple(fields.get("numeric", ())),
                             categorical=tuple(fields.get("categorical", ())),
                             dense=not _takes_sparse(estimator))
    if _is_classifier(estimator):
        estimator = calibrated(estimator, calibration)
    return Pipeline([("features", features), ("model", estimator)])


def _takes_sparse(estimator: Any) -> bool:
    try:
        return bool(estimator.__sklearn_tags__().input_tags.sparse)
    except AttributeError:  # an estimator without tags: assume the safe dense form
        return False


def _is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(estimator))


_MEMBER_GROUPS = {"tfidf": ("word", "char"), "embedding": ("embedding",),
                  "structured": ("numeric", "categorical", "facts")}


def _members(groups: Sequence[str], model: str, params: Mapping[str, Any] | None,
             drop: Sequence[str], store: EmbeddingStore | None,
             fields: Mapping[str, Sequence[str]] | None = None,
             calibration: str = "auto") -> list[tuple[str, Any]]:
    """One model per family (TF-IDF, embedding, structured) over the groups not dropped."""
    members = []
    for name, family in _MEMBER_GROUPS.items():
        part = [g for g in groups if g in family and g not in drop]
        if part:
            members.append((name, _pipeline(part, model, params, (), store, fields, calibration)))
    return members


def build_classifier(features: str | Sequence[str] = "fused", model: str = "logistic_regression",
                     params: Mapping[str, Any] | None = None, *, fusion: str = "concat",
                     drop: Sequence[str] = (), store: EmbeddingStore | None = None,
                     cv: int = 5, fields: Mapping[str, Sequence[str]] | None = None,
                     calibration: str = "auto") -> Any:
    """An unfitted classifier over texts or records: ``build_classifier("tfidf").fit(X, y)``.

    ``concat`` puts all groups into one model; the other fusions train one model per family of
    groups (see the module docstring) and combine their probabilities.
    """
    groups = feature_groups(features)
    if fusion not in FUSIONS:
        raise UnknownComponentError("fusion", fusion, FUSIONS)
    members = _members(groups, model, params, drop, store, fields, calibration)
    if fusion == "concat" or len(members) < 2:
        return _pipeline(groups, model, params, drop, store, fields, calibration)
    if fusion in ("oof_vote", "soft_vote"):
        return OOFWeightedVote(members, cv=cv, fixed=fusion == "soft_vote")
    if fusion == "gating":
        return GatedEnsemble(members, cv=cv)
    if fusion == "stacking_all":
        members.append(("all", _pipeline(groups, model, params, drop, store, fields,
                                         calibration)))
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(cv, shuffle=True, random_state=0)
    return StackingClassifier(members, final_estimator=LogisticRegression(C=1.0, max_iter=1000),
                              cv=folds, stack_method="predict_proba")


def build_regressor(features: str | Sequence[str] = "fused", model: str = "ridge",
                    params: Mapping[str, Any] | None = None, *, drop: Sequence[str] = (),
                    store: EmbeddingStore | None = None,
                    fields: Mapping[str, Sequence[str]] | None = None) -> Any:
    """An unfitted regressor over records: ``build_regressor("numeric", fields=...)``."""
    groups = feature_groups(features)
    return _pipeline(groups, model, params, drop, store, fields, "none")


def _oof(estimators: Sequence[tuple[str, Any]], texts: list[Any], labels: NDArray[Any],
         cv: int) -> list[NDArray[np.float64]]:
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(cv, shuffle=True, random_state=0)
    return [cross_val_predict(clone(est), texts, labels, cv=folds, method="predict_proba")
            for _, est in estimators]


def _meta(probas: Sequence[NDArray[np.float64]], texts: Sequence[Any]) -> NDArray[np.float64]:
    """Per input: each member's top probability and margin, and the log text length."""
    from ._features import _texts

    cols = []
    for proba in probas:
        top2 = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else np.hstack([proba, proba])
        cols += [top2[:, 1], top2[:, 1] - top2[:, 0]]
    cols.append(np.log1p([len(t.split()) for t in _texts(texts)]))
    return np.column_stack(cols)


class GatedEnsemble(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Learned gating: per-input member weights: ``GatedEnsemble(members)``.

    For each member a logistic gate, trained on out-of-fold predictions, estimates from every
    member's confidence and margin and the text length the chance that this member is right
    on this input; those chances, normalised, weight a soft vote.
    """

    def __init__(self, estimators: Sequence[tuple[str, Any]], cv: int = 5) -> None:
        self.estimators = estimators
        self.cv = cv

    def fit(self, X: Any, y: Any) -> GatedEnsemble:
        from sklearn.linear_model import LogisticRegression

        texts, labels = list(X), np.asarray(y)
        self.classes_ = np.unique(labels)
        oof = _oof(self.estimators, texts, labels, self.cv)
        target = np.searchsorted(self.classes_, labels)
        meta = _meta(oof, texts)
        self.gates_: list[Any] = []
        for proba in oof:
            hit = proba.argmax(axis=1) == target
            constant = hit.all() or not hit.any()
            self.gates_.append(float(hit.mean()) if constant else
                               LogisticRegression(C=1.0, max_iter=1000).fit(meta, hit))
        self.estimators_ = [clone(est).fit(texts, labels) for _, est in self.estimators]
        return self

    def weights(self, X: Any) -> NDArray[np.float64]:
        """Per input, one weight per member (rows sum to 1)."""
        texts = list(X)
        return self._weights([est.predict_proba(texts) for est in self.estimators_], texts)

    def _weights(self, probas: list[NDArray[np.float64]], texts: list[Any]) -> NDArray[np.float64]:
        meta = _meta(probas, texts)
        cols = [np.full(len(texts), gate) if isinstance(gate, float)
                else gate.predict_proba(meta)[:, 1] for gate in self.gates_]
        w = np.column_stack(cols) + 1e-9
        out: NDArray[np.float64] = w / w.sum(axis=1, keepdims=True)
        return out

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        texts = list(X)
        probas = [est.predict_proba(texts) for est in self.estimators_]
        w = self._weights(probas, texts)
        total: NDArray[np.float64] = sum(w[:, [i]] * p for i, p in enumerate(probas))
        return total

    def predict(self, X: Any) -> NDArray[Any]:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


class OOFWeightedVote(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Soft voting with weights chosen on out-of-fold probabilities: ``OOFWeightedVote(members)``.

    Weights run over a 0.1 grid on the simplex; the best out-of-fold accuracy wins (ties go to
    the lower log-loss). Members are then refit on all the data. ``fixed=True`` is plain soft
    voting: equal weights, no out-of-fold fits.
    """

    def __init__(self, estimators: Sequence[tuple[str, Any]], cv: int = 5,
                 step: float = 0.1, fixed: bool = False) -> None:
        self.estimators = estimators
        self.cv = cv
        self.step = step
        self.fixed = fixed

    def fit(self, X: Any, y: Any) -> OOFWeightedVote:
        texts, labels = list(X), np.asarray(y)
        self.classes_ = np.unique(labels)
        if self.fixed:
            self.weights_ = np.full(len(self.estimators), 1 / len(self.estimators))
        else:
            oof = _oof(self.estimators, texts, labels, self.cv)
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
