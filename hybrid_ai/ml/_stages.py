"""Classical ML decision stages (scikit-learn).

    - stage: text_classifier
      with: {train_path: data/train.csv, text_column: text, label_column: category}
      with: {dataset: financial_phrasebank}     # a bundled dataset's train split, read in place

``text_classifier`` fits TF-IDF (word, and optionally character n-grams) + logistic regression on
the labelled CSV when it warms up, and writes a ``prediction`` fact with the class
probabilities. Fitting is deterministic and takes seconds for ~10k texts on two cores.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from .._errors import MissingDependencyError
from .._facts import FactView, NewFact
from .._stage import BaseStage
from .._tabular import read_examples

__all__ = ["TextClassifierStage"]


class TextClassifierStage(BaseStage):
    """TF-IDF + logistic regression over the case text -> ``prediction``."""

    requires = ("input",)
    produces = ("prediction",)
    blocking = True
    cost = 1.0

    def __init__(self, *, train_path: str | None = None, dataset: str | None = None,
                 split: str = "train", text_column: str = "text", label_column: str = "label",
                 char_ngrams: bool = False, C: float = 10.0, model: str = "tfidf-lr",
                 top_k: int = 5) -> None:
        super().__init__(train_path=train_path, dataset=dataset, split=split,
                         text_column=text_column,
                         label_column=label_column, char_ngrams=char_ngrams, C=C, model=model,
                         top_k=top_k)
        self.model_name, self.top_k = model, top_k
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._pipeline is None:
                texts, labels = read_examples(
                    self.params["train_path"], dataset=self.params["dataset"],
                    split=self.params["split"], text_column=self.params["text_column"],
                    label_column=self.params["label_column"], stage="text_classifier")
                pipeline = _build(bool(self.params["char_ngrams"]), float(self.params["C"]))
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*max_iter was reached.*")
                    pipeline.fit(texts, labels)
                self._pipeline = pipeline

    def process(self, view: FactView) -> list[NewFact]:
        if self._pipeline is None:
            self.warm_up()
        source = view.last("input")
        proba = self._pipeline.predict_proba([view.case.text])[0]
        order = proba.argsort()[::-1][: self.top_k]
        classes = self._pipeline.classes_
        top = {str(classes[i]): float(proba[i]) for i in order}
        label = str(classes[order[0]])
        data = {"model": self.model_name, "label": label, "proba": top}
        return [NewFact("prediction", data, confidence=top[label],
                        derived_from=[source] if source else [],
                        source=f"model:{self.model_name}@{self.version}")]


def _build(char_ngrams: bool, c: float) -> Any:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline
    except ImportError as exc:
        raise MissingDependencyError("scikit-learn", "pip install scikit-learn") from exc
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    features: Any = word
    if char_ngrams:
        char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                               min_df=2)
        features = FeatureUnion([("word", word), ("char", char)])
    # saga with a loose tolerance fits Banking77 (10k texts, 77 classes) in ~3 s at the same
    # accuracy as lbfgs to convergence (~27 s): measured 89.5 % vs 89.4 %.
    return make_pipeline(features, LogisticRegression(C=c, solver="saga", max_iter=300, tol=1e-3))
