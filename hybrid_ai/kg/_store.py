"""An in-memory triple store over interned ints, with an index for every access pattern.

Three indexes (SPO, POS, OSP; each ``dict[int, dict[int, leaf]]``) answer any pattern of
bound and unbound positions from the one index whose leading keys are bound. A leaf holds up
to eight ids as a tuple and more as a set: most leaves hold one id (a name, an OSP predicate),
and a 1-tuple takes 48 bytes where an empty set already takes 216. Readers only use ``in``,
``len`` and iteration, which both kinds share. Asserted and
inferred triples share the indexes; a separate set marks the inferred ones, so a reasoner can
add, count and drop its conclusions without touching what was loaded.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple, cast

from ._terms import IRI, RDFS, BNode, Interner, Literal, Node, Term

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["IdTriple", "Triple", "TripleStore", "paused_gc"]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk load or a materialization.

    Both create millions of long-lived tuples, dicts and sets and no reference cycles, so the
    collector's passes only rescan them: pausing it cut LUBM(1) load + materialize time by
    about a third. It is switched back on afterwards (if it was on before).
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()

IdTriple = tuple[int, int, int]
_Leaf = tuple[int, ...] | set[int]
_Index = dict[int, dict[int, _Leaf]]
_SMALL = 8  # leaves up to this size stay tuples (a linear scan of 8 ints beats hashing)


class Triple(NamedTuple):
    """One statement: ``Triple(IRI("x:card"), RDF.type, IRI("x:Product"))``."""

    subject: Node
    predicate: IRI
    object: Term


class TripleStore:
    """Indexed triples: ``store = TripleStore(); store.add(card, RDF.type, product)``.

    Term-level methods (``add``, ``triples``, ...) take and return terms; the ``*_ids``
    methods work on the interned ints and are what a reasoner should loop over.
    Iterators read live indexes: materialise them (``list(...)``) before changing the store.
    """

    def __init__(self, triples: Iterable[tuple[Node, IRI, Term]] = ()) -> None:
        self.ids = Interner()
        self._spo: _Index = {}
        self._pos: _Index = {}
        self._osp: _Index = {}
        self._inferred: set[IdTriple] = set()
        self._size = 0
        self.add_many(triples)

    # ---- size and membership -------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    @property
    def asserted_count(self) -> int:
        """How many triples were asserted (loaded or added with ``inferred=False``)."""
        return self._size - len(self._inferred)

    @property
    def inferred_count(self) -> int:
        """How many triples were added with ``inferred=True`` and not asserted since."""
        return len(self._inferred)

    def __contains__(self, triple: object) -> bool:
        ids = self._lookup(triple)
        return ids is not None and self.contains_ids(*ids)

    def contains_ids(self, s: int, p: int, o: int) -> bool:
        """Whether the id triple is present: ``store.contains_ids(s, p, o)``."""
        return o in self._spo.get(s, {}).get(p, ())

    def is_inferred(self, subject: Node, predicate: IRI, obj: Term) -> bool:
        """Whether the triple is present only as an inference."""
        ids = self._lookup((subject, predicate, obj))
        return ids is not None and ids in self._inferred

    def is_inferred_ids(self, s: int, p: int, o: int) -> bool:
        """Id form of :meth:`is_inferred`."""
        return (s, p, o) in self._inferred

    def _lookup(self, triple: object) -> IdTriple | None:
        # Terms never interned cannot be in any triple, so a miss answers "absent" cheaply.
        if not isinstance(triple, tuple) or len(triple) != 3:
            return None
        found = [self.ids.id_of(term) for term in triple]
        if None in found:
            return None
        return cast(IdTriple, tuple(found))

    # ---- adding and removing -------------------------------------------------------------

    def add(self, subject: Node, predicate: IRI, obj: Term, *, inferred: bool = False) -> bool:
        """Add one triple; True if it was new: ``store.add(card, RDFS.label, Literal("Card"))``.

        Asserting a triple that was only inferred makes it asserted (and returns False);
        inferring one that is already present changes nothing.
        """
        if not isinstance(subject, (IRI, BNode)) or not isinstance(predicate, IRI):
            raise TypeError(f"not a valid RDF triple: ({subject!r}, {predicate!r}, {obj!r})")
        intern = self.ids.intern
        return self.add_ids(intern(subject), intern(predicate), intern(obj), inferred=inferred)

    def add_ids(self, s: int, p: int, o: int, *, inferred: bool = False) -> bool:
        """Id form of :meth:`add` (ids from ``store.ids.intern``); True if the triple was new."""
        if not self._insert(s, p, o):
            if not inferred and self._inferred:
                self._inferred.discard((s, p, o))
            return False
        if inferred:
            self._inferred.add((s, p, o))
        return True

    def add_inferred(self, triple: IdTriple) -> bool:
        """Add an inferred id triple, keeping this very tuple (a reasoner shares it with its
        provenance records, which saves a tuple per inference); True if it was new."""
        if not self._insert(*triple):
            return False
        self._inferred.add(triple)
        return True

    def _insert(self, s: int, p: int, o: int) -> bool:
        by_p = self._spo.get(s)
        if by_p is None:
            by_p = self._spo[s] = {}
        objs = by_p.get(p)
        if objs is not None and o in objs:
            return False
        by_p[p] = _grow(objs, o)
        _put(self._pos, p, o, s)
        _put(self._osp, o, s, p)
        self._size += 1
        return True

    def add_many(self, triples: Iterable[tuple[Node, IRI, Term]], *, inferred: bool = False) -> int:
        """Add many triples (the loaders' fast path); returns how many were new.

        Unlike :meth:`add`, term kinds are not checked here: loaders already produce valid
        triples, and the check is a measurable share of bulk-load time.
        """
        intern = self.ids.intern
        add_ids = self.add_ids
        added = 0
        with paused_gc():
            for s, p, o in triples:
                added += add_ids(intern(s), intern(p), intern(o), inferred=inferred)
        return added

    def remove(self, subject: Node, predicate: IRI, obj: Term) -> bool:
        """Remove a triple (asserted or inferred); True if it was present."""
        ids = self._lookup((subject, predicate, obj))
        return ids is not None and self.remove_ids(*ids)

    def remove_ids(self, s: int, p: int, o: int) -> bool:
        """Id form of :meth:`remove`."""
        if not self.contains_ids(s, p, o):
            return False
        _drop(self._spo, s, p, o)
        _drop(self._pos, p, o, s)
        _drop(self._osp, o, s, p)
        self._inferred.discard((s, p, o))
        self._size -= 1
        return True

    def clear_inferred(self) -> int:
        """Remove every inferred triple (before re-running a reasoner); returns how many."""
        doomed = list(self._inferred)
        for ids in doomed:
            self.remove_ids(*ids)
        return len(doomed)

    # ---- pattern matching ----------------------------------------------------------------

    def triples(
        self, subject: Node | None = None, predicate: IRI | None = None, obj: Term | None = None
    ) -> Iterator[Triple]:
        """Triples matching a pattern, None as wildcard: ``store.triples(None, RDF.type, cls)``."""
        bound = self._bind((subject, predicate, obj))
        if bound is None:
            return iter(())
        return (self._triple(ids) for ids in self.match_ids(*bound))

    def _bind(self, pattern: tuple[Term | None, ...]) -> list[int | None] | None:
        """Pattern terms as ids (None stays a wildcard); None if a term was never interned."""
        bound = [None if t is None else self.ids.id_of(t) for t in pattern]
        if any(b is None and t is not None for b, t in zip(bound, pattern, strict=True)):
            return None
        return bound

    def __iter__(self) -> Iterator[Triple]:
        return self.triples()

    def match_ids(
        self, s: int | None = None, p: int | None = None, o: int | None = None
    ) -> Iterator[IdTriple]:
        """Id triples matching a pattern, answered from the index whose keys are bound."""
        if s is not None:
            return self._match_s(s, p, o)
        if p is not None:
            return self._match_p(p, o)
        if o is not None:
            return self._match_o(o)
        return self._match_all()

    def _match_s(self, s: int, p: int | None, o: int | None) -> Iterator[IdTriple]:
        by_p = self._spo.get(s, {})
        if p is not None and o is not None:
            if o in by_p.get(p, ()):
                yield (s, p, o)
        elif p is not None:
            for obj in by_p.get(p, ()):
                yield (s, p, obj)
        elif o is not None:
            for pred in self._osp.get(o, {}).get(s, ()):
                yield (s, pred, o)
        else:
            for pred, objs in by_p.items():
                for obj in objs:
                    yield (s, pred, obj)

    def _match_p(self, p: int, o: int | None) -> Iterator[IdTriple]:
        by_o = self._pos.get(p, {})
        if o is not None:
            for subj in by_o.get(o, ()):
                yield (subj, p, o)
            return
        for obj, subjs in by_o.items():
            for subj in subjs:
                yield (subj, p, obj)

    def _match_o(self, o: int) -> Iterator[IdTriple]:
        for subj, preds in self._osp.get(o, {}).items():
            for pred in preds:
                yield (subj, pred, o)

    def _match_all(self) -> Iterator[IdTriple]:
        for subj, by_p in self._spo.items():
            for pred, objs in by_p.items():
                for obj in objs:
                    yield (subj, pred, obj)

    def _triple(self, ids: IdTriple) -> Triple:
        term = self.ids.term
        # The store only ever accepts Node subjects and IRI predicates (see add()).
        return Triple(cast(Node, term(ids[0])), cast(IRI, term(ids[1])), term(ids[2]))

    # ---- projections ---------------------------------------------------------------------

    def subjects(self, predicate: IRI | None = None, obj: Term | None = None) -> Iterator[Node]:
        """Distinct subjects of matching triples: ``store.subjects(RDF.type, product)``."""
        return cast(Iterator[Node], self._distinct(0, (None, predicate, obj)))

    def predicates(self, subject: Node | None = None, obj: Term | None = None) -> Iterator[IRI]:
        """Distinct predicates of matching triples: ``store.predicates(card)``."""
        return cast(Iterator[IRI], self._distinct(1, (subject, None, obj)))

    def objects(self, subject: Node | None = None, predicate: IRI | None = None) -> Iterator[Term]:
        """Distinct objects of matching triples: ``store.objects(card, RDFS.label)``."""
        return self._distinct(2, (subject, predicate, None))

    def _distinct(self, position: int, pattern: tuple[Term | None, ...]) -> Iterator[Term]:
        bound = self._bind(pattern)
        if bound is None:
            return
        seen: set[int] = set()
        for ids in self.match_ids(*bound):
            ident = ids[position]
            if ident not in seen:
                seen.add(ident)
                yield self.ids.term(ident)

    def value(self, subject: Node, predicate: IRI) -> Term | None:
        """One object of ``(subject, predicate, ?)``, the earliest interned, or None."""
        s, p = self.ids.id_of(subject), self.ids.id_of(predicate)
        if s is None or p is None:
            return None
        objs = self._spo.get(s, {}).get(p)
        return self.ids.term(min(objs)) if objs else None

    def label(self, node: Term) -> str:
        """A display name: its rdfs:label (English or untagged first), else the local name."""
        if isinstance(node, Literal):
            return node.lexical
        labels = [t for t in self.objects(node, RDFS.label) if isinstance(t, Literal)]
        if labels:
            labels.sort(key=lambda lit: (lit.lang not in (None, "en"), lit.lang or "", lit.lexical))
            return labels[0].lexical
        return node.local_name if isinstance(node, IRI) else str(node)

    # ---- graph views ---------------------------------------------------------------------

    def to_networkx(
        self, predicates: Collection[IRI] | None = None, *, include_literals: bool = False
    ) -> nx.MultiDiGraph:
        """A networkx view: ``g = store.to_networkx(); nx.pagerank(g)``.

        Nodes are terms with a ``label`` attribute; each triple is an edge keyed by its
        predicate, with ``predicate`` and ``inferred`` attributes. Literal objects are left out
        unless asked for, since they would join unrelated nodes that share a value.
        """
        import networkx as nx  # deferred: only graph algorithms need it

        graph = nx.MultiDiGraph()
        for s, p, o in self._edge_ids(predicates, include_literals):
            subj, pred, obj = self._triple((s, p, o))
            inferred = (s, p, o) in self._inferred
            graph.add_edge(subj, obj, key=pred, predicate=pred, inferred=inferred)
        for node in graph.nodes:
            graph.nodes[node]["label"] = self.label(node)
        return graph

    def _edge_ids(
        self, predicates: Collection[IRI] | None, include_literals: bool
    ) -> Iterator[IdTriple]:
        allowed = self._predicate_ids(predicates)
        is_literal = self.ids.is_literal
        for s, p, o in self.match_ids():
            if (allowed is None or p in allowed) and (include_literals or not is_literal(o)):
                yield (s, p, o)

    def _predicate_ids(self, predicates: Collection[IRI] | None) -> set[int] | None:
        if predicates is None:
            return None
        found = (self.ids.id_of(p) for p in predicates)
        return {i for i in found if i is not None}

    def shortest_path(
        self,
        source: Node,
        target: Term,
        *,
        predicates: Collection[IRI] | None = None,
        directed: bool = True,
    ) -> list[Triple] | None:
        """The triples along a shortest path, or None if there is none.

        ``store.shortest_path(intent, team)`` follows edges forwards; ``directed=False`` also
        walks them backwards, but every triple is still returned as stored. Literals are never
        stepped through. ``[]`` means ``source == target``.
        """
        start, goal = self.ids.id_of(source), self.ids.id_of(target)
        if start is None or goal is None:
            return None
        if start == goal:
            return []
        steps = _PathSearch(self, self._predicate_ids(predicates), directed).run(start, goal)
        return None if steps is None else [self._triple(ids) for ids in steps]

    def neighbours_ids(self, node: int, allowed: set[int] | None, directed: bool) -> Iterator[
        tuple[int, IdTriple]
    ]:
        """Nodes one edge from ``node`` with the edge, for graph searches over ids."""
        for p, objs in self._spo.get(node, {}).items():
            if allowed is None or p in allowed:
                for o in objs:
                    yield o, (node, p, o)
        if directed:
            return
        for s, preds in self._osp.get(node, {}).items():
            for p in preds:
                if allowed is None or p in allowed:
                    yield s, (s, p, node)


class _PathSearch:
    """Breadth-first search over store ids, remembering the edge that reached each node."""

    def __init__(self, store: TripleStore, allowed: set[int] | None, directed: bool) -> None:
        self.store, self.allowed, self.directed = store, allowed, directed

    def run(self, start: int, goal: int) -> list[IdTriple] | None:
        came_by: dict[int, IdTriple | None] = {start: None}
        queue = deque([start])
        is_literal = self.store.ids.is_literal
        while queue:
            node = queue.popleft()
            for nxt, edge in self.store.neighbours_ids(node, self.allowed, self.directed):
                if nxt in came_by:
                    continue
                came_by[nxt] = edge
                if nxt == goal:
                    return _walk_back(came_by, goal)
                if not is_literal(nxt):
                    queue.append(nxt)
        return None


def _walk_back(came_by: dict[int, IdTriple | None], goal: int) -> list[IdTriple]:
    steps: list[IdTriple] = []
    node = goal
    edge = came_by[node]
    while edge is not None:
        steps.append(edge)
        node = edge[0] if edge[2] == node else edge[2]
        edge = came_by[node]
    steps.reverse()
    return steps


def _grow(leaf: _Leaf | None, c: int) -> _Leaf:
    """The leaf with ``c`` added (``c`` is known to be absent)."""
    if leaf is None:
        return (c,)
    if type(leaf) is tuple:
        if len(leaf) < _SMALL:
            return (*leaf, c)
        grown = set(leaf)
        grown.add(c)
        return grown
    assert isinstance(leaf, set)
    leaf.add(c)
    return leaf


def _put(index: _Index, a: int, b: int, c: int) -> None:
    inner = index.get(a)
    if inner is None:
        index[a] = {b: (c,)}
    else:
        inner[b] = _grow(inner.get(b), c)


def _drop(index: _Index, a: int, b: int, c: int) -> None:
    # Prune emptied containers so memory and key-iteration stay proportional to live triples.
    inner = index[a]
    leaf = inner[b]
    if isinstance(leaf, set):
        leaf.discard(c)
        rest: _Leaf = leaf
    else:
        rest = tuple(x for x in leaf if x != c)
    if rest:
        inner[b] = rest
    else:
        del inner[b]
        if not inner:
            del index[a]
