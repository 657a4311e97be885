"""Turning what a user types on the command line into store terms.

``TermResolver(store, ["ex=http://x.org/"]).node("Cards team")``

A node may be written ``<http://...>``, as a full IRI, a prefixed name (``rdf:``, ``rdfs:``,
``owl:``, ``xsd:``, ``skos:`` and any ``--prefix NAME=IRI``), ``_:label``, the tail of an IRI
(``card_arrival``), or an ``rdfs:label`` (case-insensitive). A triple is three such parts; a
part with spaces goes in single quotes (``'Cards team'``), a literal in double quotes
(``"42"^^xsd:integer``, ``"chat"@fr``) and ``a`` means ``rdf:type``.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Sequence

from .._errors import ConfigError
from ._loaders import parse_ntriples
from ._store import Triple, TripleStore
from ._terms import IRI, OWL, RDF, RDFS, SKOS, XSD, BNode, Literal, Node, Term

__all__ = ["TermResolver"]

_PARTS = re.compile(r"""<[^>]*>|"(?:[^"\\]|\\.)*"(?:@[\w-]+|\^\^\S+)?|'[^']*'|\S+""")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class TermResolver:
    """Resolves typed-in names against a store; errors list the closest names it knows."""

    def __init__(self, store: TripleStore, prefixes: Sequence[str] = ()) -> None:
        self.store = store
        self.prefixes = {"rdf": RDF.base, "rdfs": RDFS.base, "owl": OWL.base, "xsd": XSD.base,
                         "skos": SKOS.base}
        for item in prefixes:
            name, eq, iri = item.partition("=")
            if not eq or not name or not iri:
                raise ConfigError(f"--prefix expects NAME=IRI (e.g. ex=http://example.org/), "
                                  f"got {item!r}")
            self.prefixes[name] = iri
        self._names: dict[str, set[Node]] | None = None

    def node(self, text: str, where: str = "node") -> Node:
        """A subject or object node from its written form."""
        term = self.term(text.strip(), where)
        if isinstance(term, Literal):
            raise ConfigError(f"{where}: {text!r} is a literal; a node is needed here")
        return term

    def predicate(self, text: str, where: str = "predicate") -> IRI:
        """A predicate from its written form (``a`` is rdf:type)."""
        if text.strip() == "a":
            return RDF.type
        term = self.term(text.strip(), where)
        if not isinstance(term, IRI):
            raise ConfigError(f"{where}: {text!r} is not an IRI, so it cannot be a predicate")
        return term

    def triple(self, text: str) -> Triple:
        """``"ex:alice a ex:Employee"``, ``"<s> <p> <o> ."`` or labels in single quotes."""
        parts = _PARTS.findall(text.strip().removesuffix(" .").strip())
        if len(parts) != 3:
            raise ConfigError(f"TRIPLE must have three parts (subject predicate object), got "
                              f"{len(parts)} in {text!r}; quote labels with spaces: "
                              "'Cards team'")
        return Triple(self.node(parts[0], "subject"), self.predicate(parts[1], "predicate"),
                      self.term(parts[2], "object"))

    def term(self, text: str, where: str) -> Term:
        if text.startswith("<") and text.endswith(">"):
            return IRI(text[1:-1])
        if text.startswith("_:"):
            return BNode(text[2:])
        if text.startswith('"'):
            return self._literal(text, where)
        if text.startswith("'") and text.endswith("'") and len(text) > 1:
            return self._by_name(text[1:-1], where)
        head, colon, tail = text.partition(":")
        if colon and head in self.prefixes:
            return IRI(self.prefixes[head] + tail)
        if _SCHEME.match(text) or text.startswith("urn:"):
            return IRI(text)
        return self._by_name(text, where)

    def _literal(self, text: str, where: str) -> Literal:
        # Reuse the N-Triples reader for escapes and tags; prefixed datatypes expanded first.
        head, sep, dtype = text.rpartition("^^")
        if sep and not dtype.startswith("<"):
            dtype = "<" + self.term(dtype, where).n3()[1:]
            text = head + sep + dtype
        try:
            found = next(iter(parse_ntriples(f"<urn:s> <urn:p> {text} .", source=where)))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {text!r} is not a valid literal", exc.problems) from None
        assert isinstance(found.object, Literal)
        return found.object

    def _by_name(self, text: str, where: str) -> Node:
        names = self._index()
        found = names.get(text.casefold(), set())
        if len(found) == 1:
            return next(iter(found))
        if found:
            listed = ", ".join(sorted(f"<{n}>" for n in found)[:8])
            raise ConfigError(f"{where}: {text!r} names {len(found)} nodes: {listed}; "
                              "write the full IRI in <...>")
        close = difflib.get_close_matches(text.casefold(), list(names), n=5)
        hint = f"did you mean: {', '.join(close)}?" if close else "write the full IRI in <...>"
        raise ConfigError(f"{where}: no node is named {text!r} ({hint})")

    def _index(self) -> dict[str, set[Node]]:
        """Names by which nodes can be written: full IRI, IRI tail after / or #, label."""
        if self._names is not None:
            return self._names
        names: dict[str, set[Node]] = defaultdict(set)
        for ident in self.store._spo.keys() | self.store._osp.keys() | self.store._pos.keys():
            term = self.store.ids.term(ident)
            if isinstance(term, IRI):
                names[term.value.casefold()].add(term)
                for cut in (term.value.rfind("#"), term.value.find("/", 8)):
                    if cut > 0:
                        names[term.value[cut + 1:].casefold()].add(term)
                names[term.local_name.casefold()].add(term)
        for s, _, o in self.store.triples(None, RDFS.label, None):
            if isinstance(o, Literal):
                names[o.lexical.casefold()].add(s)
        self._names = dict(names)
        return self._names
