"""RDF 1.1 terms (IRI, blank node, literal), namespaces, and the term <-> int interner.

Terms are small frozen value types, so they hash and compare by content and can key dicts;
the store itself works on the dense ints an :class:`Interner` hands out.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

__all__ = [
    "IRI",
    "OWL",
    "RDF",
    "RDFS",
    "RDF_LANGSTRING",
    "SKOS",
    "XSD",
    "XSD_BOOLEAN",
    "XSD_DATE",
    "XSD_DATETIME",
    "XSD_DECIMAL",
    "XSD_DOUBLE",
    "XSD_INTEGER",
    "XSD_STRING",
    "BNode",
    "Interner",
    "Literal",
    "Namespace",
    "Node",
    "Term",
    "local_name",
]

_XSD = "http://www.w3.org/2001/XMLSchema#"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


@dataclass(frozen=True, slots=True)
class IRI:
    """An IRI: ``IRI("http://example.org/bank/card")``."""

    value: str

    def __str__(self) -> str:
        return self.value

    def n3(self) -> str:
        """N-Triples form: ``IRI("http://x/a").n3() == "<http://x/a>"``."""
        return "<" + _escape_iri(self.value) + ">"

    @property
    def local_name(self) -> str:
        """The part after the last ``#``, ``/`` or ``:``: ``IRI("http://x/a#b").local_name``."""
        return local_name(self.value)


@dataclass(frozen=True, slots=True)
class BNode:
    """A blank node, named by its document label: ``BNode("b0")``."""

    id: str

    def __str__(self) -> str:
        return "_:" + self.id

    def n3(self) -> str:
        """N-Triples form: ``BNode("b0").n3() == "_:b0"``."""
        return "_:" + self.id


XSD_STRING = IRI(_XSD + "string")
XSD_INTEGER = IRI(_XSD + "integer")
XSD_DECIMAL = IRI(_XSD + "decimal")
XSD_DOUBLE = IRI(_XSD + "double")
XSD_BOOLEAN = IRI(_XSD + "boolean")
XSD_DATE = IRI(_XSD + "date")
XSD_DATETIME = IRI(_XSD + "dateTime")
RDF_LANGSTRING = IRI(_RDF + "langString")


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal: ``Literal("5", XSD_INTEGER)``, ``Literal("chat", lang="fr")``, ``Literal("x")``.

    A plain literal *is* an ``xsd:string`` (RDF 1.1); giving ``lang`` makes it an
    ``rdf:langString`` and the tag is lower-cased, since tags compare case-insensitively.
    """

    lexical: str
    datatype: IRI = XSD_STRING
    lang: str | None = None

    def __post_init__(self) -> None:
        if self.lang is None:
            if self.datatype == RDF_LANGSTRING:
                raise ValueError("an rdf:langString literal needs a language tag")
            return
        if self.datatype not in (XSD_STRING, RDF_LANGSTRING):
            raise ValueError(f"a literal with a language tag cannot have datatype {self.datatype}")
        # object.__setattr__ because the dataclass is frozen; this is construction time.
        object.__setattr__(self, "lang", self.lang.lower())
        object.__setattr__(self, "datatype", RDF_LANGSTRING)

    def __str__(self) -> str:
        return self.lexical

    def n3(self) -> str:
        """N-Triples form: ``Literal("5", XSD_INTEGER).n3()`` is ``"5"^^<...#integer>``."""
        quoted = '"' + _escape_string(self.lexical) + '"'
        if self.lang is not None:
            return quoted + "@" + self.lang
        if self.datatype == XSD_STRING:
            return quoted
        return quoted + "^^" + self.datatype.n3()

    def scalar(self) -> str | int | float | bool:
        """A JSON-ready value: the Python value when it is a plain scalar, else the lexical form.

        ``Literal("5", XSD_INTEGER).scalar() == 5``; an ill-typed ``"x"^^xsd:int`` gives ``"x"``.
        """
        try:
            value = self.to_python()
        except ValueError:
            return self.lexical
        return value if isinstance(value, (str, int, float, bool)) else self.lexical

    def to_python(self) -> object:
        """The Python value: ``Literal("5", XSD_INTEGER).to_python() == 5``.

        Unknown datatypes give the lexical form; an ill-typed lexical form raises ValueError.
        """
        convert = _CONVERTERS.get(self.datatype.value)
        if convert is None:
            return self.lexical
        try:
            return convert(self.lexical.strip())
        except (ValueError, InvalidOperation) as exc:
            raise ValueError(f"ill-typed literal {self.n3()}: {exc}") from None

    @classmethod
    def from_python(cls, value: str | bool | int | float | Decimal | _dt.date) -> Literal:
        """The typed literal for a value: ``Literal.from_python(5).datatype == XSD_INTEGER``."""
        if isinstance(value, bool):  # before int: bool is an int subclass
            return cls("true" if value else "false", XSD_BOOLEAN)
        if isinstance(value, int):
            return cls(str(value), XSD_INTEGER)
        if isinstance(value, float):
            return cls(repr(value), XSD_DOUBLE)
        if isinstance(value, Decimal):
            return cls(str(value), XSD_DECIMAL)
        if isinstance(value, _dt.datetime):  # before date: datetime is a date subclass
            return cls(value.isoformat(), XSD_DATETIME)
        if isinstance(value, _dt.date):
            return cls(value.isoformat(), XSD_DATE)
        return cls(value)


Node = IRI | BNode
Term = IRI | BNode | Literal


def _to_bool(text: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _to_datetime(text: str) -> _dt.datetime:
    # fromisoformat only learnt the "Z" suffix in 3.11; the package supports 3.10.
    return _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


_INTEGER_TYPES = [
    "integer", "int", "long", "short", "byte", "nonNegativeInteger", "positiveInteger",
    "nonPositiveInteger", "negativeInteger", "unsignedLong", "unsignedInt", "unsignedShort",
    "unsignedByte",
]
_CONVERTERS: dict[str, Callable[[str], object]] = {
    **{_XSD + name: int for name in _INTEGER_TYPES},
    _XSD + "string": str,
    _RDF + "langString": str,
    _XSD + "decimal": Decimal,
    _XSD + "double": float,
    _XSD + "float": float,
    _XSD + "boolean": _to_bool,
    _XSD + "date": _dt.date.fromisoformat,
    _XSD + "dateTime": _to_datetime,
}

_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"}
_STRING_SPECIAL = re.compile(r'[\\"\n\r]')
_IRI_SPECIAL = re.compile(r'[\x00-\x20<>"{}|^`\\]')


def _escape_string(text: str) -> str:
    """Escape a lexical form for N-Triples: ``_escape_string('a"b') == 'a\\\\"b'``."""
    return _STRING_SPECIAL.sub(lambda m: _STRING_ESCAPES[m.group()], text)


def _escape_iri(value: str) -> str:
    # Characters N-Triples forbids inside <...> can only be written as \u escapes.
    return _IRI_SPECIAL.sub(lambda m: f"\\u{ord(m.group()):04X}", value)


def local_name(iri: str) -> str:
    """The readable tail of an IRI: ``local_name("http://x.org/onto#Card") == "Card"``."""
    trimmed = iri.rstrip("/#")
    for sep in ("#", "/", ":"):
        cut = trimmed.rfind(sep)
        if cut >= 0 and cut + 1 < len(trimmed):
            return trimmed[cut + 1 :]
    return trimmed or iri


class Namespace:
    """IRIs under one base: ``EX = Namespace("http://x.org/"); EX.card == IRI("http://x.org/card")``.

    A namespace built with ``terms`` is closed: an unknown name raises AttributeError, which
    turns a typo such as ``RDFS.subClasOf`` into an error instead of a silently new IRI.
    """

    __slots__ = ("_base", "_terms")

    def __init__(self, base: str, terms: Iterable[str] | None = None) -> None:
        self._base = base
        self._terms = frozenset(terms) if terms is not None else None

    @property
    def base(self) -> str:
        """The namespace IRI as a string."""
        return self._base

    def term(self, name: str) -> IRI:
        """The IRI for ``name``: ``RDF.term("type") == RDF.type``."""
        if self._terms is not None and name not in self._terms:
            raise AttributeError(f"{name!r} is not a term of namespace <{self._base}>")
        return IRI(self._base + name)

    def __getattr__(self, name: str) -> IRI:
        if name.startswith("__"):  # keep copy/pickle protocol probes working
            raise AttributeError(name)
        return self.term(name)

    def __getitem__(self, name: str) -> IRI:
        return self.term(name)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, IRI) and item.value.startswith(self._base)

    def __iter__(self) -> Iterator[IRI]:
        return (IRI(self._base + name) for name in sorted(self._terms or ()))

    def __repr__(self) -> str:
        return f"Namespace({self._base!r})"


RDF = Namespace(
    _RDF,
    [
        "type", "Property", "Statement", "subject", "predicate", "object", "List", "first",
        "rest", "nil", "value", "langString", "HTML", "XMLLiteral", "Bag", "Seq", "Alt",
    ],
)
RDFS = Namespace(
    "http://www.w3.org/2000/01/rdf-schema#",
    [
        "Resource", "Class", "subClassOf", "subPropertyOf", "domain", "range", "label", "comment",
        "member", "Literal", "Datatype", "Container", "ContainerMembershipProperty", "seeAlso",
        "isDefinedBy",
    ],
)
OWL = Namespace(
    "http://www.w3.org/2002/07/owl#",
    [
        "Class", "Thing", "Nothing", "Ontology", "Restriction", "ObjectProperty",
        "DatatypeProperty", "AnnotationProperty", "TransitiveProperty", "SymmetricProperty",
        "AsymmetricProperty", "FunctionalProperty", "InverseFunctionalProperty",
        "ReflexiveProperty", "IrreflexiveProperty", "NamedIndividual", "AllDifferent",
        "equivalentClass", "equivalentProperty", "sameAs", "differentFrom", "inverseOf",
        "disjointWith", "complementOf", "unionOf", "intersectionOf", "oneOf", "onProperty",
        "someValuesFrom", "allValuesFrom", "hasValue", "minCardinality", "maxCardinality",
        "cardinality", "qualifiedCardinality", "maxQualifiedCardinality", "onClass",
        "propertyChainAxiom", "hasKey", "imports", "versionInfo", "distinctMembers", "members",
        "propertyDisjointWith",
    ],
)
XSD = Namespace(
    _XSD,
    [*_INTEGER_TYPES, "string", "decimal", "double", "float", "boolean", "date", "dateTime",
     "time", "duration", "anyURI", "normalizedString", "token", "language", "gYear"],
)
SKOS = Namespace(
    "http://www.w3.org/2004/02/skos/core#",
    [
        "Concept", "ConceptScheme", "prefLabel", "altLabel", "hiddenLabel", "definition", "note",
        "broader", "narrower", "related", "inScheme", "exactMatch", "closeMatch",
    ],
)


class Interner:
    """Maps terms to dense ints and back: ``i = ids.intern(RDF.type); ids.term(i) == RDF.type``.

    Ids are never reused, so an id handed out stays valid for the interner's life.
    """

    __slots__ = ("_ids", "_terms")

    def __init__(self) -> None:
        self._ids: dict[Term, int] = {}
        self._terms: list[Term] = []

    def intern(self, term: Term) -> int:
        """The id of ``term``, assigning the next one if it is new."""
        found = self._ids.get(term)
        if found is not None:
            return found
        new = len(self._terms)
        self._ids[term] = new
        self._terms.append(term)
        return new

    def id_of(self, term: Term) -> int | None:
        """The id of ``term``, or None if it was never interned (nothing is assigned)."""
        return self._ids.get(term)

    def term(self, ident: int) -> Term:
        """The term with id ``ident`` (IndexError if no such id)."""
        return self._terms[ident]

    def is_literal(self, ident: int) -> bool:
        """Whether id ``ident`` stands for a literal (literals never start graph edges)."""
        return isinstance(self._terms[ident], Literal)

    def __len__(self) -> int:
        return len(self._terms)

    def __contains__(self, term: object) -> bool:
        return term in self._ids
