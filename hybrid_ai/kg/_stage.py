"""The ``kg_lookup`` stage: links the text's mentions to knowledge-graph nodes and looks up
what the graph knows about a fact's label.

    - stage: kg_lookup
      with: {path: knowledge/banking.json, lookup: intent.label, follow: [about, handledBy]}

Writes ``entity`` facts (every mention with all its candidates; ambiguity is kept) and, when
``lookup`` names a fact field, one ``knowledge`` fact: the node, its properties (literals, and
labels of linked nodes), gathered breadth-first along the ``follow`` predicates, nearest first,
with the path of triples that reached each one as the explanation.

Reasoning options (all off by default; the graph is loaded and materialized once at warm-up):
``schema_path`` (an ontology loaded into the same store), ``infer`` (true / owl2rl / rdfs),
``rules`` or ``rules_path`` (user rules, see :func:`~hybrid_ai.kg.parse_rules`), ``prefixes``,
``queries`` (name -> SPARQL with ``?entity`` bound to the linked node), ``paths`` (routes to a
class or node: ``{to, via, max_length, name}``), ``features`` + ``feature_types`` (a
``graph_features`` fact for ML). The looked-up node (or, without ``lookup``, each linked
entity) gets ``types`` (inferred ones with ``because`` lines), ``queries`` and ``routes``; the
derivation trees of the inferred triples used go into the fact's provenance detail.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._facts import Fact, FactView, NewFact
from .._stage import BaseStage
from ._enrich import Enricher
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
                 lookup_types: list[str] | None = None, schema_path: str | None = None,
                 infer: bool | str = False, rules: str | None = None,
                 rules_path: str | None = None, prefixes: dict[str, str] | None = None,
                 queries: dict[str, str] | None = None, bind_as: str = "entity",
                 paths: list[dict[str, Any]] | None = None, features: bool = False,
                 feature_types: list[str] | None = None) -> None:
        kind = _lookup_kind(lookup)
        _check_files(path=path, schema_path=schema_path, rules_path=rules_path)
        super().__init__(path=path, lookup=lookup, follow=follow or [], link_text=link_text,
                         depth=depth, min_score=min_score, entity_types=entity_types,
                         lookup_types=lookup_types, schema_path=schema_path, infer=infer,
                         rules=rules, rules_path=rules_path, prefixes=prefixes or {},
                         queries=queries or {}, bind_as=bind_as, paths=paths or [],
                         features=features, feature_types=feature_types or [])
        self._types: dict[str, list[IRI] | None] = {}
        self.requires = ("input", kind) if kind else ("input",)
        self.produces = tuple(k for k, on in (("entity", link_text), ("knowledge", bool(kind)),
                                              ("graph_features", features)) if on)
        self._store: TripleStore | None = None
        self._linker: EntityLinker | None = None
        self._enricher: Enricher | None = None
        self._lock = threading.Lock()
        self._failure: tuple[tuple[Any, ...], ConfigError] | None = None

    def warm_up(self) -> None:
        """Load the graph once. A ConfigError is remembered: until one of the knowledge files
        changes, later calls (the engine makes one per case while it is not warm) raise it
        again without loading anything."""
        with self._lock:
            if self._linker is not None:
                return
            stamp = _stamp(self.params)
            if self._failure is not None and self._failure[0] == stamp:
                raise self._failure[1].with_traceback(None)
            try:
                self._load()
            except ConfigError as exc:
                self._failure = (stamp, exc)
                raise

    def _load(self) -> None:
        store = load(self.params["path"])
        if self.params["schema_path"]:
            load(self.params["schema_path"], store=store)
        self._enricher = Enricher.build(store, self.params)
        self._types = {key: _resolve_types(store, self.params[key])
                       for key in ("entity_types", "lookup_types")}
        self._store = store
        # Set last: process() takes a non-None linker to mean "warm".
        self._linker = EntityLinker(store, min_score=self.params["min_score"]).build()

    @property
    def _enriching(self) -> bool:
        p = self.params
        return bool(p["infer"] or p["queries"] or p["paths"])

    def process(self, view: FactView) -> list[NewFact]:
        if self._linker is None:
            self.warm_up()
        out = self._entities(view) if self.params["link_text"] else []
        nodes = [IRI(f.data["node"]) for f in out]
        if self.params["lookup"]:
            fact = self._knowledge(view)
            if fact is not None:
                out.append(fact)
                nodes = [IRI(fact.data["node"])]
        if self.params["features"]:
            out.append(self._features(view, nodes))
        return out

    def _features(self, view: FactView, nodes: list[IRI]) -> NewFact:
        assert self._enricher is not None
        root = view.last("input")
        return NewFact("graph_features", self._enricher.features(nodes),
                       derived_from=[root] if root else [], source="kg:features")

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
            detail = {} if self.params["lookup"] else self._enrich(data, best.node)
            out.append(NewFact("entity", data, confidence=best.score / 100.0,
                               derived_from=[root] if root else [],
                               source=f"kg:link/{best.method}", detail=detail))
        return out

    def _enrich(self, data: dict[str, Any], node: IRI) -> dict[str, Any]:
        """Adds types, query rows and routes to ``data``; returns the derivations detail."""
        if not self._enriching or self._enricher is None:
            return {}
        extra, derivations = self._enricher.describe(node)
        data.update(extra)
        return {"derivations": derivations} if derivations else {}

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
        data: dict[str, Any] = {"node": str(hit.node), "label": hit.label,
                                "properties": properties, "paths": paths, "matched": hit.matched}
        detail = {"paths": paths, **self._enrich(data, hit.node)}
        return NewFact("knowledge", data, confidence=hit.score / 100.0, derived_from=[fact],
                       source=f"kg:{Path(self.params['path']).name}", detail=detail)


def _lookup_kind(lookup: str | None) -> str | None:
    if lookup is None:
        return None
    kind, dot, field = lookup.partition(".")
    if not kind or not dot or not field:
        raise ValueError(f"lookup must be 'kind.field' (e.g. 'intent.label'), got {lookup!r}")
    return kind


_FILES = ("path", "schema_path", "rules_path")


def _check_files(**paths: str | None) -> None:
    """Missing knowledge files are found when the pipeline is built; parsing waits for
    warm_up, which is where the loading cost belongs."""
    wrong = []
    for key, value in paths.items():
        if value is None:
            continue
        if not isinstance(value, (str, Path)):
            wrong.append(f"{key} must be a file path, not {type(value).__name__} {value!r}")
        elif Path(value).is_dir():
            wrong.append(f"{key}: {value} is a folder; give a knowledge file in it")
        elif not Path(value).exists():
            wrong.append(f"{key}: no such file {value}")
    if wrong:
        raise ConfigError("; ".join(wrong) + "; check the path (a relative one is read from "
                          "the pipeline's folder)")


def _stamp(params: Mapping[str, Any]) -> tuple[Any, ...]:
    """What would make a failed load worth trying again: the files' sizes and times."""
    out: list[Any] = []
    for key in _FILES:
        try:
            info = Path(params[key]).stat() if params[key] else None
        except OSError:
            info = None
        out.append((info.st_size, info.st_mtime_ns) if info else None)
    return tuple(out)


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
        available = ", ".join(sorted(t.local_name for t in known)) or "no typed nodes"
        raise ConfigError(f"kg_lookup: unknown node type(s) {sorted(missing)} in entity_types "
                          f"or lookup_types; the graph has: {available}")
    return found


def _candidate(c: Candidate) -> dict[str, Any]:
    return {"node": str(c.node), "label": c.label, "score": c.score, "method": c.method}


def _ambiguous(candidates: tuple[Candidate, ...]) -> bool:
    return len(candidates) > 1 and candidates[1].score >= candidates[0].score - 5.0
