"""The ``kg_lookup`` stage: links the text's mentions to knowledge-graph nodes and looks up
what the graph knows about a fact's label.

    - stage: kg_lookup
      with: {path: knowledge/banking.json, lookup: intent.label, follow: [about, handledBy]}

Writes ``entity`` facts (every mention with all its candidates; ambiguity is kept) and, when
``lookup`` names a fact field, one ``knowledge`` fact: the node, its properties (literals, and
labels of linked nodes), gathered breadth-first along the ``follow`` predicates, nearest first,
with the path of triples that reached each one as the explanation.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

from .._facts import Fact, FactView, NewFact
from .._stage import BaseStage
from ._linking import Candidate, EntityLinker
from ._loaders import load
from ._store import TripleStore
from ._terms import IRI, RDF, RDFS, SKOS, Literal

__all__ = ["KGLookupStage"]

_SKIP = {RDFS.label, SKOS.altLabel}


class KGLookupStage(BaseStage):
    """Entity linking over the case text plus a property lookup for ``lookup`` (kind.field)."""

    blocking = False
    cost = 0.5

    def __init__(self, *, path: str, lookup: str | None = None, follow: list[str] | None = None,
                 link_text: bool = True, depth: int = 3, min_score: float = 85.0,
                 entity_types: list[str] | None = None,
                 lookup_types: list[str] | None = None) -> None:
        kind = _lookup_kind(lookup)
        super().__init__(path=path, lookup=lookup, follow=follow or [], link_text=link_text,
                         depth=depth, min_score=min_score, entity_types=entity_types,
                         lookup_types=lookup_types)
        self._types: dict[str, list[IRI] | None] = {}
        self.requires = ("input", kind) if kind else ("input",)
        self.produces = tuple(k for k, on in (("entity", link_text), ("knowledge", bool(kind)))
                              if on)
        self._store: TripleStore | None = None
        self._linker: EntityLinker | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._linker is None:
                store = load(self.params["path"])
                self._linker = EntityLinker(store, min_score=self.params["min_score"]).build()
                self._store = store
                self._types = {key: _resolve_types(store, self.params[key])
                               for key in ("entity_types", "lookup_types")}

    def process(self, view: FactView) -> list[NewFact]:
        if self._linker is None:
            self.warm_up()
        out = self._entities(view) if self.params["link_text"] else []
        if self.params["lookup"]:
            fact = self._knowledge(view)
            if fact is not None:
                out.append(fact)
        return out

    def _entities(self, view: FactView) -> list[NewFact]:
        assert self._linker is not None
        root = view.last("input")
        out = []
        types = self._types.get("entity_types")
        for mention in self._linker.find_mentions(view.case.text, types=types):
            best = mention.candidates[0]
            data = {"text": mention.text, "start": mention.start, "end": mention.end,
                    "node": str(best.node), "label": best.label, "score": best.score,
                    "ambiguous": _ambiguous(mention.candidates),
                    "candidates": [_candidate(c) for c in mention.candidates]}
            out.append(NewFact("entity", data, confidence=best.score / 100.0,
                               derived_from=[root] if root else [],
                               source=f"kg:link/{best.method}"))
        return out

    def _knowledge(self, view: FactView) -> NewFact | None:
        assert self._linker is not None and self._store is not None
        kind, _, field = str(self.params["lookup"]).partition(".")
        fact = view.last(kind)
        value = fact.data.get(field) if fact is not None else None
        if fact is None or value is None:
            return None
        candidates = self._linker.link(str(value), limit=1, types=self._types.get("lookup_types"))
        if not candidates:
            return None
        return self._describe(candidates[0], fact)

    def _describe(self, hit: Candidate, fact: Fact) -> NewFact:
        assert self._store is not None
        properties, paths = _gather(self._store, hit.node, set(self.params["follow"]),
                                    int(self.params["depth"]))
        data = {"node": str(hit.node), "label": hit.label, "properties": properties,
                "paths": paths, "matched": hit.matched}
        return NewFact("knowledge", data, confidence=hit.score / 100.0, derived_from=[fact],
                       source=f"kg:{Path(self.params['path']).name}", detail={"paths": paths})


def _lookup_kind(lookup: str | None) -> str | None:
    if lookup is None:
        return None
    kind, dot, field = lookup.partition(".")
    if not kind or not dot or not field:
        raise ValueError(f"lookup must be 'kind.field' (e.g. 'intent.label'), got {lookup!r}")
    return kind


def _gather(store: TripleStore, start: IRI, follow: set[str],
            depth: int) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Properties reachable from ``start`` along ``follow`` predicates, nearest first."""
    properties: dict[str, Any] = {}
    paths: dict[str, list[str]] = {}
    queue: deque[tuple[IRI, list[str], int]] = deque([(start, [], 0)])
    seen = {start}
    while queue:
        node, path, level = queue.popleft()
        for _, predicate, obj in store.triples(node, None, None):
            if predicate in _SKIP:
                continue
            key = "type" if predicate == RDF.type else predicate.local_name
            step = [*path, f"{store.label(node)} -{key}-> {store.label(obj)}"]
            if key not in properties:
                properties[key] = obj.to_python() if isinstance(obj, Literal) else store.label(obj)
                paths[key] = step
            if isinstance(obj, IRI) and key in follow and obj not in seen and level < depth:
                seen.add(obj)
                queue.append((obj, step, level + 1))
    return properties, paths


def _resolve_types(store: TripleStore, names: list[str] | None) -> list[IRI] | None:
    """Type names as written in the pipeline (local names or full IRIs) -> the store's IRIs."""
    if not names:
        return None
    known = {t for t in store.objects(None, RDF.type) if isinstance(t, IRI)}
    found = [t for t in known if t.local_name in names or t.value in names]
    missing = set(names) - {t.local_name for t in found} - {t.value for t in found}
    if missing:
        available = ", ".join(sorted(t.local_name for t in known))
        raise ValueError(f"unknown node type(s) {sorted(missing)}; the graph has: {available}")
    return found


def _candidate(c: Candidate) -> dict[str, Any]:
    return {"node": str(c.node), "label": c.label, "score": c.score, "method": c.method}


def _ambiguous(candidates: tuple[Candidate, ...]) -> bool:
    return len(candidates) > 1 and candidates[1].score >= candidates[0].score - 5.0
