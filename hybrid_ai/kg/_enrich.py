"""What the KG stage adds about a linked node: types (with derivations), query rows, routes
to target classes or nodes, and a small numeric feature vector for the ML stages.

``enricher = Enricher.build(store, options); enricher.describe(node)``

Built once at warm-up (loading, materializing and compiling queries); afterwards it only
reads the store, so one instance serves every worker thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._files import read_text
from ._cli_terms import TermResolver
from ._query import Query
from ._reasoner import Reasoner
from ._rules import parse_rules
from ._sparql import parse_sparql
from ._store import IdTriple, Triple, TripleStore
from ._terms import IRI, RDF, Literal, Node, Term

__all__ = ["Enricher", "RouteSpec"]


@dataclass(frozen=True)
class RouteSpec:
    """A path to look for: to a node, or to the nearest instance of a class."""

    name: str
    targets: frozenset[int]
    via: frozenset[int] | None
    max_length: int
    to_label: str


@dataclass
class Enricher:
    """Answers "what does the graph say about this node", with the reasons for inferences."""

    store: TripleStore
    reasoner: Reasoner | None = None
    bind_as: str = "entity"
    queries: dict[str, Query] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    feature_types: list[IRI] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, store: TripleStore, options: Mapping[str, Any]) -> Enricher:
        """Materialize (if asked) and compile queries, routes and feature classes."""
        prefixes = _prefix_text(options.get("prefixes") or {})
        reasoner = _reasoner(store, options, prefixes)
        self = cls(store, reasoner, str(options.get("bind_as") or "entity"))
        if reasoner is not None:
            self.stats = {"inferred": store.inferred_count, "asserted": store.asserted_count}
        for name, text in (options.get("queries") or {}).items():
            self.queries[name] = _query(name, prefixes + str(text), self.bind_as)
        resolver = TermResolver(store, [f"{k}={v}" for k, v in
                                        (options.get("prefixes") or {}).items()])
        self.routes = [_route(store, resolver, i, spec)
                       for i, spec in enumerate(options.get("paths") or [])]
        self.feature_types = [_as_iri(resolver.node(n, "feature_types"))
                              for n in options.get("feature_types") or []]
        return self

    # ---- per node ------------------------------------------------------------------------

    def describe(self, node: IRI) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(data to add to the fact, derivations of the inferred triples it mentions)."""
        derivations: list[dict[str, Any]] = []
        data: dict[str, Any] = {"types": self._types(node, derivations)}
        if self.queries:
            data["queries"] = {name: self._rows(q, node) for name, q in self.queries.items()}
        if self.routes:
            data["routes"] = {r.name: self._route(r, node, derivations) for r in self.routes}
        return data, derivations

    def _types(self, node: IRI, derivations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for cls in sorted(self.store.objects(node, RDF.type), key=str):
            if not isinstance(cls, IRI):
                continue  # restriction blank nodes mean nothing to a reader
            triple = Triple(node, RDF.type, cls)
            item: dict[str, Any] = {"type": self.store.label(cls), "iri": str(cls),
                                    "inferred": self.store.is_inferred(*triple)}
            if item["inferred"] and self.reasoner is not None:
                derivation = self.reasoner.explain(triple)
                item["because"] = derivation.readable(self.store)
                derivations.append(derivation.to_dict(self.store))
            out.append(item)
        return out

    def _rows(self, query: Query, node: IRI) -> list[dict[str, Any]]:
        names = query.select if query.select is not None else query.variables()
        rows = query.run(self.store, limit=50, bindings={self.bind_as: node})
        return [{n: _value(self.store, t) for n, t in zip(names, row, strict=True)}
                for row in rows]

    def _route(self, spec: RouteSpec, node: IRI,
               derivations: list[dict[str, Any]]) -> dict[str, Any] | None:
        start = self.store.ids.id_of(node)
        steps = None if start is None else _nearest(self.store, start, spec)
        if steps is None:
            return None
        triples = [self.store._triple(t) for t in steps]
        for t in triples:
            if self.store.is_inferred(*t) and self.reasoner is not None:
                derivations.append(self.reasoner.explain(t).to_dict(self.store))
        label = self.store.label
        return {"to": label(triples[-1].object) if triples else label(node),
                "length": len(triples),
                "steps": [f"{label(s)} -{label(p)}-> {label(o)}"
                          + (" (inferred)" if self.store.is_inferred(s, p, o) else "")
                          for s, p, o in triples],
                "inferred_steps": sum(self.store.is_inferred(*t) for t in triples)}

    # ---- features ------------------------------------------------------------------------

    def features(self, nodes: Sequence[IRI]) -> dict[str, Any]:
        """Degree and type features over the linked nodes (means, and any-of one-hots)."""
        store = self.store
        ids = [i for i in (store.ids.id_of(n) for n in nodes) if i is not None]
        out_deg = [sum(len(o) for o in store._spo.get(i, {}).values()) for i in ids]
        in_deg = [sum(len(p) for p in store._osp.get(i, {}).values()) for i in ids]
        types = {t for n in nodes for t in store.objects(n, RDF.type)}
        inferred = sum(store.is_inferred(n, RDF.type, t) for n in nodes
                       for t in store.objects(n, RDF.type))
        one_hot = {store.label(t): float(t in types) for t in self.feature_types}
        base = {"nodes": float(len(ids)), "out_degree": _mean(out_deg),
                "in_degree": _mean(in_deg), "types": float(len(types)),
                "inferred_types": float(inferred)}
        names = [*base, *(f"type:{k}" for k in one_hot)]
        return {**base, "one_hot": one_hot, "names": names,
                "vector": [*base.values(), *one_hot.values()]}


# ---- building ----------------------------------------------------------------------------


def _prefix_text(prefixes: Mapping[str, str]) -> str:
    return "".join(f"PREFIX {name}: <{iri}>\n" for name, iri in prefixes.items())


def _reasoner(store: TripleStore, options: Mapping[str, Any], prefixes: str) -> Reasoner | None:
    infer = options.get("infer", False)
    if infer in (False, None, "none"):
        if options.get("rules") or options.get("rules_path"):
            raise ConfigError("kg_lookup: 'rules' need inference; set infer: true (or owl2rl, "
                              "rdfs)")
        return None
    profile = "owl2rl" if infer in (True, "owl2rl") else infer
    if profile not in ("owl2rl", "rdfs"):
        raise ConfigError(f"kg_lookup: infer must be true, false, 'owl2rl' or 'rdfs', "
                          f"not {infer!r}")
    rules = []
    if options.get("rules"):
        rules += parse_rules(prefixes + str(options["rules"]), source="kg_lookup rules")
    if options.get("rules_path"):
        path = Path(str(options["rules_path"]))
        rules += parse_rules(read_text(path, "kg_lookup rules_path file"), source=str(path))
    reasoner = Reasoner(store, profile="rdfs" if profile == "rdfs" else "owl2rl", rules=rules)
    reasoner.materialize()
    return reasoner


def _query(name: str, text: str, bind_as: str) -> Query:
    query = parse_sparql(text, source=f"kg_lookup query {name!r}")
    if bind_as not in query.variables():
        raise ConfigError(f"kg_lookup query {name!r} must use ?{bind_as}, which is bound to "
                          f"the linked node (variables: "
                          f"{', '.join('?' + v for v in query.variables())})")
    return query


def _route(store: TripleStore, resolver: TermResolver, index: int,
           spec: Any) -> RouteSpec:
    if not isinstance(spec, Mapping) or "to" not in spec:
        raise ConfigError(f"kg_lookup paths[{index}] must be a mapping with 'to' (a class or "
                          "node), optionally 'via' (predicates), 'max_length' and 'name'")
    unknown = set(spec) - {"to", "via", "max_length", "name"}
    if unknown:
        raise ConfigError(f"kg_lookup paths[{index}]: unknown key(s) {sorted(unknown)}; "
                          "use: to, via, max_length, name")
    target = resolver.node(str(spec["to"]), f"paths[{index}].to")
    tid = store.ids.intern(target)
    type_id = store.ids.intern(RDF.type)
    members = store._pos.get(type_id, {}).get(tid)
    targets = frozenset(members) if members else frozenset([tid])  # a class or a node
    via = spec.get("via")
    allowed = None if not via else frozenset(
        store.ids.intern(resolver.predicate(str(p), f"paths[{index}].via")) for p in via)
    return RouteSpec(str(spec.get("name") or store.label(target)), targets, allowed,
                     int(spec.get("max_length", 4)), store.label(target))


def _nearest(store: TripleStore, start: int, spec: RouteSpec) -> list[IdTriple] | None:
    """Breadth-first to the nearest target along allowed edges; the triples on the way."""
    if start in spec.targets:
        return []
    came: dict[int, tuple[int, IdTriple]] = {}
    queue: deque[tuple[int, int]] = deque([(start, 0)])
    seen = {start}
    allowed = None if spec.via is None else set(spec.via)
    while queue:
        node, depth = queue.popleft()
        if depth >= spec.max_length:
            continue
        for nxt, edge in store.neighbours_ids(node, allowed, True):
            if nxt in seen or store.ids.is_literal(nxt):
                continue
            seen.add(nxt)
            came[nxt] = (node, edge)
            if nxt in spec.targets:
                return _back(came, start, nxt)
            queue.append((nxt, depth + 1))
    return None


def _back(came: dict[int, tuple[int, IdTriple]], start: int, end: int) -> list[IdTriple]:
    steps = []
    node = end
    while node != start:
        node, edge = came[node]
        steps.append(edge)
    return steps[::-1]


def _as_iri(node: Node) -> IRI:
    if not isinstance(node, IRI):
        raise ConfigError(f"feature_types: {node} is a blank node; name a class IRI")
    return node


def _value(store: TripleStore, term: Term) -> Any:
    return term.scalar() if isinstance(term, Literal) else store.label(term)


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0
