"""User inference rules in a Datalog form written with SPARQL triple patterns.

``rules = parse_rules(text); Reasoner(store, rules=rules).materialize()``

::

    PREFIX ex: <http://example.org/>
    RULE uncle { ?x ex:parent ?p . ?p ex:brother ?u } => { ?x ex:uncle ?u }
    RULE adult { ?x ex:age ?a . FILTER(?a >= 18) } => { ?x a ex:Adult }

The body is a basic graph pattern with optional FILTERs (the SPARQL subset of
:func:`~hybrid_ai.kg.parse_sparql`); the head is one or more triple patterns whose variables
all occur in the body. The reasoner fires rules semi-naively alongside its own, and records
``rule:NAME`` with the matched body triples as the derivation of each conclusion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from .._errors import ConfigError, Problem
from ._query import Pattern, Query, Var
from ._sparql import _error, _Parser
from ._store import IdTriple, TripleStore
from ._terms import IRI, BNode, Literal

__all__ = ["Rule", "parse_rules"]

_SHAPE = "each rule is: RULE name { ?x <urn:p> ?y } => { ?y <urn:q> ?x }"


@dataclass(frozen=True)
class Rule:
    """One rule: ``Rule("uncle", Query(body_patterns), ((Var("x"), EX.uncle, Var("u")),))``."""

    name: str
    body: Query
    head: tuple[Pattern, ...]

    def __post_init__(self) -> None:
        if self.body.select is not None or not self.body.patterns:
            raise ConfigError(f"rule {self.name!r}: the body must be a non-empty pattern list "
                              "with select=None")
        known = set(self.body.variables())
        loose = sorted({s.name for p in self.head for s in p if isinstance(s, Var)} - known)
        if loose:
            raise ConfigError(f"rule {self.name!r}: head variable(s) "
                              f"{', '.join('?' + n for n in loose)} do not occur in the body; "
                              "bind every head variable in the body")

    def matches(self, store: TripleStore, trigger: IdTriple, index: int
                ) -> Iterator[tuple[list[IdTriple], list[IdTriple]]]:
        """(premises, conclusions) of each body match that uses ``trigger`` as pattern ``index``.

        The premises are the body patterns with the match substituted, so they are exactly
        the triples a derivation rests on.
        """
        binding = _unify(store, self.body.patterns[index], trigger)
        if binding is None:
            return
        yield from self._instances(store, binding)

    def all_matches(self, store: TripleStore) -> Iterator[tuple[list[IdTriple], list[IdTriple]]]:
        """(premises, conclusions) of every body match in the store."""
        yield from self._instances(store, {})

    def _instances(self, store: TripleStore, binding: dict[str, int]
                   ) -> Iterator[tuple[list[IdTriple], list[IdTriple]]]:
        names = self.body.variables()
        for row in self.body.run_ids(store, binding):
            values = dict(zip(names, row, strict=True))
            premises = [_fill(store, p, values) for p in self.body.patterns]
            heads = [_fill(store, p, values) for p in self.head]
            yield premises, [h for h in heads if _valid(store, h)]


def _unify(store: TripleStore, pattern: Pattern, triple: IdTriple) -> dict[str, int] | None:
    binding: dict[str, int] = {}
    for slot, value in zip(pattern, triple, strict=True):
        if isinstance(slot, Var):
            if binding.setdefault(slot.name, value) != value:
                return None
        elif store.ids.id_of(slot) != value:
            return None
    return binding


def _fill(store: TripleStore, pattern: Pattern, values: dict[str, int]) -> IdTriple:
    intern = store.ids.intern
    s, p, o = (values[x.name] if isinstance(x, Var) else intern(x) for x in pattern)
    return (s, p, o)


def _valid(store: TripleStore, triple: IdTriple) -> bool:
    """RDF allows no literal subject and only IRI predicates; such heads are dropped."""
    term = store.ids.term
    return not isinstance(term(triple[0]), Literal) and isinstance(term(triple[1]), IRI)


class _RuleParser(_Parser):
    """The SPARQL parser's pattern grammar, with ``RULE name { body } => { head }``."""

    end = "end of the rules"

    def rules(self) -> list[Rule]:
        out: list[Rule] = []
        seen: set[str] = set()
        while self.tok.kind != "eof":
            if self.keyword("PREFIX"):
                self.prefix()
                continue
            start = self.tok
            if not self.keyword("RULE"):
                raise self.fail("PREFIX or RULE")
            rule = self.rule()
            if rule.name in seen:
                raise _error(f"rule {rule.name!r} is defined twice", self.source, start.line,
                             start.col)
            seen.add(rule.name)
            out.append(rule)
        return out

    def rule(self) -> Rule:
        name_tok = self.tok
        if name_tok.kind not in ("word", "pname", "string"):
            raise self.fail("a rule name after RULE")
        self.i += 1
        name = name_tok.text.strip("\"'")
        body, filters = self.group()
        self.expect("=>")
        head, head_filters = self.group()
        where = (self.source, name_tok.line, name_tok.col)
        if head_filters:
            raise _error(f"rule {name!r}: FILTER belongs in the body, not the head", *where)
        if not body or not head:
            raise _error(f"rule {name!r}: body and head need at least one triple pattern",
                         *where)
        for pattern in head:
            if any(isinstance(s, BNode) for s in pattern):
                raise _error(f"rule {name!r}: blank nodes are not allowed in a head", *where)
        try:
            return Rule(name, Query(body, filters), tuple(head))
        except ConfigError as exc:
            raise _error(str(exc), *where) from None


def parse_rules(text: str, *, source: str | None = None) -> list[Rule]:
    """Rules from text (``PREFIX`` lines and ``RULE name { body } => { head }``).

    ``parse_rules("RULE r { ?x <urn:p> ?y } => { ?y <urn:q> ?x }")``; errors say line:col.
    """
    try:
        return _RuleParser(text, source).rules()
    except ConfigError as exc:
        if not exc.problems:
            raise
        # The parser is shared with SPARQL; name what was being read and show a rule's shape.
        problems = [replace(p, hint=_SHAPE) if _syntax(p) else p for p in exc.problems]
        raise ConfigError(f"invalid rules in {source or 'the text'}", problems) from None


def _syntax(problem: Problem) -> bool:
    return problem.hint is None and "expected" in problem.message
