"""``hybrid-ai kg``: load, stats, infer, query, path, explain; exit codes and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hybrid_ai.kg import load
from hybrid_ai.kg._cli import app

DATA = Path(__file__).parent / "data"
STAFF = DATA / "staff.ttl"
RULES = DATA / "staff.rules"
BANKING = Path(__file__).parents[2] / "knowledge" / "banking.json"


def kg(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_load_reports_counts_and_converts(tmp_path: Path) -> None:
    out = tmp_path / "staff.nt.gz"
    result = kg("load", STAFF, "--output", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files"][0]["triples"] == data["triples"] == data["saved"]["triples"]
    assert len(load(out)) == data["triples"]
    back = tmp_path / "staff.json"
    assert kg("load", out, "-o", back).exit_code == 0
    assert len(load(back)) == data["triples"]


def test_load_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix : <http://x/> .\n:a :b .\n", encoding="utf-8")
    result = kg("load", bad)
    assert result.exit_code == 1
    assert f"{bad}:2:" in result.stderr


def test_load_to_a_missing_folder_is_a_write_error(tmp_path: Path) -> None:
    result = kg("load", STAFF, "-o", tmp_path / "nodir" / "x.nt")
    assert result.exit_code == 1
    assert f"cannot write {tmp_path / 'nodir' / 'x.nt'}" in result.stderr
    assert "cannot load" not in result.stderr and "UTF-8" not in result.stderr


def test_bad_rules_file_is_called_rules_not_sparql(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text("RULE r1 { ?x <http://ex/p> ?y } => { ?y <http://ex/q>\n", encoding="utf-8")
    result = kg("infer", STAFF, "--rules", bad)
    assert result.exit_code == 1
    assert f"invalid rules in {bad}" in result.stderr and "SPARQL" not in result.stderr
    assert f"{bad}:2:1:" in result.stderr and "each rule is: RULE name" in result.stderr


@pytest.mark.parametrize(("name", "option"), [("latin1.rules", "--rules"),
                                              ("latin1.rq", "--query-file")])
def test_non_utf8_rules_or_query_file_names_the_byte(tmp_path: Path, name: str,
                                                     option: str) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"# caf\xe9\n")
    result = kg("query" if option == "--query-file" else "infer", STAFF, option, bad)
    assert result.exit_code == 1, result.output
    assert f"{bad}:1:6: byte 0xe9 is not UTF-8" in result.stderr
    assert "re-save it as UTF-8" in result.stderr


def test_load_unknown_output_format_is_a_usage_error(tmp_path: Path) -> None:
    result = kg("load", STAFF, "-o", tmp_path / "x.xml")
    assert result.exit_code == 2 and "use .nt, .ttl or .json" in result.stderr


def test_stats_asserted_and_inferred() -> None:
    result = kg("stats", STAFF, "--json")
    data = json.loads(result.stdout)
    assert data["inferred"] > 0 and data["asserted"] + data["inferred"] == data["triples"]
    assert data["degree"]["out"]["max"] >= data["degree"]["out"]["min"] >= 1
    plain = json.loads(kg("stats", STAFF, "--no-infer", "--json").stdout)
    assert plain["inferred"] == 0 and plain["triples"] == data["asserted"]
    assert "asserted" in kg("stats", STAFF).stdout


def test_infer_with_rules_and_output(tmp_path: Path) -> None:
    out = tmp_path / "closed.nt"
    result = kg("infer", STAFF, "--rules", RULES, "-o", out, "--json")
    data = json.loads(result.stdout)
    assert data["per_rule"]["rule:head_is_member"] == 1
    assert data["rounds"] >= 1 and len(load(out)) == data["triples"]


def test_query_table_json_and_plan(tmp_path: Path) -> None:
    text = ("PREFIX : <http://example.org/staff/> SELECT ?x ?c WHERE { ?x a ?c . "
            "?x :headOf :physics }")
    data = json.loads(kg("query", STAFF, "-q", text, "--plan", "--json").stdout)
    assert {row["c"] for row in data["rows"]} >= {"http://example.org/staff/Employee"}
    assert data["plan"][0].endswith("<http://example.org/staff/physics>")
    query_file = tmp_path / "q.rq"
    query_file.write_text(text, encoding="utf-8")
    table = kg("query", STAFF, "-f", query_file, "--no-infer")
    assert table.exit_code == 0 and "(1 rows" in table.stdout and "Professor" in table.stdout


def test_query_errors() -> None:
    bad = kg("query", STAFF, "-q", "SELECT ?x WHERE { ?x a ex:C }")
    assert bad.exit_code == 1 and "--query:1:" in bad.stderr
    assert kg("query", STAFF).exit_code == 2


def test_path_shortest_all_and_via() -> None:
    result = kg("path", BANKING, "--from", "card_arrival", "--to", "'Cards team'", "--json")
    data = json.loads(result.stdout)
    assert [s["text"] for s in data["paths"][0]] == ["card_arrival -handledBy-> Cards team"]
    every = kg("path", BANKING, "--from", "card_arrival", "--to", "Cards team", "--all",
               "--max-length", "2")
    assert every.exit_code == 0 and every.stdout.count("\n") >= 2
    none = kg("path", BANKING, "--from", "card_arrival", "--to", "Cards team", "--via", "about")
    assert none.exit_code == 3 and "no path" in none.stderr


def test_path_unknown_node_suggests_names() -> None:
    result = kg("path", BANKING, "--from", "card_arival", "--to", "Cards team")
    assert result.exit_code == 1 and "did you mean" in result.stderr


@pytest.mark.parametrize("triple", [
    "<http://example.org/staff/alice> a <http://example.org/staff/Employee>",
    "Alice a Employee",
    "'Alice' rdf:type 'Employee' .",
])
def test_explain_in_words(triple: str) -> None:
    result = kg("explain", triple, STAFF)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Alice is a Employee  (because a member of a class")
    assert "    Professor is a kind of Faculty member  (stated in the data)" in lines


def test_explain_json_user_rule_and_not_found() -> None:
    data = json.loads(kg("explain", "alice memberOf physics", STAFF, "--rules", RULES,
                         "--json").stdout)
    assert data["inferred"] is True and data["rule"] == "rule:head_is_member"
    missing = kg("explain", "alice memberOf physics", STAFF)
    assert missing.exit_code == 3 and "neither asserted nor inferred" in missing.stderr
    bad = kg("explain", "alice memberOf", STAFF)
    assert bad.exit_code == 1 and "three parts" in bad.stderr


def test_registered_as_a_sub_app() -> None:
    from hybrid_ai._builtins import hybrid_ai_cli_commands

    assert hybrid_ai_cli_commands()["kg"] is app


def test_bad_profile_and_bad_rules_file(tmp_path: Path) -> None:
    assert kg("infer", STAFF, "--profile", "owl-full").exit_code == 2
    rules = tmp_path / "bad.rules"
    rules.write_text("RULE r { ?x <urn:p> ?y } => { ?z <urn:p> ?x }\n", encoding="utf-8")
    result = kg("infer", STAFF, "--rules", rules)
    assert result.exit_code == 1 and f"{rules}:1:6" in result.stderr
