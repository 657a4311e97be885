"""Forward-chaining materialization (RDFS and an OWL 2 RL subset) with provenance.

``stats = Reasoner(store).materialize(); reasoner.explain(triple)``

The schema (TBox) is compiled once into id-level tables: the subClassOf / subPropertyOf closures
(equivalence and ``intersectionOf`` parts become subclass edges and are written to the store as
``scm-*`` inferences), then the instance rules run **semi-naively**: each round applies every
rule with one premise taken from the previous round's new triples and the other premises looked
up in the full store, so no join is ever repeated over old triples only.

owl:sameAs (eq-sym, eq-trans, eq-rep-s/p/o) runs only once the graph holds a sameAs triple;
sameAs between classes or properties does not recompile the schema. User rules
(:mod:`._rules`) fire in the same loop, indexed by the predicates of their body patterns.

Every inferred triple keeps the rule and premises of its first derivation, so ``explain`` can
walk any conclusion down to asserted triples.

Incremental use: ``add`` continues from the new triples as a delta. ``remove`` is DRed-style:
it over-deletes every inference whose recorded derivation depends (transitively) on a removed
triple, then re-derives by re-running the rules from the remaining triples that touch an
over-deleted subject (every rule's conclusion subject appears in one of its premises, so those
triples are enough to find any alternative derivation); a user rule that lost a conclusion is
re-fired over the whole store, since its head may name a node no premise touches. Changing the
schema itself recompiles and re-materializes from scratch.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from typing import Literal as TypingLiteral

from .._errors import ConfigError
from ._rules import Rule
from ._store import IdTriple, Triple, TripleStore, paused_gc
from ._terms import IRI, OWL, RDF, RDFS, Literal, Node, Term

__all__ = ["Derivation", "Reasoner", "ReasonerStats", "rule_text"]

Profile = TypingLiteral["owl2rl", "rdfs"]
_Premises = tuple[IdTriple, ...]

# Predicates whose triples describe the schema: a change to one of them recompiles the TBox.
_SCHEMA_PREDICATES = (
    RDFS.subClassOf, RDFS.subPropertyOf, RDFS.domain, RDFS.range, OWL.equivalentClass,
    OWL.equivalentProperty, OWL.inverseOf, OWL.intersectionOf, OWL.someValuesFrom,
    OWL.hasValue, OWL.onProperty, RDF.first, RDF.rest,
)
_SCHEMA_TYPES = (OWL.TransitiveProperty, OWL.SymmetricProperty)


@dataclass(frozen=True)
class Derivation:
    """How a triple came to be: ``d = reasoner.explain(t); d.rule, d.premises``.

    ``rule`` is ``"asserted"`` for loaded triples (then ``premises`` is empty); otherwise each
    premise is itself a :class:`Derivation`, down to asserted triples.
    """

    triple: Triple
    rule: str
    premises: tuple[Derivation, ...] = ()

    def steps(self) -> list[str]:
        """The tree as indented lines: ``print("\\n".join(d.steps()))``."""
        lines: list[str] = []
        self._render(0, lines)
        return lines

    def readable(self, store: TripleStore) -> list[str]:
        """The tree for an end user: labels, not IRIs, and each rule said in words.

        ``d.readable(store)`` gives lines such as
        ``Alice is a Employee  (a Professor is a kind of Employee)``.
        """
        lines: list[str] = []
        self._readable(store, 0, lines)
        return lines

    def sentence(self, store: TripleStore) -> str:
        """The triple in words: ``"Alice is a Employee"`` (rdfs:label where there is one)."""
        s, p, o = self.triple
        return f"{store.label(s)} {_PHRASES.get(p, store.label(p))} {store.label(o)}"

    def to_dict(self, store: TripleStore) -> dict[str, Any]:
        """JSON-ready tree: ``{"triple", "text", "rule", "because", "premises"}``."""
        return {"triple": [str(t) for t in self.triple], "text": self.sentence(store),
                "rule": self.rule, "because": rule_text(self.rule),
                "premises": [p.to_dict(store) for p in self.premises]}

    def _readable(self, store: TripleStore, depth: int, lines: list[str]) -> None:
        why = "stated in the data" if self.rule == "asserted" else (
            f"because {rule_text(self.rule)} [{self.rule}]")
        lines.append(f"{'  ' * depth}{self.sentence(store)}  ({why})")
        for premise in self.premises:
            premise._readable(store, depth + 1, lines)

    def asserted(self) -> set[Triple]:
        """The asserted triples this conclusion rests on: ``d.asserted()``."""
        if not self.premises:
            return {self.triple}
        return set().union(*(p.asserted() for p in self.premises))

    def _render(self, depth: int, lines: list[str]) -> None:
        s, p, o = (t.n3() for t in self.triple)
        lines.append(f"{'  ' * depth}{s} {p} {o} .  [{self.rule}]")
        for premise in self.premises:
            premise._render(depth + 1, lines)


_PHRASES: dict[Term, str] = {
    RDF.type: "is a", RDFS.subClassOf: "is a kind of", RDFS.subPropertyOf: "implies",
    RDFS.domain: "applies to subjects of type", RDFS.range: "has values of type",
    OWL.sameAs: "is the same as", OWL.inverseOf: "is the inverse of",
    OWL.equivalentClass: "is equivalent to", OWL.equivalentProperty: "is equivalent to",
}
_RULE_TEXT = {
    "cax-sco": "a member of a class is a member of its superclasses",
    "prp-spo1": "a property implies its superproperties",
    "prp-dom": "a property's subject belongs to its domain",
    "prp-rng": "a property's value belongs to its range",
    "prp-inv": "a property holds backwards for its inverse",
    "prp-symp": "a symmetric property holds both ways",
    "prp-trp": "a transitive property chains",
    "cls-svf1": "something related by the property to a member of the class meets the "
                "restriction",
    "cls-hv1": "members of a hasValue restriction have that value",
    "cls-hv2": "having the value meets the hasValue restriction",
    "cls-int1": "a member of every part of an intersection is a member of the intersection",
    "scm-sco": "subclass is transitive",
    "scm-spo": "subproperty is transitive",
    "scm-eqc": "equivalent classes are subclasses of each other",
    "scm-eqp": "equivalent properties are subproperties of each other",
    "scm-int": "an intersection is a subclass of each of its parts",
    "eq-sym": "sameAs is symmetric",
    "eq-trans": "sameAs is transitive",
    "eq-rep-s": "the same individual has the same properties (subject)",
    "eq-rep-o": "the same individual has the same properties (object)",
    "eq-rep-p": "the same property holds under either name",
}


def rule_text(rule: str) -> str:
    """A rule name in words: ``rule_text("cax-sco")``; user rules read ``the rule NAME``."""
    if rule.startswith("rule:"):
        return f"the rule {rule[5:]!r}"
    return _RULE_TEXT.get(rule, rule)


@dataclass
class ReasonerStats:
    """What a run did: ``stats.inferred``, ``stats.rounds``, ``stats.per_rule["cax-sco"]``."""

    inferred: int = 0
    rounds: int = 0
    seconds: float = 0.0
    per_rule: dict[str, int] = field(default_factory=dict)


@dataclass
class _Tbox:
    """The schema as id-level lookup tables (value lists carry the schema premises)."""

    sup_class: dict[int, list[tuple[int, IdTriple]]] = field(default_factory=dict)
    sup_prop: dict[int, list[tuple[int, IdTriple]]] = field(default_factory=dict)
    domain: dict[int, list[tuple[int, IdTriple]]] = field(default_factory=dict)
    range: dict[int, list[tuple[int, IdTriple]]] = field(default_factory=dict)
    inverse: dict[int, list[tuple[int, IdTriple]]] = field(default_factory=dict)
    transitive: dict[int, IdTriple] = field(default_factory=dict)
    symmetric: dict[int, IdTriple] = field(default_factory=dict)
    # someValuesFrom restriction R on (p, C): by filler class and by property.
    svf_by_class: dict[int, list[tuple[int, int, _Premises]]] = field(default_factory=dict)
    svf_by_prop: dict[int, list[tuple[int, int, _Premises]]] = field(default_factory=dict)
    # hasValue restriction R on (p, v): by R (class -> value) and by (p, v) (value -> class).
    hv_by_class: dict[int, list[tuple[int, int, _Premises]]] = field(default_factory=dict)
    hv_by_pair: dict[tuple[int, int], list[tuple[int, _Premises]]] = field(default_factory=dict)
    # intersectionOf: part -> [(class, all parts, premise)].
    int_by_part: dict[int, list[tuple[int, tuple[int, ...], IdTriple]]] = field(
        default_factory=dict
    )


class Reasoner:
    """Materializes a store in place: ``Reasoner(store, profile="rdfs").materialize()``."""

    def __init__(self, store: TripleStore, *, profile: Profile = "owl2rl",
                 rules: Sequence[Rule] = ()) -> None:
        if profile not in ("owl2rl", "rdfs"):
            raise ConfigError(f"unknown reasoner profile {profile!r}; use 'owl2rl' or 'rdfs'")
        self.store, self.profile, self.rules = store, profile, list(rules)
        intern = store.ids.intern
        self._v = {t: intern(t) for t in (*_SCHEMA_PREDICATES, *_SCHEMA_TYPES, RDF.type,
                                          RDF.nil, OWL.Thing, OWL.sameAs)}
        self._type, self._same = self._v[RDF.type], self._v[OWL.sameAs]
        # User rule body patterns by constant predicate id (None: a variable predicate).
        self._triggers: dict[int | None, list[tuple[Rule, int]]] = defaultdict(list)
        for rule in self.rules:
            for index, (_, pred, _) in enumerate(rule.body.patterns):
                key = intern(pred) if isinstance(pred, IRI) else None
                self._triggers[key].append((rule, index))
        self._schema_ids = {self._v[t] for t in (*_SCHEMA_PREDICATES, *_SCHEMA_TYPES)}
        # conclusion -> (rule, *premises): one flat tuple per inference, not two.
        self._prov: dict[IdTriple, tuple[str | IdTriple, ...]] = {}
        self._tbox = _Tbox()
        self._counts: Counter[str] = Counter()
        self._next: list[IdTriple] = []
        self._compiled = False

    # ---- public API ----------------------------------------------------------------------

    def materialize(self) -> ReasonerStats:
        """Drop old inferences, compile the schema and run to fixpoint: ``r.materialize()``."""
        start = time.perf_counter()
        self.store.clear_inferred()
        self._prov.clear()
        self._counts = Counter()
        self._compile()
        self._compiled = True
        rounds = self._run(list(self.store.match_ids()))
        return self._stats(rounds, start)

    def add(self, triples: Iterable[tuple[Node, IRI, Term]]) -> ReasonerStats:
        """Assert triples and continue materializing from them: ``r.add([(a, p, b)])``."""
        start = time.perf_counter()
        intern = self.store.ids.intern
        delta = [(intern(s), intern(p), intern(o)) for s, p, o in triples]
        if not self._compiled or any(self._is_schema(t) for t in delta):
            for t in delta:
                self.store.add_ids(*t)
            return self.materialize()
        self._counts = Counter()
        fresh = [t for t in delta if self.store.add_ids(*t)]
        for t in delta:  # an inference asserted now needs no recorded derivation any more
            self._prov.pop(t, None)
        return self._stats(self._run(fresh), start)

    def remove(self, triples: Iterable[tuple[Node, IRI, Term]]) -> ReasonerStats:
        """Retract asserted triples and their consequences (DRed): ``r.remove([(a, p, b)])``."""
        start = time.perf_counter()
        found = (self.store._lookup(tuple(triple)) for triple in triples)
        gone = [t for t in found if t is not None and self.store.contains_ids(*t)]
        if not self._compiled or any(self._is_schema(t) for t in gone):
            for t in gone:
                self.store.remove_ids(*t)
            return self.materialize()
        self._counts = Counter()
        seed, lost_rules = self._over_delete(gone)
        # A user rule may conclude about a node none of its premises touch: re-fire it whole.
        self._next = []
        self._fire_rules_fully(r for r in self.rules if "rule:" + r.name in lost_rules)
        return self._stats(self._run(seed + self._next), start)

    def explain(self, triple: tuple[Node, IRI, Term]) -> Derivation:
        """The derivation tree of a present triple: ``r.explain((x, RDF.type, C)).steps()``."""
        ids = self.store._lookup(triple)
        if ids is None or not self.store.contains_ids(*ids):
            raise KeyError(f"triple not in the store: {triple!r}")
        return self._explain(ids, {})

    @property
    def provenance_size(self) -> int:
        """How many inferred triples carry a recorded derivation."""
        return len(self._prov)

    # ---- running -------------------------------------------------------------------------

    def _stats(self, rounds: int, start: float) -> ReasonerStats:
        return ReasonerStats(
            inferred=sum(self._counts.values()), rounds=rounds,
            seconds=time.perf_counter() - start, per_rule=dict(self._counts),
        )

    def _run(self, delta: list[IdTriple]) -> int:
        """Semi-naive loop: each round fires the rules once per triple of the last delta."""
        with paused_gc():
            return self._rounds(delta)

    def _rounds(self, delta: list[IdTriple]) -> int:
        rounds = 0
        type_id, triggers = self._type, self._triggers
        while delta:
            rounds += 1
            self._next = []
            # owl:sameAs rules cost a lookup per triple, so they run only once one exists.
            same = self.profile == "owl2rl" and self._same in self.store._pos
            for triple in delta:
                s, p, o = triple
                if p == type_id:
                    self._on_type(s, o, triple)
                else:
                    self._on_property(s, p, o, triple)
                if same:
                    self._on_same(s, p, o)
                if triggers:
                    self._on_rules(s, p, o)
            delta = self._next
        return rounds

    def _on_rules(self, s: int, p: int, o: int) -> None:
        """User rules with a body pattern that the new triple matches (semi-naive)."""
        for key in (p, None):
            for rule, index in self._triggers.get(key, ()):
                for premises, heads in rule.matches(self.store, (s, p, o), index):
                    for head in heads:
                        self._emit(*head, "rule:" + rule.name, tuple(premises))

    def _fire_rules_fully(self, rules: Iterable[Rule]) -> None:
        """Every match of the given rules in the whole store (re-derivation after removals)."""
        for rule in rules:
            for premises, heads in rule.all_matches(self.store):
                for head in heads:
                    self._emit(*head, "rule:" + rule.name, tuple(premises))

    # ---- equality (owl:sameAs) -----------------------------------------------------------

    def _on_same(self, s: int, p: int, o: int) -> None:
        """eq-rep-s / eq-rep-o / eq-rep-p for a new triple whose terms have sameAs partners."""
        same, spo, emit = self._same, self.store._spo, self._emit
        if p == same:
            self._new_same(s, o)
            return
        premise = (s, p, o)
        for y in list(spo.get(s, {}).get(same, ())):
            emit(y, p, o, "eq-rep-s", (premise, (s, same, y)))
        if not self.store.ids.is_literal(o):
            for y in list(spo.get(o, {}).get(same, ())):
                emit(s, p, y, "eq-rep-o", (premise, (o, same, y)))
        for y in list(spo.get(p, {}).get(same, ())):
            if not isinstance(self.store.ids.term(y), Literal):
                emit(s, y, o, "eq-rep-p", (premise, (p, same, y)))

    def _new_same(self, x: int, y: int) -> None:
        """eq-sym and eq-trans, then copy what is known of ``x`` onto ``y`` (eq-rep-s/o)."""
        same, emit, match = self._same, self._emit, self.store.match_ids
        if x == y or self.store.ids.is_literal(y):
            return  # eq-ref's x sameAs x triples are left out: they say nothing
        link = (x, same, y)
        emit(y, same, x, "eq-sym", (link,))
        for _, _, z in list(match(y, same, None)):
            if z != x:
                emit(x, same, z, "eq-trans", (link, (y, same, z)))
        for _, q, v in list(match(x, None, None)):
            if q != same:
                emit(y, q, v, "eq-rep-s", ((x, q, v), link))
        for w, q, _ in list(match(None, None, x)):
            if q != same:
                emit(w, q, y, "eq-rep-o", ((w, q, x), link))

    def _emit(self, s: int, p: int, o: int, rule: str, premises: _Premises) -> None:
        triple = (s, p, o)  # one tuple shared by the store, the provenance and the delta
        if self.store.add_inferred(triple):
            self._prov[triple] = (rule, *premises)
            self._counts[rule] += 1
            self._next.append(triple)

    def _is_schema(self, t: IdTriple) -> bool:
        """Whether the triple changes the TBox (then the tables must be recompiled)."""
        return t[1] in self._schema_ids or (t[1] == self._type and t[2] in self._schema_ids)

    # ---- instance rules ------------------------------------------------------------------

    def _on_type(self, x: int, c: int, premise: IdTriple) -> None:
        """Rules with ``premise`` = ``x rdf:type c`` as a premise."""
        tb, t, emit = self._tbox, self._type, self._emit
        for d, schema in tb.sup_class.get(c, ()):
            emit(x, t, d, "cax-sco", (premise, schema))
        if self.profile == "rdfs":
            return
        for r, p, prem in tb.svf_by_class.get(c, ()):
            for subj, _, _ in list(self.store.match_ids(None, p, x)):
                emit(subj, t, r, "cls-svf1", ((subj, p, x), premise, *prem))
        for p, v, prem in tb.hv_by_class.get(c, ()):
            emit(x, p, v, "cls-hv1", (premise, *prem))
        for cls, parts, schema in tb.int_by_part.get(c, ()):
            self._try_intersection(x, cls, parts, schema)

    def _try_intersection(self, x: int, cls: int, parts: tuple[int, ...], schema: IdTriple) -> None:
        t, has = self._type, self.store.contains_ids
        if all(has(x, t, part) for part in parts):
            premises = tuple((x, t, part) for part in parts)
            self._emit(x, t, cls, "cls-int1", (*premises, schema))

    def _on_property(self, s: int, p: int, o: int, premise: IdTriple) -> None:
        """Rules with ``premise`` = ``s p o`` (p not rdf:type) as a premise."""
        tb, t, emit = self._tbox, self._type, self._emit
        for q, schema in tb.sup_prop.get(p, ()):
            emit(s, q, o, "prp-spo1", (premise, schema))
        for d, schema in tb.domain.get(p, ()):
            emit(s, t, d, "prp-dom", (premise, schema))
        ranges = tb.range.get(p)
        is_node = not self.store.ids.is_literal(o)
        if ranges and is_node:
            for d, schema in ranges:
                emit(o, t, d, "prp-rng", (premise, schema))
        if self.profile == "owl2rl":
            self._owl_property(s, p, o, premise, is_node)

    def _owl_property(self, s: int, p: int, o: int, premise: IdTriple, is_node: bool) -> None:
        tb, t, emit = self._tbox, self._type, self._emit
        if is_node:  # these put o in subject position: never for a literal
            for q, schema in tb.inverse.get(p, ()):
                emit(o, q, s, "prp-inv", (premise, schema))
            if p in tb.symmetric:
                emit(o, p, s, "prp-symp", (premise, tb.symmetric[p]))
        if p in tb.transitive:
            self._transitive(s, p, o, tb.transitive[p])
        for r, c, prem in tb.svf_by_prop.get(p, ()):
            if c == self._v[OWL.Thing] or self.store.contains_ids(o, t, c):
                emit(s, t, r, "cls-svf1", (premise, (o, t, c), *prem))
        for r, prem in tb.hv_by_pair.get((p, o), ()):
            emit(s, t, r, "cls-hv2", (premise, *prem))

    def _transitive(self, s: int, p: int, o: int, schema: IdTriple) -> None:
        # The new edge can be the first or the second premise of prp-trp.
        match, emit = self.store.match_ids, self._emit
        for _, _, z in list(match(o, p, None)):
            emit(s, p, z, "prp-trp", ((s, p, o), (o, p, z), schema))
        for w, _, _ in list(match(None, p, s)):
            emit(w, p, o, "prp-trp", ((w, p, s), (s, p, o), schema))

    # ---- schema compilation --------------------------------------------------------------

    def _compile(self) -> None:
        """Write the schema closure into the store, then build the lookup tables from it."""
        self._tbox = _Tbox()
        sco, spo = self._v[RDFS.subClassOf], self._v[RDFS.subPropertyOf]
        if self.profile == "owl2rl":
            self._schema_equivalences()
        self._close(sco, "scm-sco")
        self._close(spo, "scm-spo")
        tb = self._tbox
        tb.sup_class = self._edges(sco)
        tb.sup_prop = self._edges(spo)
        tb.domain = self._edges(self._v[RDFS.domain])
        tb.range = self._edges(self._v[RDFS.range])
        if self.profile == "owl2rl":
            self._compile_owl()

    def _edges(self, pred: int) -> dict[int, list[tuple[int, IdTriple]]]:
        table: dict[int, list[tuple[int, IdTriple]]] = defaultdict(list)
        for a, _, b in self.store.match_ids(None, pred, None):
            if a != b:
                table[a].append((b, (a, pred, b)))
        return dict(table)

    def _schema_equivalences(self) -> None:
        """scm-eqc / scm-eqp / scm-int: equivalences and intersections as subsumption edges."""
        v, emit = self._v, self._emit_schema
        sco, spo = v[RDFS.subClassOf], v[RDFS.subPropertyOf]
        for eq, sub, rule in ((v[OWL.equivalentClass], sco, "scm-eqc"),
                              (v[OWL.equivalentProperty], spo, "scm-eqp")):
            for a, _, b in list(self.store.match_ids(None, eq, None)):
                emit(a, sub, b, rule, ((a, eq, b),))
                emit(b, sub, a, rule, ((a, eq, b),))
        for cls, parts, schema in self._intersections():
            for part in parts:
                emit(cls, sco, part, "scm-int", (schema,))

    def _emit_schema(self, s: int, p: int, o: int, rule: str, premises: _Premises) -> None:
        if s != o and self.store.add_ids(s, p, o, inferred=True):
            self._prov[(s, p, o)] = (rule, *premises)
            self._counts[rule] += 1

    def _close(self, pred: int, rule: str) -> None:
        """Transitive closure of a subsumption predicate, breadth-first from every node."""
        direct: dict[int, set[int]] = defaultdict(set)
        for a, _, b in self.store.match_ids(None, pred, None):
            direct[a].add(b)
        for start in list(direct):
            seen, frontier = {start}, [start]
            while frontier:
                mid = frontier.pop()
                for nxt in list(direct.get(mid, ())):
                    if nxt in seen:
                        continue
                    seen.add(nxt)
                    frontier.append(nxt)
                    if mid != start:
                        premises = ((start, pred, mid), (mid, pred, nxt))
                        self._emit_schema(start, pred, nxt, rule, premises)

    def _compile_owl(self) -> None:
        tb, v, match = self._tbox, self._v, self.store.match_ids
        tb.inverse = defaultdict(list)
        for a, inv, b in match(None, v[OWL.inverseOf], None):
            tb.inverse[a].append((b, (a, inv, b)))
            tb.inverse[b].append((a, (a, inv, b)))
        tb.inverse = dict(tb.inverse)
        for key, table in ((OWL.TransitiveProperty, tb.transitive),
                           (OWL.SymmetricProperty, tb.symmetric)):
            for p, t, c in match(None, self._type, v[key]):
                table[p] = (p, t, c)
        self._compile_restrictions()
        for cls, parts, schema in self._intersections():
            for part in set(parts):
                tb.int_by_part.setdefault(part, []).append((cls, parts, schema))

    def _compile_restrictions(self) -> None:
        tb, v, match = self._tbox, self._v, self.store.match_ids
        on_prop = v[OWL.onProperty]
        for r, _, p in match(None, on_prop, None):
            for _, svf, c in match(r, v[OWL.someValuesFrom], None):
                prem = ((r, svf, c), (r, on_prop, p))
                tb.svf_by_class.setdefault(c, []).append((r, p, prem))
                tb.svf_by_prop.setdefault(p, []).append((r, c, prem))
            for _, hv, val in match(r, v[OWL.hasValue], None):
                prem = ((r, hv, val), (r, on_prop, p))
                tb.hv_by_class.setdefault(r, []).append((p, val, prem))
                tb.hv_by_pair.setdefault((p, val), []).append((r, prem))

    def _intersections(self) -> Iterator[tuple[int, tuple[int, ...], IdTriple]]:
        inter = self._v[OWL.intersectionOf]
        for cls, _, head in list(self.store.match_ids(None, inter, None)):
            parts = self._list(head)
            if parts:
                yield cls, tuple(parts), (cls, inter, head)

    def _list(self, head: int) -> list[int]:
        """The members of an rdf:first/rdf:rest list (cycles and forks end the walk)."""
        first, rest, nil = self._v[RDF.first], self._v[RDF.rest], self._v[RDF.nil]
        items: list[int] = []
        seen: set[int] = set()
        node = head
        while node != nil and node not in seen:
            seen.add(node)
            heads = self.store._spo.get(node, {})
            items.extend(heads.get(first, ()))
            tails = heads.get(rest)
            if not tails:
                break
            node = next(iter(tails))
        return items

    # ---- removal (DRed) ------------------------------------------------------------------

    def _over_delete(self, gone: list[IdTriple]) -> tuple[list[IdTriple], set[str]]:
        """Remove ``gone`` and every inference resting on it.

        Returns the re-derivation seed and the rules whose conclusions were removed.
        """
        users: dict[IdTriple, list[IdTriple]] = defaultdict(list)
        for conclusion, recorded in self._prov.items():
            premises = cast(_Premises, recorded[1:])
            for premise in premises:
                users[premise].append(conclusion)
        deleted: set[IdTriple] = set(gone)
        stack = list(gone)
        inferred = self.store.is_inferred_ids
        while stack:
            # A conclusion asserted since it was inferred stays: it needs no derivation.
            for user in users.get(stack.pop(), ()):
                if user not in deleted and inferred(*user):
                    deleted.add(user)
                    stack.append(user)
        lost_rules: set[str] = set()
        for t in deleted:
            self.store.remove_ids(*t)
            record = self._prov.pop(t) if t in self._prov else None
            if record is not None:
                lost_rules.add(cast(str, record[0]))
        return self._rederive_seed({s for s, _, _ in deleted}), lost_rules

    def _rederive_seed(self, subjects: set[int]) -> list[IdTriple]:
        seed: set[IdTriple] = set()
        match = self.store.match_ids
        for node in subjects:
            seed.update(match(node, None, None))
            seed.update(match(None, None, node))
        return list(seed)

    # ---- explanations --------------------------------------------------------------------

    def _explain(self, ids: IdTriple, memo: dict[IdTriple, Derivation]) -> Derivation:
        found = memo.get(ids)
        if found is not None:
            return found
        triple = self.store._triple(ids)
        recorded = self._prov.get(ids)
        if recorded is None or not self.store.is_inferred_ids(*ids):
            result = Derivation(triple, "asserted")
        else:
            rule, premises = cast(str, recorded[0]), cast(_Premises, recorded[1:])
            result = Derivation(triple, rule, tuple(self._explain(p, memo) for p in premises))
        memo[ids] = result
        return result
