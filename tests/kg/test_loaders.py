"""N-Triples, Turtle, CSV and JSON readers and writers, and load()."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from hybrid_ai._errors import ConfigError, UnknownComponentError
from hybrid_ai.kg import (
    IRI,
    LOADERS,
    OWL,
    RDF,
    RDFS,
    SKOS,
    XSD_BOOLEAN,
    XSD_DECIMAL,
    XSD_DOUBLE,
    XSD_INTEGER,
    BNode,
    Literal,
    Namespace,
    TripleStore,
    guess_format,
    load,
    load_csv,
    parse_json,
    parse_ntriples,
    parse_turtle,
    read_csv,
    read_ntriples,
    save_json,
    save_ntriples,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
LUBM = DATA / "lubm"
UB = Namespace("http://www.lehigh.edu/~zhp2/2004/0401/univ-bench.owl#")
EX = Namespace("http://example.org/")
BANK = Namespace("http://example.org/bank/")
needs_lubm = pytest.mark.skipif(not LUBM.is_dir(), reason="shared LUBM data not present")


def problem_of(error: pytest.ExceptionInfo[ConfigError]) -> tuple[int | None, int | None]:
    location = error.value.problems[0].location
    return location.line, location.column


# ---- N-Triples -----------------------------------------------------------------------------

NT = r"""# a comment line

<http://example.org/a> <http://example.org/p> "line\nbreak \"quoted\" caf\u00E9 \U0001F600" .
<http://example.org/a> <http://example.org/p> "chat"@fr-CA .
<http://example.org/a> <http://example.org/n> "5"^^<http://www.w3.org/2001/XMLSchema#integer> .
_:b1 <http://example.org/p> _:b2 .   # trailing comment
<http://example.org/a\u0020b><http://example.org/p><http://example.org/c>.
"""


def test_ntriples_terms_and_escapes() -> None:
    triples = list(parse_ntriples(NT))
    assert len(triples) == 5
    assert triples[0].object == Literal('line\nbreak "quoted" caf\u00e9 \U0001f600')
    assert triples[1].object == Literal("chat", lang="fr-ca")
    assert triples[2].object == Literal("5", XSD_INTEGER)
    assert triples[3][0::2] == (BNode("b1"), BNode("b2"))
    assert triples[4].subject == IRI("http://example.org/a b")


def test_ntriples_round_trip_through_gzip(tmp_path: Path) -> None:
    store = TripleStore(parse_ntriples(NT))
    path = tmp_path / "out.nt.gz"
    assert save_ntriples(store, path) == 5
    assert set(read_ntriples(path)) == set(store)
    assert set(load(path)) == set(store)


def test_save_ntriples_can_leave_out_inferred(tmp_path: Path) -> None:
    store = TripleStore([(EX.a, EX.p, EX.b)])
    store.add(EX.b, EX.p, EX.c, inferred=True)
    assert save_ntriples(store, tmp_path / "all.nt") == 2
    assert save_ntriples(store, tmp_path / "asserted.nt", include_inferred=False) == 1


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ('<http://x/a> <http://x/p> "unterminated .', 27),
        ("<http://x/a> <http://x/p> <http://x/o>", 39),
        ("<http://x/a> _:p <http://x/o> .", 14),
        ("http://x/a <http://x/p> <http://x/o> .", 1),
    ],
)
def test_malformed_ntriples_line_names_line_and_column(line: str, column: int) -> None:
    text = "<http://x/a> <http://x/p> <http://x/o> .\n\n" + line + "\n"
    with pytest.raises(ConfigError) as error:
        list(parse_ntriples(text, source="bad.nt"))
    assert problem_of(error) == (3, column)
    assert "bad.nt:3" in str(error.value)


def test_bad_escape_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"unknown escape") as error:
        list(parse_ntriples('<http://x/a> <http://x/p> "a\\qb" .'))
    assert problem_of(error)[0] == 1


@needs_lubm
def test_lubm_first_2000_lines() -> None:
    with gzip.open(LUBM / "lubm1.nt.gz", "rt", encoding="utf-8") as handle:
        lines = list(itertools.islice(handle, 2000))
    store = TripleStore(parse_ntriples(lines, source="lubm1.nt.gz"))
    assert len(store) == 2000
    assert (None, RDF.type, UB.Publication) and any(store.triples(None, RDF.type, UB.Publication))
    author = IRI("http://www.Department0.University0.edu/AssistantProfessor0")
    assert author in set(store.objects(None, UB.publicationAuthor))


# ---- Turtle --------------------------------------------------------------------------------


@needs_lubm
def test_univ_bench_ontology_has_293_triples() -> None:
    store = load(LUBM / "univ-bench.ttl")
    assert len(store) == 293
    assert (UB.AssistantProfessor, RDFS.subClassOf, UB.Professor) in store
    assert (UB.Chair, RDFS.label, Literal("chair")) in store
    assert len(list(store.subjects(RDF.type, OWL.Class))) > 40


TTL = r'''
@prefix ex: <http://example.org/> .
@prefix : <http://example.org/default#> .
PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>
@base <http://example.org/base/> .

ex:card a ex:Product , ex:Thing ;
    ex:label "Card"@en ;
    ex:count 3 ; ex:ratio 2.5 ; ex:big 1.0e3 ; ex:neg -7 ;
    ex:active true ;
    ex:since "2024-01-01"^^xsd:date ;
    ex:note """two
lines with "quotes\"""" ;
    ex:rel <relative> ;
    ex:maker [ a ex:Company ; ex:name 'Acme' ] ;
    ex:steps ( ex:one "two" ( ) ) ;
    :local ex:x ;
    .
[] ex:p ex:o .
'''


def test_turtle_subset() -> None:
    store = TripleStore(parse_turtle(TTL))
    card = EX.card
    assert set(store.objects(card, RDF.type)) == {EX.Product, EX.Thing}
    assert store.value(card, EX.label) == Literal("Card", lang="en")
    assert store.value(card, EX.count) == Literal("3", XSD_INTEGER)
    assert store.value(card, EX.ratio) == Literal("2.5", XSD_DECIMAL)
    assert store.value(card, EX.big) == Literal("1.0e3", XSD_DOUBLE)
    assert store.value(card, EX.neg) == Literal("-7", XSD_INTEGER)
    assert store.value(card, EX.active) == Literal("true", XSD_BOOLEAN)
    assert store.value(card, EX.note) == Literal('two\nlines with "quotes"')
    assert store.value(card, EX.rel) == IRI("http://example.org/base/relative")
    assert store.value(card, IRI("http://example.org/default#local")) == EX.x
    maker = store.value(card, EX.maker)
    assert isinstance(maker, BNode)
    assert store.value(maker, EX.name) == Literal("Acme")
    assert len(list(store.triples(None, EX.p, EX.o))) == 1


def test_turtle_collection_is_an_rdf_list() -> None:
    store = TripleStore(parse_turtle(TTL))
    head = store.value(EX.card, EX.steps)
    items = []
    while head != RDF.nil:
        assert isinstance(head, BNode)
        items.append(store.value(head, RDF.first))
        head = store.value(head, RDF.rest)
    assert items == [EX.one, Literal("two"), RDF.nil]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("@prefix ex: <http://x/> .\nex:a ex:b ex:c\nex:d ex:e ex:f .", 3, "expected '.'"),
        ("@prefix ex: <http://x/> .\n\nex:a ex:b nope:c .", 3, "unknown prefix 'nope:'"),
        ('@prefix ex: <http://x/> .\nex:a ex:b "open\n.', 2, "unterminated string"),
        ("@prefix ex: <http://x/> .\nex:a ex:b [ ex:c ex:d .", 2, "expected ']'"),
        ("@prefix ex: <http://x/> .\nex:a ex:b ex:c ;\n  ex:d .", 3, "expected an object"),
        ("<http://x/a> <http://x/b> <bad iri> .", 1, "malformed IRI"),
    ],
)
def test_bad_turtle_names_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse_turtle(text, source="bad.ttl")
    assert problem_of(error)[0] == line


# ---- CSV -----------------------------------------------------------------------------------


def test_csv_with_predicate_column(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("src,rel,dst\ncard,handledBy,cards_team\nhttp://x.org/a,rdfs:seeAlso,b\n")
    store = load(path)
    base = Namespace("urn:hybrid-ai:")
    assert (base.card, base.handledBy, base.cards_team) in store
    assert (IRI("http://x.org/a"), RDFS.seeAlso, base.b) in store


def test_csv_mapping_fixed_predicate_and_literal_objects(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("id;name\ncard;Debit card\npin;PIN number\n")
    store = load_csv(path, subject="id", predicate_value="rdfs:label", object="name",
                     object_is_literal=True, base="http://example.org/bank/", delimiter=";")
    assert store.label(BANK.card) == "Debit card"
    assert len(store) == 2


def test_csv_missing_column_lists_the_header(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("from,rel,to\na,b,c\n")
    with pytest.raises(ConfigError, match="missing column") as error:
        load(path)
    assert "the header has: from, rel, to" in str(error.value)
    assert problem_of(error)[0] == 1


def test_csv_missing_column_says_which_header_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("subject,predicate,object\na,b,c\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert error.value.problems[0].hint is not None
    assert "make the first line the header src,rel,dst" in error.value.problems[0].hint


def test_csv_every_ragged_or_empty_row_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text('src,rel,dst\na,knows,b\nc,knows\nd,knows,e,f\n,knows,g\nh,knows,"i, j"\n')
    with pytest.raises(ConfigError, match="3 bad row") as error:
        list(read_csv(path))
    found = [(p.location.line, p.message) for p in error.value.problems]
    assert found == [(3, "row has 2 cells, the header 3"), (4, "row has 4 cells, the header 3"),
                     (5, "empty 'src' cell")]
    assert "quote a cell holding ','" in (error.value.problems[1].hint or "")


def test_csv_quoted_commas_stay_in_one_cell(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text('id,name\ncard,"Debit card, contactless"\n\npin,PIN\n')
    store = load_csv(path, subject="id", predicate_value="rdfs:label", object="name",
                     object_is_literal=True, base="http://example.org/bank/")
    assert store.label(BANK.card) == "Debit card, contactless"
    assert len(store) == 2


def test_csv_lists_the_first_hundred_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("src,rel,dst\n" + "a,b,c,d\n" * 150)
    with pytest.raises(ConfigError, match="150 bad row") as error:
        load(path)
    assert len(error.value.problems) == 101
    assert error.value.problems[-1].message == "... and 50 more bad row(s)"


def test_csv_empty_cell_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("src,rel,dst\na,p,b\na,p,\n")
    with pytest.raises(ConfigError, match="empty 'dst'") as error:
        load(path)
    assert problem_of(error)[0] == 3


# ---- JSON ----------------------------------------------------------------------------------

KB = """{
  "base": "http://example.org/bank/",
  "nodes": [
    {"id": "card", "type": "Product", "label": "Card", "aliases": ["debit card", "bank card"],
     "properties": {"team": "cards", "rank": 2, "owner": {"@id": "cards_team"},
                    "since": {"@value": "2020-01-01", "@type": "xsd:date"},
                    "tags": ["a", "b"]}},
    {"id": "cards_team", "type": ["Team", "Unit"]},
    {"id": "lost_card_policy", "type": "Policy"}
  ],
  "edges": [
    {"source": "lost_card_policy", "predicate": "appliesTo", "target": "card"},
    {"source": "card", "predicate": "rdfs:seeAlso", "target": "http://example.com/cards"}
  ]
}
"""


def test_json_shape() -> None:
    store = TripleStore(parse_json(KB))
    assert (BANK.card, RDF.type, BANK.Product) in store
    assert store.label(BANK.card) == "Card"
    assert set(store.objects(BANK.card, SKOS.altLabel)) == {Literal("debit card"),
                                                             Literal("bank card")}
    assert store.value(BANK.card, BANK.team) == Literal("cards")
    assert store.value(BANK.card, BANK.rank) == Literal("2", XSD_INTEGER)
    assert store.value(BANK.card, BANK.owner) == BANK.cards_team
    assert store.value(BANK.card, BANK.since).to_python().year == 2020  # type: ignore[union-attr]
    assert len(list(store.objects(BANK.card, BANK.tags))) == 2
    assert set(store.objects(BANK.cards_team, RDF.type)) == {BANK.Team, BANK.Unit}
    assert (BANK.lost_card_policy, BANK.appliesTo, BANK.card) in store
    assert (BANK.card, RDFS.seeAlso, IRI("http://example.com/cards")) in store


def test_json_unknown_edge_field_names_its_line() -> None:
    text = KB.replace('"predicate": "appliesTo"', '"predicat": "appliesTo"')
    with pytest.raises(ConfigError) as error:
        parse_json(text, source="kb.json")
    messages = [str(p) for p in error.value.problems]
    assert any("unknown field 'predicat' in an edge" in m and "did you mean 'predicate'" in m
               for m in messages)
    assert all(p.location.line == 12 for p in error.value.problems)
    assert "kb.json:12" in str(error.value)


def test_json_edge_to_undeclared_node_suggests_the_id() -> None:
    text = KB.replace('"target": "card"', '"target": "crad"')
    with pytest.raises(ConfigError, match="'crad' is not the id of any node") as error:
        parse_json(text)
    assert problem_of(error)[0] == 12
    assert error.value.problems[0].hint == "did you mean 'card'?"


def test_json_collects_every_problem() -> None:
    text = KB.replace('"label": "Card"', '"label": 5').replace('"id": "cards_team"', '"id": ""')
    with pytest.raises(ConfigError) as error:
        parse_json(text)
    lines = sorted(p.location.line or 0 for p in error.value.problems)
    assert lines == [4, 5, 8]  # bad label, the {"@id": "cards_team"} now dangling, empty id


def test_json_syntax_error_has_position() -> None:
    with pytest.raises(ConfigError) as error:
        parse_json('{"nodes": [\n  {"id": "a",}\n]}', source="x.json")
    assert problem_of(error)[0] == 2


def test_json_duplicate_node_id() -> None:
    text = '{"nodes": [\n{"id": "a"},\n{"id": "a"}\n]}'
    with pytest.raises(ConfigError, match="declared twice") as error:
        parse_json(text)
    assert problem_of(error)[0] == 3


def test_unwritable_output_is_a_write_error(tmp_path: Path) -> None:
    store = load_csv(_edges(tmp_path))
    for save in (save_ntriples, save_json):
        with pytest.raises(ConfigError, match="cannot write") as error:
            save(store, tmp_path / "nodir" / "x.nt")
        assert "UTF-8" not in str(error.value) and "cannot load" not in str(error.value)


def test_non_utf8_knowledge_file_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "k.nt"
    path.write_bytes(b'<urn:a> <urn:p> "caf\xe9" .\n')
    with pytest.raises(ConfigError, match="byte 0xe9 is not UTF-8"):
        load(path)


def _edges(tmp_path: Path) -> Path:
    path = tmp_path / "edges.csv"
    path.write_text("src,rel,dst\na,knows,b\n")
    return path


def test_save_json_round_trip(tmp_path: Path) -> None:
    store = TripleStore(parse_json(KB))
    store.add(BANK.card, BANK.inferred_fact, Literal("x"), inferred=True)
    path = tmp_path / "kb.json"
    save_json(store, path, base="http://example.org/bank/")
    document = json.loads(path.read_text())
    card = next(n for n in document["nodes"] if n["id"] == "card")
    assert card["label"] == "Card" and card["type"] == "Product"
    assert card["properties"]["rank"] == 2
    again = load(path)
    assert set(again) == {t for t in store if not store.is_inferred(*t)}


# ---- load() and the registry ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.nt", "nt"), ("a.NT.gz", "nt"), ("a.ttl", "ttl"), ("b.csv", "csv"), ("k.json", "json")],
)
def test_guess_format(name: str, fmt: str) -> None:
    assert guess_format(name) == fmt


def test_unknown_extension_lists_formats() -> None:
    with pytest.raises(UnknownComponentError, match="available: csv, json, nt, ttl"):
        load("graph.rdf")


def test_explicit_format_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "triples.txt"
    path.write_text("<http://x/a> <http://x/p> <http://x/o> .\n")
    assert len(load(path, format="nt")) == 1
    assert sorted(LOADERS) == ["csv", "json", "nt", "ttl"]
    with pytest.raises(ConfigError, match="check the path"):
        load(tmp_path / "absent.nt")


def test_load_into_an_existing_store(tmp_path: Path) -> None:
    path = tmp_path / "more.nt"
    path.write_text("<http://x/a> <http://x/p> <http://x/o> .\n")
    store = TripleStore([(EX.z, EX.p, EX.q)])
    assert load(path, store=store) is store and len(store) == 2


# ---- the shipped banking knowledge base ----------------------------------------------------


def test_banking_knowledge_base_covers_all_77_intents() -> None:
    store = load(ROOT / "knowledge" / "banking.json")
    intents = set(store.subjects(RDF.type, BANK.Intent))
    assert len(intents) == 77
    labels = {store.label(i) for i in intents}
    categories = DATA / "text" / "banking77" / "categories.json"
    if categories.exists():
        assert labels == set(json.loads(categories.read_text()))
    for intent in intents:
        assert store.value(intent, BANK.about) is not None, intent
        team = store.value(intent, BANK.handledBy)
        assert (team, RDF.type, BANK.Team) in store, intent
        priority = store.value(intent, BANK.priority)
        assert priority in {Literal("urgent"), Literal("high"), Literal("normal")}, intent


def test_banking_route_is_a_path() -> None:
    store = load(ROOT / "knowledge" / "banking.json")
    path = store.shortest_path(BANK["intent/compromised_card"], BANK.fraud_team,
                               predicates=[BANK.governedBy, BANK.handledBy, BANK.about])
    assert path is not None and path[-1].object == BANK.fraud_team
