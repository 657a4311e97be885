"""Terms, the interner and the triple store."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import networkx as nx
import pytest

from hybrid_ai.kg import (
    IRI,
    RDF,
    RDF_LANGSTRING,
    RDFS,
    SKOS,
    XSD,
    XSD_BOOLEAN,
    XSD_DECIMAL,
    XSD_DOUBLE,
    XSD_INTEGER,
    XSD_STRING,
    BNode,
    Interner,
    Literal,
    Namespace,
    Triple,
    TripleStore,
    local_name,
)

EX = Namespace("http://example.org/")


@pytest.fixture
def store() -> TripleStore:
    """A small bank graph: intent -> product -> team, plus labels and a literal property."""
    return TripleStore(
        [
            (EX.lost_card, RDF.type, EX.Intent),
            (EX.lost_card, EX.about, EX.card),
            (EX.card, RDF.type, EX.Product),
            (EX.card, RDFS.label, Literal("Card")),
            (EX.card, SKOS.altLabel, Literal("debit card")),
            (EX.card, EX.handledBy, EX.cards_team),
            (EX.cards_team, EX.queue, Literal("cards")),
            (EX.virtual_card, EX.handledBy, EX.cards_team),
        ]
    )


# ---- terms ---------------------------------------------------------------------------------


def test_plain_literal_is_xsd_string() -> None:
    assert Literal("x") == Literal("x", XSD_STRING)
    assert Literal("x").datatype == XSD.string


def test_language_tag_makes_lang_string_and_is_lowercased() -> None:
    lit = Literal("Karte", lang="DE")
    assert lit.lang == "de"
    assert lit.datatype == RDF_LANGSTRING
    assert lit == Literal("Karte", lang="de")
    with pytest.raises(ValueError):
        Literal("x", XSD_INTEGER, lang="en")


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (Literal("5", XSD_INTEGER), 5),
        (Literal("2.50", XSD_DECIMAL), Decimal("2.50")),
        (Literal("1e3", XSD_DOUBLE), 1000.0),
        (Literal("true", XSD_BOOLEAN), True),
        (Literal("0", XSD_BOOLEAN), False),
        (Literal("2024-02-29", XSD.date), dt.date(2024, 2, 29)),
        (Literal("7", XSD.nonNegativeInteger), 7),
        (Literal("hi"), "hi"),
        (Literal("x", IRI("http://example.org/custom")), "x"),
    ],
)
def test_to_python(literal: Literal, value: object) -> None:
    assert literal.to_python() == value


def test_ill_typed_literal_raises() -> None:
    with pytest.raises(ValueError, match="ill-typed"):
        Literal("five", XSD_INTEGER).to_python()


@pytest.mark.parametrize("value", [5, 2.5, True, "s", Decimal("1.10"), dt.date(2020, 1, 2)])
def test_from_python_round_trips(value: object) -> None:
    assert Literal.from_python(value).to_python() == value  # type: ignore[arg-type]


def test_terms_are_hashable_values_and_kinds_differ() -> None:
    assert {IRI("a"), IRI("a")} == {IRI("a")}
    assert len({IRI("a"), BNode("a"), Literal("a")}) == 3


def test_n3_forms_escape() -> None:
    assert IRI("http://x/a b").n3() == "<http://x/a\\u0020b>"
    assert Literal('say "hi"\n').n3() == '"say \\"hi\\"\\n"'
    assert Literal("5", XSD_INTEGER).n3() == '"5"^^<http://www.w3.org/2001/XMLSchema#integer>'
    assert Literal("chat", lang="fr").n3() == '"chat"@fr'
    assert BNode("b1").n3() == "_:b1"


def test_closed_namespace_rejects_typos_open_one_does_not() -> None:
    assert RDFS.subClassOf == IRI("http://www.w3.org/2000/01/rdf-schema#subClassOf")
    with pytest.raises(AttributeError):
        _ = RDFS.subClasOf
    assert EX.anything == IRI("http://example.org/anything")
    assert EX["with space"].value.endswith("with space")
    assert RDF.type in RDF


@pytest.mark.parametrize(
    ("iri", "name"),
    [("http://x.org/onto#Card", "Card"), ("http://x.org/a/b/", "b"), ("urn:bank:pin", "pin")],
)
def test_local_name(iri: str, name: str) -> None:
    assert local_name(iri) == name


def test_interner_gives_dense_stable_ids() -> None:
    ids = Interner()
    first, second = ids.intern(EX.a), ids.intern(Literal("a"))
    assert (first, second) == (0, 1)
    assert ids.intern(EX.a) == 0
    assert ids.term(1) == Literal("a")
    assert ids.id_of(EX.missing) is None
    assert ids.is_literal(1) and not ids.is_literal(0)
    assert len(ids) == 2


# ---- store basics --------------------------------------------------------------------------


def test_add_len_contains_and_duplicates(store: TripleStore) -> None:
    assert len(store) == 8
    assert (EX.card, RDF.type, EX.Product) in store
    assert (EX.card, RDF.type, EX.Intent) not in store
    assert (EX.never_seen, RDF.type, EX.Product) not in store
    assert store.add(EX.card, RDF.type, EX.Product) is False
    assert len(store) == 8


def test_add_rejects_literal_subject() -> None:
    with pytest.raises(TypeError):
        TripleStore().add(Literal("x"), RDF.type, EX.Thing)  # type: ignore[arg-type]


def test_every_pattern_matches_brute_force(store: TripleStore) -> None:
    everything = set(store)
    terms = [EX.card, EX.handledBy, EX.cards_team, RDF.type, None]
    for s, p, o in itertools.product(terms, repeat=3):
        expected = {
            t for t in everything
            if (s is None or t[0] == s) and (p is None or t[1] == p) and (o is None or t[2] == o)
        }
        assert set(store.triples(s, p, o)) == expected, (s, p, o)


def test_triples_returns_named_triples(store: TripleStore) -> None:
    (found,) = store.triples(EX.lost_card, EX.about)
    assert isinstance(found, Triple)
    assert found.object == EX.card


def test_projections_are_distinct(store: TripleStore) -> None:
    assert set(store.subjects(EX.handledBy, EX.cards_team)) == {EX.card, EX.virtual_card}
    assert list(store.objects(None, EX.handledBy)) == [EX.cards_team]
    assert set(store.predicates(EX.card)) == {RDF.type, RDFS.label, SKOS.altLabel, EX.handledBy}
    assert set(store.subjects(RDF.type)) == {EX.lost_card, EX.card}
    assert store.value(EX.card, RDFS.label) == Literal("Card")
    assert store.value(EX.card, EX.nothing) is None


def test_label_prefers_rdfs_label_then_local_name(store: TripleStore) -> None:
    store.add(EX.card, RDFS.label, Literal("Karte", lang="de"))
    assert store.label(EX.card) == "Card"
    assert store.label(EX.cards_team) == "cards_team"
    assert store.label(BNode("b7")) == "_:b7"
    assert store.label(Literal("v")) == "v"


def test_remove_prunes_indexes(store: TripleStore) -> None:
    assert store.remove(EX.virtual_card, EX.handledBy, EX.cards_team)
    assert not store.remove(EX.virtual_card, EX.handledBy, EX.cards_team)
    assert len(store) == 7
    assert list(store.triples(EX.virtual_card)) == []
    assert set(store.subjects(EX.handledBy)) == {EX.card}


# ---- asserted vs inferred ------------------------------------------------------------------


def test_inferred_triples_are_kept_apart(store: TripleStore) -> None:
    assert store.add(EX.virtual_card, RDF.type, EX.Product, inferred=True)
    assert store.is_inferred(EX.virtual_card, RDF.type, EX.Product)
    assert not store.is_inferred(EX.card, RDF.type, EX.Product)
    assert (store.asserted_count, store.inferred_count) == (8, 1)
    # inferring something already asserted changes nothing
    assert not store.add(EX.card, RDF.type, EX.Product, inferred=True)
    assert not store.is_inferred(EX.card, RDF.type, EX.Product)


def test_asserting_an_inferred_triple_promotes_it(store: TripleStore) -> None:
    store.add(EX.virtual_card, RDF.type, EX.Product, inferred=True)
    assert not store.add(EX.virtual_card, RDF.type, EX.Product)
    assert not store.is_inferred(EX.virtual_card, RDF.type, EX.Product)
    assert (store.asserted_count, store.inferred_count) == (9, 0)


def test_clear_inferred_keeps_assertions(store: TripleStore) -> None:
    store.add_many([(EX.a, EX.p, EX.b), (EX.b, EX.p, EX.c)], inferred=True)
    assert store.clear_inferred() == 2
    assert len(store) == 8 and store.inferred_count == 0


def test_id_level_api_for_reasoners(store: TripleStore) -> None:
    intern = store.ids.intern
    p, product = intern(RDF.type), intern(EX.Product)
    assert {s for s, _, _ in store.match_ids(None, p, product)} == {intern(EX.card)}
    new = intern(EX.new)
    assert store.add_ids(new, p, product, inferred=True)
    assert store.is_inferred_ids(new, p, product) and store.contains_ids(new, p, product)
    assert store.remove_ids(new, p, product)


# ---- graph views ---------------------------------------------------------------------------


def test_to_networkx_view(store: TripleStore) -> None:
    graph = store.to_networkx()
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.nodes[EX.card]["label"] == "Card"
    assert graph.has_edge(EX.card, EX.cards_team, key=EX.handledBy)
    assert graph.edges[EX.card, EX.cards_team, EX.handledBy]["predicate"] == EX.handledBy
    assert Literal("cards") not in graph  # literals left out by default
    assert Literal("cards") in store.to_networkx(include_literals=True)
    only = store.to_networkx(predicates=[EX.handledBy])
    assert set(graph.nodes) > set(only.nodes) and only.number_of_edges() == 2


def test_shortest_path_returns_triples(store: TripleStore) -> None:
    path = store.shortest_path(EX.lost_card, EX.cards_team)
    assert path == [
        Triple(EX.lost_card, EX.about, EX.card),
        Triple(EX.card, EX.handledBy, EX.cards_team),
    ]
    assert store.shortest_path(EX.card, EX.card) == []
    assert store.shortest_path(EX.cards_team, EX.lost_card) is None
    assert store.shortest_path(EX.card, EX.nowhere) is None


def test_undirected_path_keeps_stored_direction(store: TripleStore) -> None:
    path = store.shortest_path(EX.card, EX.virtual_card, directed=False)
    assert path == [
        Triple(EX.card, EX.handledBy, EX.cards_team),
        Triple(EX.virtual_card, EX.handledBy, EX.cards_team),
    ]


def test_path_respects_predicates_and_skips_literals(store: TripleStore) -> None:
    store.add(EX.other_team, EX.queue, Literal("cards"))
    assert store.shortest_path(EX.lost_card, EX.cards_team, predicates=[EX.about]) is None
    # two teams share the literal "cards"; a path must not go through it
    assert store.shortest_path(EX.cards_team, EX.other_team, directed=False) is None


def test_literal_scalar_is_json_ready() -> None:
    from hybrid_ai.kg import XSD_DATE, XSD_INTEGER, Literal

    assert Literal("5", XSD_INTEGER).scalar() == 5
    assert Literal("x", XSD_INTEGER).scalar() == "x"  # ill-typed: the lexical form
    assert Literal("2026-11-30", XSD_DATE).scalar() == "2026-11-30"  # a date is not a scalar
    assert Literal("chat", lang="fr").scalar() == "chat"
