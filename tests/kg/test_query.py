"""Conjunctive queries, the planner, the SPARQL subset and path enumeration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.kg import (
    RDF,
    And,
    Compare,
    Literal,
    Namespace,
    Not,
    Or,
    Query,
    TripleStore,
    Var,
    all_simple_paths,
    parse_sparql,
)

EX = Namespace("http://example.org/")
LUBM_QUERIES = Path("../shared/data/lubm/lubm-queries.rq")


@pytest.fixture
def store() -> TripleStore:
    """Three people, two courses, ages, and a chain of parts."""
    s = TripleStore()
    for who, age in ((EX.ann, 30), (EX.bob, 25), (EX.cat, 41)):
        s.add(who, RDF.type, EX.Person)
        s.add(who, EX.age, Literal.from_python(age))
    s.add(EX.ann, EX.takes, EX.c1)
    s.add(EX.bob, EX.takes, EX.c1)
    s.add(EX.bob, EX.takes, EX.c2)
    s.add(EX.c1, RDF.type, EX.Course)
    s.add(EX.ann, EX.name, Literal("Ann"))
    s.add(EX.a, EX.next, EX.b)
    s.add(EX.b, EX.next, EX.c)
    s.add(EX.a, EX.next, EX.c)
    s.add(EX.c, EX.next, EX.a)
    return s


def test_join_and_select(store: TripleStore) -> None:
    query = Query(
        [("?x", RDF.type, EX.Person), ("?x", EX.takes, "?c"), ("?c", RDF.type, EX.Course)],
        select=["x"],
    )
    assert sorted(query.run(store), key=str) == [(EX.ann,), (EX.bob,)]
    assert query.count(store) == 2


def test_distinct_and_all_variables(store: TripleStore) -> None:
    query = Query([("?x", EX.takes, "?c")], select=["x"], distinct=True)
    assert query.count(store) == 2
    assert Query([("?x", EX.takes, "?c")]).variables() == ["x", "c"]
    assert len(Query([("?x", EX.takes, "?c")]).run(store)) == 3


def test_filters(store: TripleStore) -> None:
    older = Compare(">", Var("age"), Literal.from_python(28))
    query = Query([("?x", EX.age, "?age")], filters=[older], select=["x"])
    assert sorted(query.run(store), key=str) == [(EX.ann,), (EX.cat,)]
    either = Or((Compare("=", Var("x"), EX.bob), And((older, Not(older)))))
    assert Query([("?x", EX.age, "?age")], filters=[either], select=["x"]).run(store) == [
        (EX.bob,)
    ]


def test_repeated_variable_and_unknown_constant(store: TripleStore) -> None:
    store.add(EX.d, EX.next, EX.d)
    assert Query([("?x", EX.next, "?x")]).run(store) == [(EX.d,)]
    assert Query([("?x", EX.nowhere, "?y")]).run(store) == []


def test_planner_starts_selective_and_stays_connected(store: TripleStore) -> None:
    query = Query([("?x", RDF.type, EX.Person), ("?x", EX.name, Literal("Ann")),
                   ("?c", RDF.type, EX.Course), ("?x", EX.takes, "?c")])
    plan = query.explain_plan(store)
    assert plan[0] == (Var("x"), EX.name, Literal("Ann"))
    assert plan[1][0] == Var("x")  # a join on ?x before the unconnected ?c pattern
    assert query.count(store) == 1


def test_unknown_select_variable() -> None:
    with pytest.raises(ConfigError, match="not in any pattern"):
        Query([("?x", RDF.type, EX.Person)], select=["y"])
    with pytest.raises(ConfigError, match="not a query term"):
        Query([("?x", RDF.type, 5)])  # type: ignore[list-item]


def test_sparql_basic(store: TripleStore) -> None:
    query = parse_sparql(
        """PREFIX ex: <http://example.org/>
        SELECT DISTINCT ?x WHERE { ?x a ex:Person ; ex:takes ?c , ex:c1 .
          ?x ex:age ?age . FILTER(?age >= 25 && !(?age > 29)) }"""
    )
    assert query.run(store) == [(EX.bob,)]
    star = parse_sparql('SELECT * WHERE { ?x <http://example.org/name> "Ann" }')
    assert star.run(store) == [(EX.ann,)]


def test_sparql_literals_and_comments(store: TripleStore) -> None:
    query = parse_sparql(
        """# a comment
        PREFIX : <http://example.org/>
        SELECT ?x WHERE { ?x :age 30 .
          ?x :name "Ann"^^<http://www.w3.org/2001/XMLSchema#string> }"""
    )
    assert query.run(store) == [(EX.ann,)]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("SELECT ?x WHERE { ?x a }", "1:24", "expected a variable, IRI"),
        ("SELECT ?x WHERE { ?x ex:p ?y }", "1:22", "undeclared prefix"),
        ("SELECT WHERE { ?x a ?y }", "1:8", "variables or '\\*'"),
        ("PREFIX ex: <http://x/>\nSELECT ?x WHERE {\n  ?x ex:p ?y . FILTER(?y ~ 3) }", "3:26",
         "unexpected character"),
        ("SELECT ?x WHERE { ?x <http://x/p> ?y . FILTER(?y 3) }", "1:50", "comparison operator"),
        ("ASK { ?x ?p ?o }", "1:1", "PREFIX or SELECT"),
        ("SELECT ?x WHERE { ?x ?p ?o ", "1:28", "'}'"),
        ("SELECT ?z WHERE { ?x ?p ?o }", "1:1", "not in the WHERE clause"),
        ("SELECT ?x WHERE { ?x ?p ?o } }", "1:30", "end of query"),
    ],
)
def test_sparql_errors_have_positions(text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_sparql(text)
    assert f"<string>:{where}:" in str(info.value)


def test_all_lubm_queries_parse() -> None:
    text = LUBM_QUERIES.read_text(encoding="utf-8")
    bodies = re.split(r"^#@ Q\d+ EXPECTED=\d+\n", text, flags=re.M)[1:]
    assert len(bodies) == 14
    queries = [parse_sparql(body) for body in bodies]
    assert queries[1].select == ["X", "Y", "Z"] and len(queries[1].patterns) == 6


def test_all_simple_paths(store: TripleStore) -> None:
    paths = all_simple_paths(store, EX.a, EX.c, predicates=[EX.next])
    assert [len(p) for p in paths] == [1, 2]
    assert paths[1][0].object == EX.b
    assert all_simple_paths(store, EX.a, EX.c, max_len=1) == [paths[0]]
    assert all_simple_paths(store, EX.a, EX.zzz) == []
