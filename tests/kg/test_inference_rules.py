"""Every inference rule: it fires, it records its derivation, and removing any one asserted
triple leaves exactly what recomputation from scratch gives (DRed). Also sameAs, owl:Thing,
user rules, query planning with pre-bound variables and RDF 1.1 literal typing."""

from __future__ import annotations

import functools

import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.kg import (
    OWL,
    RDF,
    RDFS,
    XSD_DECIMAL,
    XSD_DOUBLE,
    XSD_INTEGER,
    XSD_STRING,
    Literal,
    Namespace,
    Query,
    Reasoner,
    Rule,
    Triple,
    TripleStore,
    Var,
    parse_json,
    parse_ntriples,
    parse_rules,
    parse_turtle,
)

EX = Namespace("http://example.org/")
PREFIXES = """@prefix : <http://example.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
"""
UNCLE = parse_rules("""PREFIX : <http://example.org/>
RULE uncle { ?x :parent ?p . ?p :brother ?u } => { ?x :uncle ?u }""")

# (rule expected, turtle, the conclusion (s, p, o) as local names; "a" is rdf:type)
CASES = [
    ("cax-sco", ":A rdfs:subClassOf :B . :x a :A .", ("x", "a", "B")),
    ("cax-sco", ":A rdfs:subClassOf owl:Thing . :x a :A .", ("x", "a", OWL.Thing)),
    ("prp-spo1", ":p rdfs:subPropertyOf :q . :a :p :b .", ("a", "q", "b")),
    ("prp-dom", ":p rdfs:domain :C . :a :p :b .", ("a", "a", "C")),
    ("prp-rng", ":p rdfs:range :C . :a :p :b .", ("b", "a", "C")),
    ("prp-inv", ":p owl:inverseOf :q . :a :p :b .", ("b", "q", "a")),
    ("prp-inv", ":p owl:inverseOf :q . :a :q :b .", ("b", "p", "a")),
    ("prp-symp", ":p a owl:SymmetricProperty . :a :p :b .", ("b", "p", "a")),
    ("prp-trp", ":p a owl:TransitiveProperty . :a :p :b . :b :p :c .", ("a", "p", "c")),
    ("cls-svf1", ":R owl:onProperty :p ; owl:someValuesFrom :C . :a :p :b . :b a :C .",
     ("a", "a", "R")),
    ("cls-svf1", ":R owl:onProperty :p ; owl:someValuesFrom owl:Thing . :a :p :b .",
     ("a", "a", "R")),
    ("cls-hv1", ":R owl:onProperty :p ; owl:hasValue :v . :a a :R .", ("a", "p", "v")),
    ("cls-hv2", ":R owl:onProperty :p ; owl:hasValue :v . :a :p :v .", ("a", "a", "R")),
    ("cls-int1", ":M owl:intersectionOf ( :W :P ) . :a a :W , :P .", ("a", "a", "M")),
    ("scm-sco", ":A rdfs:subClassOf :B . :B rdfs:subClassOf :C .",
     ("A", RDFS.subClassOf, "C")),
    ("scm-spo", ":p rdfs:subPropertyOf :q . :q rdfs:subPropertyOf :r .",
     ("p", RDFS.subPropertyOf, "r")),
    ("scm-eqc", ":A owl:equivalentClass :B .", ("B", RDFS.subClassOf, "A")),
    ("scm-eqp", ":p owl:equivalentProperty :q .", ("q", RDFS.subPropertyOf, "p")),
    ("scm-int", ":M owl:intersectionOf ( :W :P ) .", ("M", RDFS.subClassOf, "P")),
    ("eq-sym", ":a owl:sameAs :b .", ("b", OWL.sameAs, "a")),
    ("eq-trans", ":a owl:sameAs :b . :b owl:sameAs :c .", ("a", OWL.sameAs, "c")),
    ("eq-rep-s", ":a owl:sameAs :b . :a :p :x .", ("b", "p", "x")),
    ("eq-rep-o", ":a owl:sameAs :b . :x :p :a .", ("x", "p", "b")),
    ("eq-rep-p", ":p owl:sameAs :q . :a :p :b .", ("a", "q", "b")),
    ("rule:uncle", ":a :parent :p . :p :brother :u .", ("a", "uncle", "u")),
]


def _term(name: object, position: int) -> object:
    if name == "a" and position == 1:
        return RDF.type
    return EX[name] if isinstance(name, str) else name


@functools.cache
def _parsed(turtle: str) -> tuple[Triple, ...]:
    # Parsed once: each parse names list blank nodes afresh, and runs must be comparable.
    return tuple(parse_turtle(PREFIXES + turtle))


def _closure(turtle: str, drop: Triple | None = None) -> tuple[TripleStore, Reasoner]:
    store = TripleStore(_parsed(turtle))
    if drop is not None:
        store.remove(*drop)
    reasoner = Reasoner(store, rules=UNCLE)
    reasoner.materialize()
    return store, reasoner


@pytest.mark.parametrize(("rule", "turtle", "conclusion"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_fires_explains_and_deletes(rule: str, turtle: str,
                                         conclusion: tuple[object, ...]) -> None:
    store, reasoner = _closure(turtle)
    triple = Triple(*(_term(x, i) for i, x in enumerate(conclusion)))  # type: ignore[arg-type]
    assert triple in store and store.is_inferred(*triple)
    derivation = reasoner.explain(triple)
    assert derivation.rule == rule
    assert all(not store.is_inferred(*t) for t in derivation.asserted())
    asserted = [t for t in store.triples() if not store.is_inferred(*t)]
    for gone in asserted:  # DRed after each single removal equals recomputation
        store, reasoner = _closure(turtle)
        reasoner.remove([gone])
        expected, _ = _closure(turtle, drop=gone)
        assert set(store.triples()) == set(expected.triples()), gone
        assert store.inferred_count == reasoner.provenance_size


def test_same_as_never_states_the_trivial_self_link() -> None:
    store, _ = _closure(":a owl:sameAs :b . :b owl:sameAs :a . :a :p :x .")
    assert (EX.a, OWL.sameAs, EX.a) not in store
    assert (EX.b, EX.p, EX.x) in store


def test_same_as_substitution_then_subclass_chain() -> None:
    store, reasoner = _closure(":A rdfs:subClassOf :B . :a a :A . :a owl:sameAs :b .")
    assert (EX.b, RDF.type, EX.B) in store
    rules = {d.rule for d in _walk(reasoner.explain(Triple(EX.b, RDF.type, EX.B)))}
    assert rules & {"eq-rep-s", "cax-sco"}


def _walk(d):  # type: ignore[no-untyped-def]
    yield d
    for p in d.premises:
        yield from _walk(p)


def test_readable_explanation_uses_labels() -> None:
    store, reasoner = _closure(':A rdfs:subClassOf :B ; rdfs:label "Alpha" . :x a :A ; '
                               'rdfs:label "Xavier" .')
    lines = reasoner.explain(Triple(EX.x, RDF.type, EX.B)).readable(store)
    assert lines[0].startswith("Xavier is a B  (because a member of a class")
    assert "  Xavier is a Alpha  (stated in the data)" in lines
    tree = reasoner.explain(Triple(EX.x, RDF.type, EX.B)).to_dict(store)
    assert tree["rule"] == "cax-sco" and len(tree["premises"]) == 2


def test_user_rule_with_filter_and_incremental_add() -> None:
    rules = parse_rules("""PREFIX : <http://example.org/>
        RULE adult { ?x :age ?a . FILTER(?a >= 18) } => { ?x a :Adult }""")
    store = TripleStore(parse_turtle(PREFIXES + ":ann :age 30 . :tim :age 9 ."))
    reasoner = Reasoner(store, rules=rules)
    reasoner.materialize()
    assert (EX.ann, RDF.type, EX.Adult) in store
    assert (EX.tim, RDF.type, EX.Adult) not in store
    reasoner.add([(EX.eve, EX.age, Literal.from_python(40))])
    assert reasoner.explain((EX.eve, RDF.type, EX.Adult)).rule == "rule:adult"


def test_user_rule_head_with_a_constant_subject_is_rederived() -> None:
    rules = parse_rules("""PREFIX : <http://example.org/>
        RULE alarm { ?x :status :broken } => { :alarm :state :on }""")
    store = TripleStore(parse_turtle(PREFIXES + ":m1 :status :broken . :m2 :status :broken ."))
    reasoner = Reasoner(store, rules=rules)
    reasoner.materialize()
    reasoner.remove([(EX.m1, EX.status, EX.broken)])
    assert (EX.alarm, EX.state, EX.on) in store  # m2 still supports it
    reasoner.remove([(EX.m2, EX.status, EX.broken)])
    assert (EX.alarm, EX.state, EX.on) not in store


@pytest.mark.parametrize(("text", "message"), [
    ("RULE r { ?x <urn:p> ?y } => { ?z <urn:q> ?x }", r"\?z do not occur in the body"),
    ("RULE r { ?x <urn:p> ?y } { ?y <urn:q> ?x }", "expected '=>'"),
    ("RULE r { ?x <urn:p> ?y } => { ?y <urn:q> ?x }\nRULE r { ?x <urn:p> ?y } => "
     "{ ?y <urn:q> ?x }", "defined twice"),
    ("RULE r { ?x ex:p ?y } => { ?y <urn:q> ?x }", "undeclared prefix"),
    ("RULE r { } => { <urn:a> <urn:q> <urn:b> }", "at least one triple pattern"),
])
def test_rule_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rules(text, source="my.rules")


def test_rule_error_gives_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules("PREFIX : <urn:x:>\nRULE r { ?x :p ?y } => { ?y :q ?z }", source="r.rules")
    assert str(info.value.problems[0].location) == "r.rules:2:6"


def test_rule_object_is_checked() -> None:
    with pytest.raises(ConfigError, match="head variable"):
        Rule("r", Query([("?x", EX.p, "?y")]), ((Var("q"), EX.p, Var("x")),))


# ---- query planning ----------------------------------------------------------------------


def _people() -> TripleStore:
    store = TripleStore()
    for i in range(50):
        person = EX[f"p{i}"]
        store.add(person, RDF.type, EX.Person)
        store.add(person, EX.worksIn, EX[f"dept{i % 5}"])
    for i in range(5):
        store.add(EX[f"dept{i}"], RDF.type, EX.Department)
    store.add(EX.dept3, EX.name, Literal("Physics"))
    return store


def test_planner_order_by_selectivity() -> None:
    query = Query([("?p", RDF.type, EX.Person), ("?p", EX.worksIn, "?d"),
                   ("?d", RDF.type, EX.Department), ("?d", EX.name, Literal("Physics"))])
    store = _people()
    # 1 name triple, then 10 worksIn into that dept, then the type checks (bound: cheap).
    assert query.explain_plan(store) == [query.patterns[i] for i in (3, 2, 1, 0)]
    assert query.count(store) == 10


def test_planner_uses_prebound_variables() -> None:
    query = Query([("?d", RDF.type, EX.Department), ("?p", EX.worksIn, "?d")], select=["d"])
    store = _people()
    assert query.explain_plan(store)[0] == query.patterns[0]  # 5 departments < 50 worksIn
    # ?p bound to a known person: its one worksIn triple is the cheapest start.
    assert query.explain_plan(store, {"p": EX.p7})[0] == query.patterns[1]
    assert query.run(store, bindings={"p": EX.p7}) == [(EX.dept2,)]
    assert query.run(store, bindings={"p": EX.nobody}) == []
    with pytest.raises(ConfigError, match="cannot bind"):
        list(query.run_ids(store, {"zz": 1}))


# ---- literal typing (RDF 1.1) ------------------------------------------------------------


def test_literal_typing_across_loaders() -> None:
    ttl = list(parse_turtle(PREFIXES + ':a :p "x", 1, 1.5, 1e3, true, "y"@EN .'))
    objects = {t.object for t in ttl}
    assert Literal("x", XSD_STRING) in objects and Literal("1", XSD_INTEGER) in objects
    assert Literal("1.5", XSD_DECIMAL) in objects and Literal("1e3", XSD_DOUBLE) in objects
    assert Literal("y", lang="en") in objects
    nt = next(iter(parse_ntriples('<urn:a> <urn:p> "plain" .')))
    assert nt.object == Literal("plain") and nt.object.datatype == XSD_STRING
    doc = '{"nodes": [{"id": "a", "properties": {"n": 3, "s": "t"}}]}'
    values = {t.object for t in parse_json(doc)}
    assert Literal("3", XSD_INTEGER) in values and Literal("t") in values
