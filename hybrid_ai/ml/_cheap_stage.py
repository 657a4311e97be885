"""The ``cheap_text`` stage: the cheap first step of a cascade (see :mod:`hybrid_ai.ml._cheap`).

    - cascade:
        stages:
          - stage: cheap_text
            id: cheap
            threshold: 0.93        # from tune_cascades / `cascade_pick` on validation data
            with: {train_path: data/train.csv, label_column: intent}
          - stage: ml_model        # the transformer-backed model, reached only below 0.93
            id: fused
            with: {features: [word, char, embedding], fusion: stacking_all}

Stacks TF-IDF logistic regression, naive Bayes and distilled word vectors (``members``) and
writes the same ``prediction`` fact as ``ml_model``, its confidence the stack's top
probability. Trainable like ``ml_model``: ``hybrid-ai train PIPELINE`` fits and saves it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._stage import BaseStage
from ._model_stage import MLModelStage

__all__ = ["CheapTextStage"]


class CheapTextStage(MLModelStage):
    """Stacked cheap text classifier -> ``prediction``; no encoder call per input."""

    def __init__(self, *, model: str | None = None, train_path: str | None = None,
                 label_column: str = "label", text_column: str = "text",
                 members: Sequence[str] = ("tfidf", "nb", "vectors"),
                 encoder_path: str | None = None, name: str = "cheap-text",
                 output: str = "prediction", top_k: int = 5, cv: int = 5,
                 costs: Mapping[str, Mapping[str, float]] | None = None) -> None:
        # Not MLModelStage.__init__: there is no estimator, feature group or search to choose.
        BaseStage.__init__(self, model=model, train_path=train_path, task="classification",
                           label_column=label_column, text_column=text_column,
                           members=list(members), encoder_path=encoder_path, name=name,
                           output=output, top_k=top_k, cv=cv, costs=costs, fact_kinds=[])
        self.produces = (output,)
        self.requires = ("input",)
        self.fitted: Any = None
        self._lock = threading.Lock()

    def fit_records(self, records: Sequence[Mapping[str, Any]], labels: Sequence[Any],
                    *, search: bool | None = None, source: str | None = None) -> Any:
        """Fit the stack on the cases' texts (``search`` is not used)."""
        from ._cheap import cheap_classifier
        from ._train import TrainedModel, _versions, data_hash

        p = self.params
        texts = [str(r.get("text", "")) for r in records]
        names = [str(y) for y in labels]
        store = self._store() if "vectors" in p["members"] else None
        classifier = cheap_classifier(p["members"], store=store, cv=p["cv"]).fit(texts, names)
        self.fitted = TrainedModel(classifier, {
            "stage": "cheap_text", "dataset": source, "task": "classification",
            "n_train": len(texts), "data_sha256": data_hash(texts, names),
            "members": list(p["members"]), "cv": p["cv"], "classes": sorted(set(names)),
            "costs": p["costs"], "encoder_path": p["encoder_path"], "versions": _versions()})
        return self.fitted
