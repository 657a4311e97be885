"""The ``entities`` stage: a gazetteer from the knowledge graph, plus an optional NER model.

    - stage: entities
      with: {path: knowledge/banking.json, fuzzy: true, types: [Product]}
    - stage: entities
      with: {ner_model: models/my-ner}     # a local token-classification model directory

The gazetteer is every ``rdfs:label`` and ``skos:altLabel`` of the graph, matched in the text
exactly and (with ``fuzzy``) with typo tolerance by :class:`hybrid_ai.kg.EntityLinker`. A
token-classification model is used only when the user names its directory: nothing downloads,
and transformers loads lazily. Each match becomes one ``entity`` fact with its span.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._facts import FactView, NewFact
from .._stage import BaseStage
from ..kg import IRI, EntityLinker, load
from ..kg._stage import _ambiguous, _candidate, _resolve_types
from ._local import local_pipeline
from ._text import case_text, root_of

__all__ = ["EntitiesStage"]

# A token-classification pass over a long text costs more than the rest of the case; the text
# is cut (with a warning on the facts) beyond this many characters.
MAX_TEXT_CHARS = 5000


class EntitiesStage(BaseStage):
    """Entity mentions from the KG gazetteer (labels + aliases) and/or a user's NER model."""

    requires = ("input",)
    produces = ("entity",)
    blocking = True
    cost = 1.0

    def __init__(self, *, path: str | None = None, ner_model: str | None = None,
                 fuzzy: bool = True, min_score: float = 90.0, types: list[str] | None = None,
                 min_ner_score: float = 0.5, field: str | None = None,
                 max_text_chars: int = MAX_TEXT_CHARS) -> None:
        if path is None and ner_model is None:
            raise ConfigError("entities needs a knowledge file (path: kb.json) for the "
                              "gazetteer, a token-classification model (ner_model: DIR), or both")
        super().__init__(path=path, ner_model=ner_model, fuzzy=fuzzy, min_score=min_score,
                         types=types, min_ner_score=min_ner_score, field=field,
                         max_text_chars=max_text_chars)
        self._linker: EntityLinker | None = None
        self._types: list[IRI] | None = None
        self._ner: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self.params["path"] is not None and self._linker is None:
                store = load(self.params["path"])
                self._types = _resolve_types(store, self.params["types"])
                self._linker = EntityLinker(store, min_mention_score=self.params["min_score"])
                self._linker.build()
            if self.params["ner_model"] is not None and self._ner is None:
                self._ner = _ner_pipeline(Path(self.params["ner_model"]))

    def process(self, view: FactView) -> list[NewFact]:
        self.warm_up()
        text, warnings = case_text(view, field=self.params["field"],
                                   max_chars=int(self.params["max_text_chars"]))
        if text is None:
            return []  # nothing to find in no text; the stage simply adds no entity
        found = self._gazetteer(view, text) + self._model(view, text)
        if not warnings:
            return found
        return [replace(f, data={**f.data, "warnings": warnings},
                        detail={"warnings": warnings}) for f in found]

    def _gazetteer(self, view: FactView, text: str) -> list[NewFact]:
        if self._linker is None:
            return []
        out = []
        for mention in self._linker.find_mentions(text, fuzzy=bool(self.params["fuzzy"]),
                                                  types=self._types):
            if not mention.candidates:
                continue
            best = mention.candidates[0]
            data = {"text": mention.text, "start": mention.start, "end": mention.end,
                    "node": str(best.node), "label": best.label, "score": best.score,
                    "type": "gazetteer", "ambiguous": _ambiguous(mention.candidates),
                    "candidates": [_candidate(c) for c in mention.candidates]}
            out.append(NewFact("entity", data, confidence=best.score / 100.0,
                               derived_from=root_of(view),
                               source=f"kg:gazetteer/{best.method}"))
        return out

    def _model(self, view: FactView, text: str) -> list[NewFact]:
        if self._ner is None:
            return []
        out = []
        for span in self._ner(text):
            score = float(span.get("score", 0.0))
            if score < float(self.params["min_ner_score"]):
                continue
            start, end = int(span["start"]), int(span["end"])
            data = {"text": text[start:end], "start": start, "end": end,
                    "label": str(span.get("entity_group", span.get("entity", ""))),
                    "score": round(score, 4), "type": "ner"}
            out.append(NewFact("entity", data, confidence=score, derived_from=root_of(view),
                               source=f"model:{Path(self.params['ner_model']).name}"))
        return out


def _ner_pipeline(directory: Path) -> Any:
    """A transformers token-classification pipeline over a local directory (never a hub id)."""
    return local_pipeline(directory, "token-classification", what="ner_model",
                          aggregation_strategy="simple")
