"""The forward-chaining reasoner: each rule on a tiny graph, provenance, incremental updates."""

from __future__ import annotations

import gzip
import itertools
import time

import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.kg import (
    IRI,
    RDF,
    RDFS,
    Literal,
    Namespace,
    Node,
    Reasoner,
    Term,
    Triple,
    TripleStore,
    load,
    parse_ntriples,
    parse_turtle,
)

EX = Namespace("http://example.org/")
LUBM = "../shared/data/lubm"
PREFIXES = """@prefix : <http://example.org/> .
@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
"""


def _store(turtle: str) -> TripleStore:
    return TripleStore(parse_turtle(PREFIXES + turtle))


def _reasoned(turtle: str, profile: str = "owl2rl") -> TripleStore:
    store = _store(turtle)
    Reasoner(store, profile=profile).materialize()  # type: ignore[arg-type]
    return store


def _all(store: TripleStore) -> set[Triple]:
    return set(store.triples())


def test_subclass_domain_range_and_subproperty() -> None:
    store = _reasoned(
        """:Dog rdfs:subClassOf :Mammal . :Mammal rdfs:subClassOf :Animal .
        :owns rdfs:domain :Person ; rdfs:range :Pet ; rdfs:subPropertyOf :cares .
        :cares rdfs:subPropertyOf :knows .
        :rex a :Dog . :ann :owns :rex . :ann :name "Ann" .""",
        profile="rdfs",
    )
    assert (EX.rex, RDF.type, EX.Animal) in store
    assert (EX.Dog, RDFS.subClassOf, EX.Animal) in store
    assert (EX.ann, RDF.type, EX.Person) in store
    assert (EX.rex, RDF.type, EX.Pet) in store
    assert (EX.ann, EX.knows, EX.rex) in store
    assert store.is_inferred(EX.ann, EX.knows, EX.rex)


def test_range_never_types_a_literal() -> None:
    store = _reasoned(':name rdfs:range :Text . :name owl:inverseOf :nameOf . :a :name "x" .')
    assert not any(isinstance(t.subject, Literal) for t in store.triples())


def test_inverse_symmetric_and_transitive() -> None:
    store = _reasoned(
        """:partOf a owl:TransitiveProperty . :hasPart owl:inverseOf :partOf .
        :near a owl:SymmetricProperty .
        :a :partOf :b . :b :partOf :c . :c :partOf :d . :x :near :y ."""
    )
    assert (EX.a, EX.partOf, EX.d) in store
    assert (EX.d, EX.hasPart, EX.a) in store
    assert (EX.y, EX.near, EX.x) in store


def test_equivalent_class_and_property() -> None:
    store = _reasoned(
        """:Human owl:equivalentClass :Person . :likes owl:equivalentProperty :fancies .
        :bob a :Person . :bob :fancies :tea ."""
    )
    assert (EX.bob, RDF.type, EX.Human) in store
    assert (EX.bob, EX.likes, EX.tea) in store


def test_intersection_both_directions() -> None:
    store = _reasoned(
        """:Mother owl:intersectionOf ( :Woman :Parent ) .
        :ann a :Woman , :Parent . :eve a :Mother . :zoe a :Woman ."""
    )
    assert (EX.ann, RDF.type, EX.Mother) in store
    assert (EX.eve, RDF.type, EX.Woman) in store and (EX.eve, RDF.type, EX.Parent) in store
    assert (EX.zoe, RDF.type, EX.Mother) not in store


def test_some_values_from_in_a_class_definition() -> None:
    store = _reasoned(
        """:Student owl:intersectionOf ( :Person [ a owl:Restriction ;
            owl:onProperty :takes ; owl:someValuesFrom :Course ] ) .
        :GradCourse rdfs:subClassOf :Course .
        :ann a :Person . :ann :takes :c1 . :c1 a :GradCourse .
        :bob a :Person . :bob :takes :c2 .
        :cat :takes :c1 ."""
    )
    assert (EX.ann, RDF.type, EX.Student) in store
    assert (EX.bob, RDF.type, EX.Student) not in store  # c2 is not known to be a Course
    assert (EX.cat, RDF.type, EX.Student) not in store  # not known to be a Person


def test_some_values_from_when_the_filler_type_comes_later() -> None:
    store = _reasoned(
        """:Teacher owl:equivalentClass [ a owl:Restriction ; owl:onProperty :teaches ;
            owl:someValuesFrom :Course ] .
        :teaches rdfs:range :Course . :t :teaches :c ."""
    )
    assert (EX.t, RDF.type, EX.Teacher) in store


def test_has_value_both_directions() -> None:
    store = _reasoned(
        """:Local owl:equivalentClass [ a owl:Restriction ; owl:onProperty :city ;
            owl:hasValue :Paris ] .
        :a :city :Paris . :b a :Local ."""
    )
    assert (EX.a, RDF.type, EX.Local) in store
    assert (EX.b, EX.city, EX.Paris) in store


def test_rdfs_profile_skips_owl_rules() -> None:
    store = _reasoned(":p owl:inverseOf :q . :a :p :b .", profile="rdfs")
    assert (EX.b, EX.q, EX.a) not in store


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError, match="profile"):
        Reasoner(TripleStore(), profile="owl-full")  # type: ignore[arg-type]


def test_stats_and_rematerialize_is_stable() -> None:
    store = _store(":A rdfs:subClassOf :B . :x a :A .")
    reasoner = Reasoner(store)
    stats = reasoner.materialize()
    assert stats.per_rule == {"cax-sco": 1} and stats.inferred == 1 and stats.rounds >= 1
    before = _all(store)
    assert reasoner.materialize().inferred == 1 and _all(store) == before


def test_explain_goes_down_to_asserted_triples() -> None:
    store = _store(
        """:Student owl:intersectionOf ( :Person [ a owl:Restriction ;
            owl:onProperty :takes ; owl:someValuesFrom :Course ] ) .
        :Grad rdfs:subClassOf :Person . :ann a :Grad . :ann :takes :c . :c a :Course ."""
    )
    reasoner = Reasoner(store)
    reasoner.materialize()
    derivation = reasoner.explain((EX.ann, RDF.type, EX.Student))
    assert derivation.rule == "cls-int1"

    def leaves(d: object) -> set[Triple]:
        assert hasattr(d, "premises")
        if not d.premises:
            assert d.rule == "asserted"  # type: ignore[attr-defined]
            return {d.triple}  # type: ignore[attr-defined]
        return set().union(*(leaves(p) for p in d.premises))

    found = leaves(derivation)
    assert derivation.asserted() == found
    assert Triple(EX.ann, RDF.type, EX.Grad) in found
    assert Triple(EX.c, RDF.type, EX.Course) in found
    assert all(not store.is_inferred(*t) for t in found)
    assert "[cls-int1]" in derivation.steps()[0]
    assert reasoner.explain((EX.ann, RDF.type, EX.Grad)).rule == "asserted"
    with pytest.raises(KeyError):
        reasoner.explain((EX.ann, RDF.type, EX.Nothing))


ONTOLOGY = """:partOf a owl:TransitiveProperty . :hasPart owl:inverseOf :partOf .
:Student owl:intersectionOf ( :Person [ a owl:Restriction ;
    owl:onProperty :takes ; owl:someValuesFrom :Course ] ) .
:Grad rdfs:subClassOf :Person . :takes rdfs:range :Course .
"""
# Parsed once, so every store shares the same blank-node labels and whole graphs compare equal.
ONTOLOGY_TRIPLES = parse_turtle(PREFIXES + ONTOLOGY)
FACTS: list[tuple[Node, IRI, Term]] = [
    (EX.a, EX.partOf, EX.b), (EX.b, EX.partOf, EX.c), (EX.c, EX.partOf, EX.d),
    (EX.ann, RDF.type, EX.Grad), (EX.ann, EX.takes, EX.c1), (EX.bob, RDF.type, EX.Person),
    (EX.bob, EX.takes, EX.c1), (EX.ann, RDF.type, EX.Person),
]


def _onto_store() -> TripleStore:
    return TripleStore(ONTOLOGY_TRIPLES)


def _from_scratch(facts: list[tuple[Node, IRI, Term]]) -> set[Triple]:
    store = _onto_store()
    store.add_many(facts)
    Reasoner(store).materialize()
    return _all(store)


def test_incremental_add_equals_recomputation() -> None:
    store = _onto_store()
    store.add_many(FACTS[:4])
    reasoner = Reasoner(store)
    reasoner.materialize()
    reasoner.add(FACTS[4:])
    assert _all(store) == _from_scratch(FACTS)


@pytest.mark.parametrize("index", range(len(FACTS)))
def test_remove_equals_recomputation(index: int) -> None:
    store = _onto_store()
    store.add_many(FACTS)
    reasoner = Reasoner(store)
    reasoner.materialize()
    reasoner.remove([FACTS[index]])
    rest = FACTS[:index] + FACTS[index + 1 :]
    assert _all(store) == _from_scratch(rest)
    assert store.inferred_count == reasoner.provenance_size


def test_remove_then_add_back_and_schema_change() -> None:
    store = _onto_store()
    store.add_many(FACTS)
    reasoner = Reasoner(store)
    reasoner.materialize()
    reasoner.remove(FACTS[:2])
    reasoner.add(FACTS[:2])
    assert _all(store) == _from_scratch(FACTS)
    reasoner.add([(EX.Person, RDFS.subClassOf, EX.Agent)])
    assert (EX.bob, RDF.type, EX.Agent) in store
    reasoner.remove([(EX.Person, RDFS.subClassOf, EX.Agent)])
    assert (EX.bob, RDF.type, EX.Agent) not in store
    assert _all(store) == _from_scratch(FACTS)


def test_random_removals_match_recomputation() -> None:
    for combo in itertools.combinations(range(len(FACTS)), 2):
        store = _onto_store()
        store.add_many(FACTS)
        reasoner = Reasoner(store)
        reasoner.materialize()
        reasoner.remove([FACTS[i] for i in combo])
        rest = [f for i, f in enumerate(FACTS) if i not in combo]
        assert _all(store) == _from_scratch(rest), combo


def test_lubm_slice_is_fast_and_reaches_fixpoint() -> None:
    start = time.perf_counter()
    store = load(f"{LUBM}/univ-bench.ttl")
    with gzip.open(f"{LUBM}/lubm1.nt.gz", "rt", encoding="utf-8") as handle:
        store.add_many(parse_ntriples(itertools.islice(handle, 3000)))
    reasoner = Reasoner(store)
    stats = reasoner.materialize()
    assert stats.inferred > 1000
    assert not any(isinstance(t.subject, Literal) for t in store.triples())
    size = len(store)
    # A fixpoint: firing every rule once more on every triple adds nothing.
    assert reasoner._run(list(store.match_ids())) == 1
    assert len(store) == size
    assert time.perf_counter() - start < 5


def _lubm_slice(lines: int) -> TripleStore:
    store = load(f"{LUBM}/univ-bench.ttl")
    with gzip.open(f"{LUBM}/lubm1.nt.gz", "rt", encoding="utf-8") as handle:
        store.add_many(parse_ntriples(itertools.islice(handle, lines)))
    return store


def test_lubm_slice_removals_match_recomputation() -> None:
    store = _lubm_slice(1500)
    reasoner = Reasoner(store)
    reasoner.materialize()
    asserted = sorted((t for t in store.triples() if not store.is_inferred(*t)), key=str)
    doomed = asserted[::97]  # a spread of triples from every part of the graph
    reasoner.remove(doomed)
    fresh = _lubm_slice(1500)
    for t in doomed:
        fresh.remove(*t)
    Reasoner(fresh).materialize()
    assert _all(store) == _all(fresh)


def test_add_before_materialize_runs_everything() -> None:
    store = _store(":A rdfs:subClassOf :B .")
    reasoner = Reasoner(store)
    reasoner.add([(EX.x, RDF.type, EX.A)])
    assert (EX.x, RDF.type, EX.B) in store
    assert reasoner.explain((EX.x, RDF.type, EX.B)).rule == "cax-sco"


def test_asserting_an_inference_keeps_it_through_removals() -> None:
    store = _store(":A rdfs:subClassOf :B . :B rdfs:subClassOf :C . :x a :A .")
    reasoner = Reasoner(store)
    reasoner.materialize()
    reasoner.add([(EX.x, RDF.type, EX.B)])
    assert reasoner.explain((EX.x, RDF.type, EX.B)).rule == "asserted"
    reasoner.remove([(EX.x, RDF.type, EX.A)])
    assert (EX.x, RDF.type, EX.B) in store and (EX.x, RDF.type, EX.C) in store
    assert (EX.x, RDF.type, EX.A) not in store
