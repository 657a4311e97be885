"""The ``sentiment`` stage: zero-shot from label descriptions, or a sentiment model you supply.

    - stage: sentiment                               # embedding zero-shot, 3 default labels
    - stage: sentiment
      with: {method: generative}                     # label likelihood under SmolLM2
    - stage: sentiment
      with: {model_path: models/finbert}             # a local text-classification model

Writes one ``sentiment`` fact ``{label, proba, method}``. The default needs no extra model: the
sentence encoder compares the text with a description of each label (change them with
``labels``). A ``model_path`` is loaded with transformers' text-classification pipeline from that
directory only; nothing downloads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._facts import FactView, NewFact
from .._stage import BaseStage
from ._local import local_pipeline
from ._tasks import MAX_TEXT_CHARS, ZeroShotStage
from ._text import abstain, case_text, root_of

__all__ = ["DEFAULT_SENTIMENT_LABELS", "SentimentStage"]

DEFAULT_SENTIMENT_LABELS: dict[str, str] = {
    "positive": "This is good news: praise, satisfaction, gains, growth or success.",
    "negative": "This is bad news: a complaint, anger, losses, decline or failure.",
    "neutral": "This is a plain factual statement with no good or bad news.",
}


class SentimentStage(BaseStage):
    """Sentiment of the case text -> a ``sentiment`` fact (label, probabilities, method)."""

    requires = ("input",)
    produces = ("sentiment",)
    blocking = True
    cost = 10.0

    def __init__(self, *, method: str = "embedding",
                 labels: list[str] | Mapping[str, str] | None = None,
                 model_path: str | None = None, field: str | None = None,
                 max_text_chars: int = MAX_TEXT_CHARS, temperature: float | None = None) -> None:
        chosen: Any = dict(labels) if isinstance(labels, Mapping) else labels
        if chosen is None:
            # Likelihood scoring wants the answer words themselves, not a sentence about them.
            chosen = list(DEFAULT_SENTIMENT_LABELS) if method == "generative" else \
                DEFAULT_SENTIMENT_LABELS
        super().__init__(method=method if model_path is None else "model",
                         labels=chosen,
                         model_path=model_path, field=field, max_text_chars=max_text_chars,
                         temperature=temperature)
        # Zero-shot does the work; its model_path would name the encoder/generator, not ours.
        self._zero_shot = None if model_path is not None else ZeroShotStage(
            labels=self.params["labels"], method=method, field=field,
            max_text_chars=max_text_chars, temperature=temperature, model="sentiment",
            # The three answer words are short and alike, so they carry little prior to remove,
            # and an empty text is itself "neutral": calibrating would only add noise here.
            calibrate=False,
            prompt="What is the sentiment of this text?\nText: {text}\nAnswer in one word.")
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._zero_shot is not None:
            self._zero_shot.warm_up()
            return
        with self._lock:
            if self._pipeline is None:
                self._pipeline = _classifier(Path(str(self.params["model_path"])))

    def process(self, view: FactView) -> list[NewFact]:
        if self._zero_shot is not None:
            return [_as_sentiment(f, self.params["method"])
                    for f in self._zero_shot.process(view)]
        self.warm_up()
        source = f"model:{Path(str(self.params['model_path'])).name}"
        text, warnings = case_text(view, field=self.params["field"],
                                   max_chars=int(self.params["max_text_chars"]))
        if text is None:
            return [_as_sentiment(abstain(view, "sentiment", warnings, source=source), "model")]
        scores = self._pipeline(text, top_k=None)
        proba = {str(s["label"]): float(s["score"]) for s in scores}
        label = max(proba, key=proba.__getitem__)
        data: dict[str, Any] = {"label": label, "proba": proba, "method": "model"}
        if warnings:
            data["warnings"] = warnings
        return [NewFact("sentiment", data, confidence=proba[label], derived_from=root_of(view),
                        source=source, detail={"warnings": warnings} if warnings else {})]


def _as_sentiment(fact: NewFact, method: str) -> NewFact:
    data = {k: v for k, v in fact.data.items() if k != "model"} | {"method": method}
    return NewFact("sentiment", data, confidence=fact.confidence,
                   derived_from=fact.derived_from, source=fact.source, detail=fact.detail)


def _classifier(directory: Path) -> Any:
    """A transformers text-classification pipeline over a local directory (never a hub id)."""
    return local_pipeline(directory, "text-classification", what="sentiment model_path",
                          fix=", or drop model_path to classify zero-shot", truncation=True)
