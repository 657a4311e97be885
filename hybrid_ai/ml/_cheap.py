"""A cheap first stage for cascades: TF-IDF, naive Bayes and distilled word vectors, stacked.

Usage: ``first = cheap_classifier().fit(texts, labels); first.predict_proba(["Where is it?"])``.

A cascade answers with its first stage wherever that stage is confident, so what it saves
depends on how accurate and how well ranked that stage's confidence is. A lone TF-IDF logistic
regression separates its errors poorly; three cheap members with different errors, stacked by
a logistic regression over their out-of-fold probabilities, are both more accurate and better
ranked (measured in benchmarks/RESULTS.md):

- ``tfidf``: logistic regression over word 1-2 grams and char_wb 2-5 grams;
- ``nb``: multinomial naive Bayes over word TF-IDF;
- ``vectors``: logistic regression over :class:`WordVectors`, the IDF-weighted mean of one
  sentence-encoder vector per *vocabulary word*. The encoder runs once per distinct training
  word when the model is fitted (cached on disk), never on the inputs it later classifies: a
  lookup table distilled from the transformer, costing about as much as TF-IDF per input.

:func:`stacking_oof` gives a stacked model's out-of-fold probabilities on its training data
(the validation predictions a cascade's threshold is chosen on) for the price of the members'
own cross-validation.
"""

from __future__ import annotations

import importlib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import InputError
from ._features import _SEP, EmbeddingStore, TfidfFeatures, _texts, default_store
from ._models import build_classifier, make_model

try:
    from sklearn.base import BaseEstimator, TransformerMixin, clone
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    from .._errors import MissingDependencyError

    raise MissingDependencyError("scikit-learn", "pip install scikit-learn") from exc

__all__ = ["CHEAP_MEMBERS", "WordVectors", "cheap_classifier", "stacking_oof"]

CHEAP_MEMBERS = ("tfidf", "nb", "vectors")
_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class WordVectors(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """IDF-weighted mean of per-word encoder vectors: ``WordVectors().fit_transform(texts)``.

    ``fit`` encodes each distinct training word once (through ``store``, default
    :func:`default_store`); ``transform`` only looks words up, so the encoder never sees the
    texts being transformed. Unknown words are skipped; a text with none is a zero row.
    """

    def __init__(self, store: EmbeddingStore | None = None, min_df: int = 1) -> None:
        self.store = store
        self.min_df = min_df

    def fit(self, X: Any, y: Any = None) -> WordVectors:
        texts = _texts(X)
        counts = Counter(w for t in texts for w in set(_words(t)))
        words = sorted(w for w, n in counts.items() if n >= self.min_df)
        if not words:
            raise InputError(f"WordVectors: no word occurs in {self.min_df}+ of the "
                             f"{len(texts)} training texts; lower min_df or add texts")
        store = self.store if self.store is not None else default_store()
        idf = np.asarray([math.log((1 + len(texts)) / (1 + counts[w])) + 1 for w in words])
        self.index_ = {w: i for i, w in enumerate(words)}
        self.vectors_ = (store.vectors(words) * idf[:, None]).astype(np.float32)
        return self

    def transform(self, X: Any) -> NDArray[np.float32]:
        sparse = importlib.import_module("scipy.sparse")  # importlib: scipy ships no stubs
        rows, cols = [], []
        for r, text in enumerate(_texts(X)):
            found = [self.index_[w] for w in _words(text) if w in self.index_]
            rows += [r] * len(found)
            cols += found
        n = len(_texts(X))
        counts = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                   shape=(n, len(self.index_)))
        summed = np.asarray(counts @ self.vectors_, dtype=np.float32)
        norms = np.linalg.norm(summed, axis=1, keepdims=True)
        return np.asarray(summed / np.where(norms > 0, norms, 1.0), dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        # One string of words (not a dict: skops writes one JSON node per entry) and float16
        # vectors keep a saved model a few MB; both come back exactly as fitted, but rounded.
        state: dict[str, Any] = dict(super().__getstate__())
        state.pop("store", None)
        index = state.pop("index_", None)
        if index is not None:
            state["words_"] = _SEP.join(sorted(index, key=index.__getitem__))
            state["vectors_"] = np.asarray(state["vectors_"], dtype=np.float16)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        words = state.pop("words_", None)
        super().__setstate__(state)
        self.store = None
        if words is not None:
            self.index_ = {w: i for i, w in enumerate(words.split(_SEP))}
            self.vectors_ = np.asarray(self.vectors_, dtype=np.float32)


def _member(name: str, store: EmbeddingStore | None) -> Any:
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import Pipeline

    if name == "tfidf":
        return build_classifier("tfidf")
    if name == "nb":  # alpha 0.1: best of 0.03-0.3 on SST-2, FPB and AG News train folds
        return Pipeline([("features", TfidfFeatures("word")),
                         ("model", MultinomialNB(alpha=0.1))])
    return Pipeline([("features", WordVectors(store=store)),
                     ("model", make_model("logistic_regression"))])


def cheap_classifier(members: Sequence[str] = CHEAP_MEMBERS, *,
                     store: EmbeddingStore | None = None, cv: int = 5) -> Any:
    """An unfitted stack of cheap members (see the module docstring) over texts or records.

    ``members=("tfidf", "nb")`` leaves the encoder out entirely.
    """
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    unknown = [m for m in members if m not in CHEAP_MEMBERS]
    if unknown or not members:
        raise InputError(f"unknown cheap members {unknown or list(members)}; choose from "
                         f"{', '.join(CHEAP_MEMBERS)}")
    estimators = [(m, _member(m, store)) for m in members]
    return StackingClassifier(estimators, final_estimator=LogisticRegression(C=1.0, max_iter=1000),
                              cv=StratifiedKFold(cv, shuffle=True, random_state=0),
                              stack_method="predict_proba")


def _stack_input(probas: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    # As StackingClassifier does: with two classes each member gives one column.
    return np.hstack([p[:, 1:] if p.shape[1] == 2 else p for p in probas])


def stacking_oof(stack: Any, X: Sequence[Any], y: Sequence[Any],
                 known: Mapping[str, NDArray[np.float64]] | None = None,
                 ) -> tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]:
    """Out-of-fold probabilities of an unfitted ``StackingClassifier`` on its training data.

    Each member is cross-validated on the stack's folds (``known`` holds members' out-of-fold
    probabilities computed before, by name); the final estimator is then cross-validated on
    those out-of-fold probabilities. Returns the stack's probabilities (columns in sorted class
    order) and each member's, so a second stack sharing a member can pass them as ``known``.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    texts, labels = list(X), np.asarray([str(v) for v in y])
    members = dict(known or {})
    for name, estimator in stack.estimators:
        if name not in members:
            members[name] = cross_val_predict(clone(estimator), texts, labels, cv=stack.cv,
                                              method="predict_proba")
    meta = _stack_input([members[name] for name, _ in stack.estimators])
    folds = StratifiedKFold(5, shuffle=True, random_state=1)  # not the members' folds
    final = clone(stack.final_estimator)
    oof = cross_val_predict(final, meta, labels, cv=folds, method="predict_proba")
    return np.asarray(oof, dtype=np.float64), members
