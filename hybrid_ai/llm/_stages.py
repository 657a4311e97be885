"""LLM understanding stages over the local encoder.

    - stage: embed                   # -> embedding {vector, model, dim, warnings}
    - stage: few_shot                # -> prediction {model, label, proba}
      with: {examples_path: train.csv, label_column: category, per_class: 8}

``few_shot`` classifies by cosine similarity to each class's centroid of a handful of labelled
examples (taken in file order, ``per_class`` per label), turned into probabilities by a softmax
with ``temperature``. Both take ``model_path`` (any local sentence-model directory, such as one
written by ``hybrid-ai tune-encoder``) and ``field`` (read ``case.fields[field]`` instead of the
case text). Empty or non-text input gives a zero vector / an abstention with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ConfigError
from .._facts import Fact, FactView, NewFact
from .._stage import BaseStage
from .._tabular import read_examples
from ._encoder import Encoder, get_encoder
from ._text import abstain, case_text, root_of

__all__ = ["EmbedStage", "FewShotStage", "LabelSimilarity", "softmax_top"]


class _EncoderStage(BaseStage):
    """Shared by the encoder stages: one process-wide encoder per settings, loaded lazily."""

    blocking = True
    cost = 10.0

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._encoder: Encoder | None = None

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = get_encoder(self.params.get("model_path"),
                                        batch_size=self.params.get("batch_size", 32),
                                        max_length=self.params.get("max_length", 256),
                                        num_threads=self.params.get("num_threads"),
                                        runtime=self.params.get("runtime", "auto"),
                                        max_batch_tokens=self.params.get("max_batch_tokens"))
        return self._encoder

    def _embedding(self, view: FactView) -> tuple[NewFact | None, list[str]]:
        """A fresh embedding fact of the case text, or None and the reason it has none."""
        text, warnings = case_text(view, field=self.params.get("field"))
        if text is None:
            return None, warnings
        return _embed_text(view, self.encoder, text), warnings


class EmbedStage(_EncoderStage):
    """Embeds the case text with the local sentence encoder (default all-MiniLM-L6-v2)."""

    requires = ("input",)
    produces = ("embedding",)

    def __init__(self, *, model_path: str | None = None, batch_size: int = 32,
                 max_length: int = 256, num_threads: int | None = None,
                 field: str | None = None, runtime: str = "auto",
                 max_batch_tokens: int | None = None) -> None:
        super().__init__(model_path=model_path, batch_size=batch_size, max_length=max_length,
                         num_threads=num_threads, field=field, runtime=runtime,
                         max_batch_tokens=max_batch_tokens)

    def warm_up(self) -> None:
        self.encoder.warm_up()

    def process(self, view: FactView) -> list[NewFact]:
        fact, warnings = self._embedding(view)
        if fact is not None:
            return [fact]
        # Nothing to embed: a zero vector marked as such, so later stages see why.
        data = {"vector": np.zeros(self.encoder.dim, dtype=np.float32),
                "model": self.encoder.model_id, "dim": self.encoder.dim, "warnings": warnings,
                "empty": True}
        return [NewFact("embedding", data, derived_from=root_of(view),
                        source=f"llm:{self.encoder.name}", detail={"warnings": warnings})]


def _embed_text(view: FactView, encoder: Encoder, text: str) -> NewFact:
    report = encoder.encode_with_report([text])
    warnings = [message.replace("text 0", "the text") for _, message in report.warnings]
    data = {"vector": report.vectors[0], "model": encoder.model_id,
            "dim": int(report.vectors.shape[1]), "warnings": warnings}
    detail = {"warnings": warnings} if warnings else {}
    return NewFact("embedding", data, derived_from=root_of(view),
                   source=f"llm:{encoder.name}", detail=detail)


def softmax_top(sims: np.ndarray, labels: Sequence[str], temperature: float,
                top_k: int) -> tuple[str, dict[str, float]]:
    """The best label and the ``top_k`` probabilities of a softmax over ``sims / temperature``."""
    logits = sims / temperature
    proba = np.exp(logits - logits.max())
    proba /= proba.sum()
    order = proba.argsort()[::-1][:top_k]
    return labels[order[0]], {labels[i]: float(proba[i]) for i in order}


class LabelSimilarity:
    """Classify vectors by cosine to one unit vector per label (centroids or descriptions).

    ``LabelSimilarity.from_descriptions(enc, {"pos": "good news"}).predict(vectors)``
    """

    def __init__(self, labels: list[str], matrix: np.ndarray) -> None:
        self.labels, self.matrix = labels, matrix

    @classmethod
    def from_examples(cls, vectors: np.ndarray, labels: Sequence[str]) -> LabelSimilarity:
        names = sorted(set(labels))
        index = {name: i for i, name in enumerate(names)}
        sums = np.zeros((len(names), vectors.shape[1]), dtype=np.float32)
        np.add.at(sums, np.array([index[x] for x in labels]), vectors)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return cls(names, sums / np.maximum(norms, 1e-12))

    @classmethod
    def from_descriptions(cls, encoder: Encoder, labels: Mapping[str, str]) -> LabelSimilarity:
        return cls(list(labels), encoder.encode(list(labels.values())))

    def predict(self, vectors: np.ndarray) -> list[str]:
        """The nearest label of each row: ``sim.predict(encoder.encode(texts))``."""
        return [self.labels[i] for i in (vectors @ self.matrix.T).argmax(axis=1)]

    def similarities(self, vector: Any) -> np.ndarray:
        return np.asarray(self.matrix @ np.asarray(vector, dtype=np.float32), dtype=np.float64)


class FewShotStage(_EncoderStage):
    """Nearest-centroid intent classification from a few labelled examples per class.

    It uses the case's ``embedding`` fact when an earlier stage made one with the same model,
    and otherwise embeds the text itself (and records that embedding), so a cascade can put it
    behind cheaper stages.
    """

    requires = ("input",)
    produces = ("prediction", "embedding")

    def __init__(self, *, examples_path: str | None = None, dataset: str | None = None,
                 split: str = "train", text_column: str = "text",
                 label_column: str = "label", per_class: int = 8, temperature: float = 0.05,
                 model: str = "few-shot", top_k: int = 5, model_path: str | None = None,
                 field: str | None = None) -> None:
        if per_class < 1 or temperature <= 0:
            raise ConfigError("few_shot: per_class must be >= 1 and temperature > 0, got "
                              f"per_class={per_class}, temperature={temperature}")
        super().__init__(examples_path=examples_path, dataset=dataset, split=split,
                         text_column=text_column,
                         label_column=label_column, per_class=per_class,
                         temperature=temperature, model=model, top_k=top_k,
                         model_path=model_path, field=field)
        self._classes: LabelSimilarity | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._classes is None:
                texts, labels = read_examples(
                    self.params["examples_path"], dataset=self.params["dataset"],
                    split=self.params["split"], text_column=self.params["text_column"],
                    label_column=self.params["label_column"], stage="few_shot")
                chosen = _first_per_class(labels, int(self.params["per_class"]))
                vectors = self.encoder.encode([texts[i] for i in chosen])
                self._classes = LabelSimilarity.from_examples(vectors, [labels[i] for i in chosen])

    def process(self, view: FactView) -> list[NewFact]:
        if self._classes is None:
            self.warm_up()
        assert self._classes is not None
        source = f"model:{self.params['model']}@{self.version}"
        existing = _usable_embedding(view, self.encoder.model_id)
        out: list[NewFact] = []
        if existing is None:
            fresh, warnings = self._embedding(view)
            if fresh is None:
                return [abstain(view, "prediction", warnings, source=source,
                                model=self.params["model"])]
            out.append(fresh)
        vector = existing.data["vector"] if existing is not None else out[0].data["vector"]
        label, top = softmax_top(self._classes.similarities(vector), self._classes.labels,
                                 float(self.params["temperature"]), int(self.params["top_k"]))
        data = {"model": self.params["model"], "label": label, "proba": top}
        warnings = list((existing or out[0]).data.get("warnings", []))
        if warnings:
            data["warnings"] = warnings
        # A fresh embedding is not a Fact yet, so the prediction cites the input it came from.
        basis = [existing] if existing is not None else list(out[0].derived_from)
        out.append(NewFact("prediction", data, confidence=top[label], derived_from=basis,
                           source=source))
        return out


def _usable_embedding(view: FactView, model_id: str) -> Fact | None:
    """An earlier embedding of this case by the same model that is not an empty placeholder."""
    fact = view.last("embedding")
    if fact is None or fact.data.get("model") != model_id or fact.data.get("empty"):
        return None
    return fact


def _first_per_class(labels: Sequence[str], per_class: int) -> list[int]:
    seen: dict[str, int] = {}
    chosen = []
    for index, label in enumerate(labels):
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            chosen.append(index)
    return chosen
