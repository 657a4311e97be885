"""Conjunctive queries over a :class:`TripleStore`, planned by selectivity, joined on int ids.

``Query([(Var("x"), RDF.type, EX.Student)], select=["x"]).run(store)``

The planner orders the patterns greedily: next comes the pattern that is connected to the
variables already bound (a join, not a cross product) and whose index count, with constants
and bound variables as keys, is smallest. Evaluation is a depth-first nested-loop join over
index lookups, bindings are ints, and only the selected columns are turned back into terms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice

from .._errors import ConfigError
from ._store import IdTriple, Triple, TripleStore
from ._terms import IRI, BNode, Literal, Node, Term

__all__ = ["And", "Compare", "Not", "Or", "Query", "Var", "all_simple_paths"]


@dataclass(frozen=True, slots=True)
class Var:
    """A query variable: ``Var("x")`` (written ``?x`` in SPARQL)."""

    name: str

    def __str__(self) -> str:
        return "?" + self.name


Slot = Var | Term
Pattern = tuple[Slot, Slot, Slot]


@dataclass(frozen=True)
class Compare:
    """A comparison filter: ``Compare("<", Var("age"), Literal.from_python(30))``."""

    op: str
    left: Slot
    right: Slot

    def variables(self) -> set[str]:
        """Names of the variables it reads."""
        return {s.name for s in (self.left, self.right) if isinstance(s, Var)}

    def test(self, value: Callable[[Slot], object]) -> bool:
        """Whether it holds, given a function that maps slots to comparable values."""
        a, b = value(self.left), value(self.right)
        if self.op in ("=", "!="):
            return (a == b) == (self.op == "=")
        try:
            return bool(_ORDER[self.op](a, b))
        except TypeError:  # incomparable types: SPARQL's type error makes the filter false
            return False


@dataclass(frozen=True)
class And:
    """All of the filters hold: ``And((f1, f2))``."""

    parts: tuple[Filter, ...]

    def variables(self) -> set[str]:
        """Names of the variables it reads."""
        return set().union(*(p.variables() for p in self.parts))

    def test(self, value: Callable[[Slot], object]) -> bool:
        """Whether every part holds."""
        return all(p.test(value) for p in self.parts)


@dataclass(frozen=True)
class Or:
    """One of the filters holds: ``Or((f1, f2))``."""

    parts: tuple[Filter, ...]

    def variables(self) -> set[str]:
        """Names of the variables it reads."""
        return set().union(*(p.variables() for p in self.parts))

    def test(self, value: Callable[[Slot], object]) -> bool:
        """Whether some part holds."""
        return any(p.test(value) for p in self.parts)


@dataclass(frozen=True)
class Not:
    """The filter does not hold: ``Not(Compare("=", Var("x"), EX.a))``."""

    part: Filter

    def variables(self) -> set[str]:
        """Names of the variables it reads."""
        return self.part.variables()

    def test(self, value: Callable[[Slot], object]) -> bool:
        """Whether the part fails."""
        return not self.part.test(value)


Filter = Compare | And | Or | Not

_ORDER: dict[str, Callable[[object, object], object]] = {
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def _as_value(term: Term) -> object:
    """A comparable Python value: typed literals by value, others by their string form."""
    if isinstance(term, Literal):
        try:
            return term.to_python()
        except ValueError:
            return term.lexical
    return str(term)


@dataclass
class _Step:
    """One planned pattern: per position a constant id, a variable slot, or None."""

    consts: tuple[int | None, int | None, int | None]
    slots: tuple[int | None, int | None, int | None]
    filters: list[Filter] = field(default_factory=list)


class Query:
    """A basic graph pattern with filters: ``Query(patterns, filters, select, distinct)``.

    Strings starting with ``?`` in a pattern are variables too. ``select=None`` means all
    variables in order of appearance. ``run`` returns rows of terms; ``count`` their number.
    """

    def __init__(
        self,
        patterns: Sequence[tuple[Slot | str, Slot | str, Slot | str]],
        filters: Sequence[Filter] = (),
        select: Sequence[str] | None = None,
        distinct: bool = False,
    ) -> None:
        self.patterns: list[Pattern] = [(_slot(a), _slot(b), _slot(c)) for a, b, c in patterns]
        self.filters, self.distinct = list(filters), distinct
        self.select = None if select is None else list(select)
        names = self.variables()
        unknown = [v for v in (self.select or ()) if v not in names]
        unknown += [v for f in self.filters for v in f.variables() if v not in names]
        if unknown:
            raise ConfigError(f"variables not in any pattern: {', '.join(sorted(set(unknown)))}")

    def __repr__(self) -> str:
        return f"Query({self.patterns!r}, {self.filters!r}, {self.select!r}, {self.distinct})"

    def variables(self) -> list[str]:
        """Every variable name, in order of first appearance."""
        seen: dict[str, None] = {}
        for pattern in self.patterns:
            for slot in pattern:
                if isinstance(slot, Var):
                    seen.setdefault(slot.name)
        return list(seen)

    def run(self, store: TripleStore, limit: int | None = None,
            bindings: Mapping[str, Term] | None = None) -> list[tuple[Term, ...]]:
        """The answer rows (terms, in ``select`` order): ``rows = q.run(store)``.

        ``bindings`` fixes variables before the search: ``q.run(store, bindings={"x": card})``.
        """
        term = store.ids.term
        ids = self._bind_terms(store, bindings or {})
        if ids is None:
            return []
        rows = islice(self.run_ids(store, ids), limit)
        return [tuple(term(i) for i in row) for row in rows]

    def _bind_terms(self, store: TripleStore,
                    bindings: Mapping[str, Term]) -> dict[str, int] | None:
        ids: dict[str, int] = {}
        for name, value in bindings.items():
            ident = store.ids.id_of(value)
            if ident is None:
                return None  # a term the store has never seen matches nothing
            ids[name] = ident
        return ids

    def count(self, store: TripleStore) -> int:
        """How many rows ``run`` would return, without building terms."""
        return sum(1 for _ in self.run_ids(store))

    def run_ids(self, store: TripleStore,
                bindings: Mapping[str, int] | None = None) -> Iterator[tuple[int, ...]]:
        """Answer rows as id tuples (the fast path that ``run`` and ``count`` use)."""
        fixed = dict(bindings or {})
        names = self.variables()
        unknown = [n for n in fixed if n not in names]
        if unknown:
            raise ConfigError(f"cannot bind {', '.join(sorted(unknown))}: not variables of the "
                              f"query (it has {', '.join(names) or 'none'})")
        plan = _Planner(store, self, fixed).plan()
        if plan is None:  # a constant the store has never seen: no answers
            return
        cols = [names.index(v) for v in (self.select if self.select is not None else names)]
        seen: set[tuple[int, ...]] = set()
        evaluator = _Evaluator(store, plan, names)
        for name, ident in fixed.items():
            evaluator.binding[names.index(name)] = ident
        for binding in evaluator.solutions():
            row = tuple(binding[c] for c in cols)
            if self.distinct:
                if row in seen:
                    continue
                seen.add(row)
            yield row

    def explain_plan(self, store: TripleStore,
                     bindings: Mapping[str, Term] | None = None) -> list[Pattern]:
        """The patterns in the order the planner will evaluate them, given ``bindings``."""
        ids = self._bind_terms(store, bindings or {})
        order = _Planner(store, self, ids or {}).order()
        return [self.patterns[i] for i in order]


def _slot(item: object) -> Slot:
    if isinstance(item, str) and item.startswith("?"):
        return Var(item[1:])
    if isinstance(item, (Var, IRI, BNode, Literal)):
        return item
    raise ConfigError(f"not a query term or variable: {item!r}")


class _Planner:
    """Greedy selectivity ordering; compiles the chosen order into id-level steps."""

    def __init__(self, store: TripleStore, query: Query,
                 fixed: Mapping[str, int] | None = None) -> None:
        self.store, self.query = store, query
        self.names = query.variables()
        # Pre-bound variables are known ids, so they count as constants when estimating.
        self.fixed = dict(fixed or {})
        self.preset = set(self.fixed)

    def order(self) -> list[int]:
        remaining = list(range(len(self.query.patterns)))
        bound: set[str] = set(self.preset)
        chosen: list[int] = []
        while remaining:
            best = min(remaining, key=lambda i: self._score(self.query.patterns[i], bound))
            remaining.remove(best)
            chosen.append(best)
            bound |= {s.name for s in self.query.patterns[best] if isinstance(s, Var)}
        return chosen

    def _score(self, pattern: Pattern, bound: set[str]) -> tuple[int, float]:
        names = [s.name for s in pattern if isinstance(s, Var)]
        connected = not bound or not names or any(n in bound for n in names)
        ids = [self.fixed.get(s.name) if isinstance(s, Var) else self.store.ids.id_of(s)
               for s in pattern]
        if any(i is None and not isinstance(s, Var) for i, s in zip(ids, pattern, strict=True)):
            return (0, 0.0)  # an unknown constant: this pattern empties the result at once
        estimate = float(_count(self.store, *ids))
        # A bound variable acts as a key; each one cuts the estimate by an assumed fan-out.
        for s in pattern:
            if isinstance(s, Var) and s.name in bound and s.name not in self.fixed:
                estimate = estimate ** 0.5 if estimate > 1 else estimate
        return (0 if connected else 1, estimate)

    def plan(self) -> list[_Step] | None:
        steps: list[_Step] = []
        bound: set[str] = set(self.preset)
        filters = list(self.query.filters)
        for i in self.order():
            step = self._step(self.query.patterns[i])
            if step is None:
                return None
            bound |= {s.name for s in self.query.patterns[i] if isinstance(s, Var)}
            step.filters = [f for f in filters if f.variables() <= bound]
            filters = [f for f in filters if f not in step.filters]
            steps.append(step)
        return steps

    def _step(self, pattern: Pattern) -> _Step | None:
        consts: list[int | None] = []
        slots: list[int | None] = []
        for s in pattern:
            if isinstance(s, Var):
                consts.append(None)
                slots.append(self.names.index(s.name))
                continue
            ident = self.store.ids.id_of(s)
            if ident is None:
                return None
            consts.append(ident)
            slots.append(None)
        return _Step(_triple(consts), _triple(slots))


def _triple(items: list[int | None]) -> tuple[int | None, int | None, int | None]:
    return (items[0], items[1], items[2])


def _count(store: TripleStore, s: int | None, p: int | None, o: int | None) -> int:
    """How many triples match, from index sizes (exact when at most one key is unbound)."""
    if s is not None and p is not None:
        return len(store._spo.get(s, {}).get(p, ())) if o is None else int(
            store.contains_ids(s, p, o))
    if p is not None and o is not None:
        return len(store._pos.get(p, {}).get(o, ()))
    if s is not None and o is not None:
        return len(store._osp.get(o, {}).get(s, ()))
    index, key = (store._spo, s) if s is not None else (
        (store._pos, p) if p is not None else (store._osp, o))
    if key is None:
        return len(store)
    return sum(len(leaf) for leaf in index.get(key, {}).values())


class _Evaluator:
    """Depth-first nested-loop join over the planned steps; bindings are a list of ids."""

    def __init__(self, store: TripleStore, plan: list[_Step], names: list[str]) -> None:
        self.store, self.plan, self.names = store, plan, names
        self.binding: list[int] = [-1] * len(names)

    def solutions(self) -> Iterator[list[int]]:
        return self._solve(0)

    def _solve(self, depth: int) -> Iterator[list[int]]:
        if depth == len(self.plan):
            yield self.binding
            return
        step = self.plan[depth]
        key = [c if c is not None else (self.binding[v] if v is not None and
                                        self.binding[v] >= 0 else None)
               for c, v in zip(step.consts, step.slots, strict=True)]
        s, p, o = key
        if s is not None and p is not None and o is not None:
            # Fully bound: a membership test, no iterator to build.
            if self.store.contains_ids(s, p, o) and self._passes(step):
                yield from self._solve(depth + 1)
            return
        fresh = [v for v, k in zip(step.slots, key, strict=True) if v is not None and k is None]
        for triple in list(self.store.match_ids(s, p, o)):
            if self._bind(step, triple, key) and self._passes(step):
                yield from self._solve(depth + 1)
        for v in fresh:
            self.binding[v] = -1

    def _bind(self, step: _Step, triple: IdTriple, key: list[int | None]) -> bool:
        """Bind the unbound positions; False when one variable meets two values."""
        for slot, k in zip(step.slots, key, strict=True):
            if slot is not None and k is None:
                self.binding[slot] = -1
        for slot, k, value in zip(step.slots, key, triple, strict=True):
            if slot is None or k is not None:
                continue
            if self.binding[slot] >= 0 and self.binding[slot] != value:
                return False  # same variable twice in one pattern (``?x p ?x``)
            self.binding[slot] = value
        return True

    def _passes(self, step: _Step) -> bool:
        if not step.filters:
            return True
        term = self.store.ids.term

        def value(slot: Slot) -> object:
            if isinstance(slot, Var):
                return _as_value(term(self.binding[self.names.index(slot.name)]))
            return _as_value(slot)

        return all(f.test(value) for f in step.filters)


def all_simple_paths(
    store: TripleStore,
    source: Node,
    target: Term,
    predicates: Iterable[IRI] | None = None,
    max_len: int = 4,
) -> list[list[Triple]]:
    """Every cycle-free directed path of at most ``max_len`` edges, shortest first.

    ``all_simple_paths(store, EX.intent, EX.team, max_len=3)``; literals are never passed
    through, and ``predicates`` limits which edges may be followed.
    """
    start, goal = store.ids.id_of(source), store.ids.id_of(target)
    if start is None or goal is None or start == goal:
        return []
    allowed = None if predicates is None else {
        i for i in (store.ids.id_of(p) for p in predicates) if i is not None}
    found: list[list[IdTriple]] = []
    _extend(store, [start], [], goal, allowed, max_len, found)
    found.sort(key=len)
    return [[store._triple(t) for t in path] for path in found]


def _extend(
    store: TripleStore, nodes: list[int], edges: list[IdTriple], goal: int,
    allowed: set[int] | None, max_len: int, found: list[list[IdTriple]],
) -> None:
    if len(edges) >= max_len:
        return
    for nxt, edge in store.neighbours_ids(nodes[-1], allowed, True):
        if nxt in nodes:
            continue
        if nxt == goal:
            found.append([*edges, edge])
        elif not store.ids.is_literal(nxt):
            _extend(store, [*nodes, nxt], [*edges, edge], goal, allowed, max_len, found)
