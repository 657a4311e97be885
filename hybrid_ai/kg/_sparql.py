"""A SPARQL subset: PREFIX, SELECT [DISTINCT] vars|*, WHERE { triples . FILTER(...) }.

``query = parse_sparql("SELECT ?x WHERE { ?x a <http://x/C> }"); query.run(store)``

Triple patterns take ``a``, prefixed names, IRIs, variables, literals (strings with a language
tag or datatype, numbers, booleans), and ``;`` / ``,`` lists. FILTER takes comparisons
(``= != < <= > >=``) joined by ``&&``, ``||``, ``!`` and parentheses. Anything else is a
:class:`~hybrid_ai._errors.ConfigError` that says where (line:col) and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._errors import ConfigError, Location, Problem
from ._query import And, Compare, Filter, Not, Or, Pattern, Query, Slot, Var
from ._terms import IRI, RDF, XSD_BOOLEAN, XSD_DECIMAL, XSD_DOUBLE, XSD_INTEGER, Literal

__all__ = ["parse_sparql"]

_TOKEN = re.compile(
    r"""(?P<ws>\s+|\#[^\n]*)
    |(?P<iri><[^<>"{}|^`\\\s]*>)
    |(?P<var>[?$][A-Za-z_][A-Za-z0-9_]*)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<lang>@[A-Za-z]+(?:-[A-Za-z0-9]+)*)
    |(?P<number>[+-]?(?:\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?))
    |(?P<pname>(?:[A-Za-z][\w.-]*)?:(?:[\w-](?:[\w.-]*[\w-])?)?)
    |(?P<word>[A-Za-z_]\w*)
    |(?P<op>\^\^|&&|\|\||!=|<=|>=|=>|[{}().;,*=<>!])
    """,
    re.VERBOSE,
)
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int
    col: int


def _tokenize(text: str, source: str | None) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _error(f"unexpected character {text[pos]!r}", source, line, pos - line_start + 1)
        kind = m.lastgroup or "op"
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), line, pos - line_start + 1))
        for i in range(pos, m.end()):
            if text[i] == "\n":
                line, line_start = line + 1, i + 1
        pos = m.end()
    tokens.append(_Tok("eof", "", line, pos - line_start + 1))
    return tokens


def _error(message: str, source: str | None, line: int, col: int) -> ConfigError:
    where = Location(source, line, col)
    return ConfigError(f"invalid SPARQL query {source or ''}".rstrip(), [Problem(message, where)])


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, text: str, source: str | None) -> None:
        self.tokens, self.source, self.i = _tokenize(text, source), source, 0
        self.prefixes: dict[str, str] = {}

    # ---- token helpers -------------------------------------------------------------------

    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    end = "end of query"  # what running out of tokens is called in messages

    def fail(self, expected: str) -> ConfigError:
        got = repr(self.tok.text) if self.tok.kind != "eof" else self.end
        return _error(f"expected {expected}, found {got}", self.source, self.tok.line, self.tok.col)

    def keyword(self, word: str) -> bool:
        if self.tok.kind == "word" and self.tok.text.upper() == word:
            self.i += 1
            return True
        return False

    def punct(self, text: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.punct(text):
            raise self.fail(repr(text))

    # ---- grammar -------------------------------------------------------------------------

    def query(self) -> Query:
        while self.keyword("PREFIX"):
            self.prefix()
        if not self.keyword("SELECT"):
            raise self.fail("PREFIX or SELECT")
        distinct = self.keyword("DISTINCT")
        select = self.projection()
        self.keyword("WHERE")
        patterns, filters = self.group()
        if self.tok.kind != "eof":
            raise self.fail("end of query")
        names = {s.name for p in patterns for s in p if isinstance(s, Var)}
        for name in select or ():
            if name not in names:
                raise _error(f"selected variable ?{name} is not in the WHERE clause",
                             self.source, self.tokens[0].line, self.tokens[0].col)
        return Query(patterns, filters, select, distinct)

    def prefix(self) -> None:
        tok = self.tok
        if tok.kind != "pname" or not tok.text.endswith(":"):
            raise self.fail("a prefix name such as 'ub:'")
        self.i += 1
        if self.tok.kind != "iri":
            raise self.fail("an IRI in <...>")
        self.prefixes[tok.text[:-1]] = self.tok.text[1:-1]
        self.i += 1

    def projection(self) -> list[str] | None:
        if self.punct("*"):
            return None
        names: list[str] = []
        while self.tok.kind == "var":
            names.append(self.tok.text[1:])
            self.i += 1
        if not names:
            raise self.fail("variables or '*' after SELECT")
        return names

    def group(self) -> tuple[list[Pattern], list[Filter]]:
        self.expect("{")
        patterns: list[Pattern] = []
        filters: list[Filter] = []
        while not self.punct("}"):
            if self.keyword("FILTER"):
                filters.append(self.bracketed())
            else:
                self.triples(patterns)
            if self.tok.kind == "eof":
                raise self.fail("'}'")
            self.punct(".")
        return patterns, filters

    def triples(self, out: list[Pattern]) -> None:
        subject = self.term(allow_literal=False)
        while True:
            predicate = self.verb()
            while True:
                out.append((subject, predicate, self.term(allow_literal=True)))
                if not self.punct(","):
                    break
            if not self.punct(";") or self.tok.text in (".", "}"):
                return

    def verb(self) -> Slot:
        if self.tok.kind == "word" and self.tok.text == "a":
            self.i += 1
            return RDF.type
        if self.tok.kind not in ("var", "iri", "pname"):
            raise self.fail("a predicate (variable, IRI, prefixed name or 'a')")
        return self.term(allow_literal=False)

    # ---- terms ---------------------------------------------------------------------------

    def term(self, *, allow_literal: bool) -> Slot:
        tok = self.tok
        if tok.kind == "var":
            self.i += 1
            return Var(tok.text[1:])
        if tok.kind == "iri":
            self.i += 1
            return IRI(tok.text[1:-1])
        if tok.kind == "pname":
            return self.pname()
        if allow_literal and (tok.kind in ("string", "number") or tok.text in ("true", "false")):
            return self.literal()
        raise self.fail("a variable, IRI or prefixed name" + (" or literal" * allow_literal))

    def pname(self) -> IRI:
        tok = self.tok
        prefix, _, local = tok.text.partition(":")
        if prefix not in self.prefixes:
            raise _error(f"undeclared prefix {prefix + ':'!r}", self.source, tok.line, tok.col)
        self.i += 1
        return IRI(self.prefixes[prefix] + local)

    def literal(self) -> Literal:
        tok = self.tok
        self.i += 1
        if tok.kind == "number":
            kind = XSD_DOUBLE if "e" in tok.text.lower() else (
                XSD_DECIMAL if "." in tok.text else XSD_INTEGER)
            return Literal(tok.text, kind)
        if tok.kind == "word":
            return Literal(tok.text, XSD_BOOLEAN)
        text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), tok.text[1:-1])
        if self.tok.kind == "lang":
            self.i += 1
            return Literal(text, lang=self.tokens[self.i - 1].text[1:])
        if self.punct("^^"):
            iri = self.term(allow_literal=False)
            if not isinstance(iri, IRI):
                raise self.fail("a datatype IRI")
            return Literal(text, iri)
        return Literal(text)

    # ---- filters -------------------------------------------------------------------------

    def bracketed(self) -> Filter:
        self.expect("(")
        expr = self.disjunction()
        self.expect(")")
        return expr

    def disjunction(self) -> Filter:
        parts = [self.conjunction()]
        while self.punct("||"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self) -> Filter:
        parts = [self.unary()]
        while self.punct("&&"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Filter:
        if self.punct("!"):
            return Not(self.unary())
        if self.tok.text == "(":
            return self.bracketed()
        left = self.term(allow_literal=True)
        op = self.tok.text if self.tok.kind == "op" else ""
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise self.fail("a comparison operator (= != < <= > >=)")
        self.i += 1
        return Compare(op, left, self.term(allow_literal=True))


def parse_sparql(text: str, *, source: str | None = None) -> Query:
    """Parse a SELECT query into a :class:`Query`: ``parse_sparql(text).count(store)``."""
    return _Parser(text, source).query()
