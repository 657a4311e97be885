"""LLM understanding stages over the local encoder.

    - stage: embed                   # -> embedding {vector, model, dim}
    - stage: few_shot                # -> prediction {model, label, proba}
      with: {examples_path: train.csv, label_column: category, per_class: 8}

``few_shot`` classifies by cosine similarity to each class's centroid of a handful of labelled
examples (taken in file order, ``per_class`` per label), turned into probabilities by a softmax
with ``temperature``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._facts import FactView, NewFact
from .._stage import BaseStage
from .._tabular import read_labelled_csv
from ._encoder import Encoder, get_encoder

__all__ = ["EmbedStage", "FewShotStage"]


class EmbedStage(BaseStage):
    """Embeds the case text with the local sentence encoder (default all-MiniLM-L6-v2)."""

    requires = ("input",)
    produces = ("embedding",)
    blocking = True
    cost = 10.0

    def __init__(self, *, model_path: str | None = None, batch_size: int = 32,
                 max_length: int = 256, num_threads: int | None = None) -> None:
        super().__init__(model_path=model_path, batch_size=batch_size, max_length=max_length,
                         num_threads=num_threads)
        self._encoder: Encoder | None = None

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = get_encoder(self.params["model_path"],
                                        batch_size=self.params["batch_size"],
                                        max_length=self.params["max_length"],
                                        num_threads=self.params["num_threads"])
        return self._encoder

    def warm_up(self) -> None:
        self.encoder.warm_up()

    def process(self, view: FactView) -> list[NewFact]:
        return [_embed(view, self.encoder)]


def _embed(view: FactView, encoder: Encoder | None = None) -> NewFact:
    encoder = encoder or get_encoder()
    report = encoder.encode_with_report([view.case.text])
    source = view.last("input")
    data = {"vector": report.vectors[0], "model": encoder.model_id,
            "dim": int(report.vectors.shape[1]),
            "warnings": [message for _, message in report.warnings]}
    return NewFact("embedding", data, derived_from=[source] if source else [],
                   source=f"llm:{encoder.name}")


class FewShotStage(BaseStage):
    """Nearest-centroid intent classification from a few labelled examples per class.

    It uses the case's ``embedding`` fact when an earlier stage made one, and otherwise embeds
    the text itself (and records that embedding), so a cascade can put it behind cheaper stages.
    """

    requires = ("input",)
    produces = ("prediction", "embedding")
    blocking = True
    cost = 10.0

    def __init__(self, *, examples_path: str, text_column: str = "text",
                 label_column: str = "label", per_class: int = 8, temperature: float = 0.05,
                 model: str = "few-shot", top_k: int = 5) -> None:
        if per_class < 1 or temperature <= 0:
            raise ValueError("per_class must be >= 1 and temperature > 0")
        super().__init__(examples_path=examples_path, text_column=text_column,
                         label_column=label_column, per_class=per_class,
                         temperature=temperature, model=model, top_k=top_k)
        self._labels: list[str] = []
        self._centroids: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._centroids is None:
                texts, labels = read_labelled_csv(
                    self.params["examples_path"], text_column=self.params["text_column"],
                    label_column=self.params["label_column"])
                chosen = _first_per_class(labels, int(self.params["per_class"]))
                vectors = get_encoder().encode([texts[i] for i in chosen])
                self._labels, self._centroids = _centroids(vectors, [labels[i] for i in chosen])

    def process(self, view: FactView) -> list[NewFact]:
        if self._centroids is None:
            self.warm_up()
        out: list[NewFact] = []
        embedding = view.last("embedding")
        if embedding is None:
            out.append(_embed(view))
        vector = embedding.data["vector"] if embedding is not None else out[0].data["vector"]
        sims = self._centroids @ np.asarray(vector, dtype=np.float32)
        logits = sims / float(self.params["temperature"])
        proba = np.exp(logits - logits.max())
        proba /= proba.sum()
        order = proba.argsort()[::-1][: int(self.params["top_k"])]
        top = {self._labels[i]: float(proba[i]) for i in order}
        label = self._labels[order[0]]
        data = {"model": self.params["model"], "label": label, "proba": top}
        # A fresh embedding is not a Fact yet, so the prediction cites the input it came from.
        basis = [embedding] if embedding is not None else list(out[0].derived_from)
        out.append(NewFact("prediction", data, confidence=top[label], derived_from=basis,
                           source=f"model:{self.params['model']}@{self.version}"))
        return out


def _first_per_class(labels: Sequence[str], per_class: int) -> list[int]:
    seen: dict[str, int] = {}
    chosen = []
    for index, label in enumerate(labels):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            chosen.append(index)
    return chosen


def _centroids(vectors: Any, labels: Sequence[str]) -> tuple[list[str], Any]:
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    sums = np.zeros((len(names), vectors.shape[1]), dtype=np.float32)
    for row, label in zip(vectors, labels, strict=True):
        sums[index[label]] += row
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return names, sums / np.maximum(norms, 1e-12)
