"""Decision tables: cell syntax, the DMN hit policies, the static gap/overlap check, errors with
file:line:column, and tables in rule files and the rules stage."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from hybrid_ai import Blackboard, Case, ConfigError
from hybrid_ai.rules import (
    DecisionTableError,
    RulesStage,
    check_table,
    load_rules,
    load_table,
    parse_table,
)

PRICING = """\
# hit: UNIQUE
# id: pricing
in: fields.age,in: fields.country,out: label,out: discount,# why
< 18,-,minor,0,no discounts for minors
[18..65),"'DE','FR'",standard,10,
[18..65),"not('DE','FR')",abroad,5,
>= 65,-,senior,=fields.base * 0.2,
"""


def env(**fields: Any) -> dict[str, Any]:
    return {"fields": fields}


def values(table_text: str, **fields: Any) -> list[dict[str, Any]]:
    return [dict(h.values) for h in parse_table(table_text).evaluate(env(**fields))]


def test_unique_table_picks_the_one_matching_row() -> None:
    table = parse_table(PRICING, "pricing.csv")
    assert values(PRICING, age=30, country="DE") == [{"label": "standard", "discount": 10}]
    assert values(PRICING, age=30, country="IT") == [{"label": "abroad", "discount": 5}]
    assert values(PRICING, age=65, base=100) == [{"label": "senior", "discount": 20.0}]
    assert values(PRICING, age=17) == [{"label": "minor", "discount": 0}]
    hit = table.evaluate(env(age=17))[0]
    assert hit.rows[0].number == 1 and hit.rows[0].line == 4
    assert hit.rows[0].annotation == "no discounts for minors"
    assert table.id == "pricing" and table.hit == "UNIQUE" and len(table.version) == 12


def test_rows_become_conditions_of_the_safe_language() -> None:
    table = parse_table(PRICING)
    assert [r.condition.source for r in table.rows] == [
        "fields.age < 18",
        "18 <= fields.age < 65 and fields.country in ['DE', 'FR']",
        "18 <= fields.age < 65 and not (fields.country in ['DE', 'FR'])",
        "fields.age >= 65"]
    assert table.rows[1].condition(env(age=20, country="FR")) is True


@pytest.mark.parametrize(("cell", "inside", "outside"), [
    ("[1..5]", [1, 3, 5], [0, 5.5]),
    ("(1..5)", [2, 4.9], [1, 5]),
    ("]1..5]", [5, 1.5], [1]),
    ("[1..5[", [1], [5]),
    ("!= 3", [2, "x"], [3]),
    ("= 3", [3, 3.0], [4]),
    ("1, 2, > 10", [1, 2, 11], [3, 10]),
    ("not(< 0, 7)", [0, 6, None], [-1, 7]),
    ("gold", ["gold"], ["Gold"]),
    ("'a b', \"c\"", ["a b", "c"], ["a"]),
    ("true", [True], [False, None]),
    ("null", [None], [0, ""]),
    ("-", [None, 1, "x"], []),
    ("", [None, 1, "x"], []),
    ("['a'..'c']", ["b", "a"], ["d"]),
])
def test_cell_syntax(cell: str, inside: list[Any], outside: list[Any]) -> None:
    quoted = '"' + cell.replace('"', '""') + '"'
    table = parse_table(f"# hit: FIRST\nin: x,out: y\n{quoted},hit\n")
    for value in inside:
        assert table.evaluate({"x": value}), (cell, value)
    for value in outside:
        assert not table.evaluate({"x": value}), (cell, value)


def test_unique_table_matching_two_rows_is_an_error_naming_them() -> None:
    table = parse_table("in: x,out: y\n> 1,a\n> 2,b\n", "t.csv")
    with pytest.raises(DecisionTableError, match=r"row 1 \(line 2\), row 2 \(line 3\)"):
        table.evaluate({"x": 5})
    assert [h.values["y"] for h in table.evaluate({"x": 2})] == ["a"]


def test_first_priority_any_and_collect() -> None:
    rows = "in: x,\"out: risk ('high','medium','low')\"\n> 0,low\n> 5,high\n> 2,medium\n"
    assert [h.values["risk"] for h in parse_table("# hit: FIRST\n" + rows).evaluate(
        {"x": 9})] == ["low"]
    assert [h.values["risk"] for h in parse_table("# hit: PRIORITY\n" + rows).evaluate(
        {"x": 9})] == ["high"]
    assert [h.values["risk"] for h in parse_table("# hit: P\n" + rows).evaluate(
        {"x": 3})] == ["medium"]
    assert [h.values["risk"] for h in parse_table("# hit: COLLECT\n" + rows).evaluate(
        {"x": 9})] == ["low", "high", "medium"]
    agree = parse_table("# hit: ANY\nin: x,out: y\n> 0,a\n> 5,a\n")
    assert [h.values for h in agree.evaluate({"x": 9})] == [{"y": "a"}]
    assert len(agree.evaluate({"x": 9})[0].rows) == 2
    clash = parse_table("# hit: ANY\nin: x,out: y\n> 0,a\n> 5,b\n")
    with pytest.raises(DecisionTableError, match="different outputs"):
        clash.evaluate({"x": 9})


@pytest.mark.parametrize(("hit", "expected"), [
    ("COLLECT SUM", 60), ("C+", 60), ("COLLECT MIN", 10), ("C<", 10), ("COLLECT MAX", 30),
    ("C>", 30), ("COLLECT COUNT", 3), ("C#", 3)])
def test_collect_aggregations(hit: str, expected: int) -> None:
    table = parse_table(f"# hit: {hit}\nin: x,out: points\n> 0,10\n> 1,20\n> 2,30\n> 100,99\n")
    assert [h.values for h in table.evaluate({"x": 5})] == [{"points": expected}]
    assert table.evaluate({"x": -1}) == []


def test_the_index_agrees_with_the_row_conditions() -> None:
    text = ("# hit: COLLECT\nin: a,in: b,in: c,out: n\n"
            "< 3,\"'x','y'\",-,1\n[3..7),-,true,2\n\"not(5, > 8)\",x,-,3\n-,\"not('y')\",false,4\n"
            "\"> 1.5, = 9\",-,null,5\n(2..4],\"'z'\",-,6\n-,-,-,7\n")
    table = parse_table(text)
    rng = random.Random(5)
    for _ in range(500):
        record = {"a": rng.choice([None, -1, 1.5, 2, 3, 3.5, 4, 5, 7, 8, 9, 10, 2.0]),
                  "b": rng.choice(["x", "y", "z", None, 3]),
                  "c": rng.choice([True, False, None])}
        expected = [r.number for r in table.rows if r.condition(record)]
        assert [r.number for r in table.matching(record)] == expected, record


def test_check_finds_gaps_and_overlaps_with_lines() -> None:
    text = "in: fields.age,in: fields.country,out: label\n< 18,-,minor\n" \
           "[18..65],\"'DE','FR'\",standard\n>= 65,-,senior\n"
    findings = check_table(parse_table(text, "t.csv"))
    gaps = [f for f in findings if f.code == "gap"]
    overlaps = [f for f in findings if f.code == "overlap"]
    assert {f.message.split("when ")[1] for f in gaps} == {
        "fields.age = 18 and fields.country is any other value",
        "fields.age in (18..65) and fields.country is any other value"}
    assert all(f.severity == "warning" and str(f.locations[0]) == "t.csv:1:1" for f in gaps)
    assert len(overlaps) == 1 and overlaps[0].severity == "error"
    assert [str(loc) for loc in overlaps[0].locations] == ["t.csv:3:1", "t.csv:4:1"]
    assert "fields.age = 65" in overlaps[0].message
    assert str(overlaps[0]).startswith("t.csv:3:1, t.csv:4:1: error: UNIQUE table 't'")


def test_check_uses_declared_domains_and_policies() -> None:
    covered = "\"in: x ('a','b')\",out: y\na,1\nb,2\n"
    assert check_table(parse_table(covered)) == []
    missing = parse_table("\"in: x ('a','b','c')\",out: y\na,1\nb,2\n")
    assert [f.message.split("when ")[1] for f in missing.check()] == ["x = 'c'"]
    agreeing = parse_table("# hit: ANY\nin: x,out: y\n> 0,a\n> 5,a\n-,a\n")
    assert agreeing.check() == []
    first = parse_table("# hit: FIRST\nin: x,out: y\n> 0,a\n> 5,b\n")
    [gap] = first.check()  # no overlap finding for FIRST
    assert gap.message.endswith("no row matches when x < 0 or x = 0")
    assert parse_table("# hit: COLLECT\nin: x,out: y\n> 0,a\n> 5,b\n").check() == []


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_table(text, "t.csv")
    return [str(p) for p in info.value.problems]


def test_errors_name_file_line_column_and_the_fix() -> None:
    found = problems("# hit: UNIQUE\nin: x,in: y,out: z\n< 5,>= 6OO,a\n[1..,-,b\n")
    assert found[0].startswith("t.csv:3:8: input cell '>= 6OO': cannot read the value '6OO'")
    assert "write a number" in found[0]
    assert found[1].startswith("t.csv:4:1: input cell '[1..'")
    assert "[1..5]" in found[1]


def test_errors_for_the_header_directives_and_policies() -> None:
    assert problems("# hitt: FIRST\nin: x,out: y\n1,a\n")[0].startswith(
        "t.csv:1:1: unknown directive 'hitt' (did you mean 'hit'?")
    assert "unknown hit policy 'SOMETIMES'" in problems("# hit: SOMETIMES\nin: x,out: y\n1,a\n")[0]
    assert problems("in: x +,out: y\n1,a\n")[0].startswith(
        "t.csv:1:8: the expression ends too early")
    assert "is not a column" in problems("in: x,banana,out: y\n1,2,a\n")[0]
    assert "row 1 has 3 cells, the header 2" in problems("in: x,out: y\n'a','b',c\n")[0]
    assert "quoted as a whole" in problems("in: x,out: y\n'a','b',c\n")[0]
    assert "PRIORITY table needs" in problems("# hit: PRIORITY\nin: x,out: y\n1,a\n")[0]
    assert "not in the priority list" in problems(
        "# hit: PRIORITY\nin: x,\"out: y (a, b)\"\n1,c\n")[0]
    assert "exactly one output column" in problems(
        "# hit: C+\nin: x,out: y,out: z\n1,1,2\n")[0]
    assert "no rows" in problems("in: x,out: y\n")[0]
    assert "needs at least one `in: EXPRESSION`" in problems("out: y\n1\n")[0]
    assert "not closed" in problems('in: x,out: y\n"abc,1\n')[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tables_in_a_rule_file_and_the_version(tmp_path: Path) -> None:
    table = load_table(write(tmp_path / "pricing.csv", "\ufeff" + PRICING))  # a BOM is fine
    assert table.id == "pricing" and len(table.rows) == 4
    rules = write(tmp_path / "rules.yaml", "tables:\n  - pricing.csv\n"
                  "  - {path: pricing.csv, id: again, hit: FIRST, strength: override}\n")
    ruleset = load_rules(rules, {})
    assert [(t.id, t.hit, t.strength) for t in ruleset.tables] == [
        ("pricing", "UNIQUE", "advise"), ("again", "FIRST", "override")]
    assert ruleset.fact_kinds == frozenset() and ruleset.rules == []
    before = ruleset.version
    write(tmp_path / "pricing.csv", PRICING.replace("minor,0", "minor,1"))
    assert load_rules(rules, {}).version != before  # the table's content is in the version


def test_bad_table_entries_are_located(tmp_path: Path) -> None:
    write(tmp_path / "bad.csv", "in: x,out: y\n>>,a\n")
    rules = write(tmp_path / "rules.yaml", "tables:\n  - missing.csv\n  - {path: bad.csv, "
                  "colour: red}\n  - bad.csv\n")
    with pytest.raises(ConfigError) as info:
        load_rules(rules, {})
    found = [str(p) for p in info.value.problems]
    assert found[0].startswith(f"{rules}:2:5: cannot read decision table missing.csv")
    assert "colour" in found[1] and found[1].startswith(f"{rules}:3:5")
    assert found[2].startswith(
        f"{tmp_path / 'bad.csv'}:2:2: input cell '>>': cannot read the value '>'")


def test_the_rules_stage_runs_a_csv_with_provenance(tmp_path: Path) -> None:
    path = write(tmp_path / "pricing.csv", "# confidence: 0.8\n# salience: 5\n" + PRICING)
    stage = RulesStage(path=str(path))
    assert stage.requires == () and stage.produces == ("decision",)
    board = Blackboard(Case(text="", fields={"age": 30, "country": "FR"}))
    [new] = stage.process(board)
    assert dict(new.data) == {"label": "standard", "discount": 10, "strength": "advise",
                              "reason": "table pricing row 2", "rule": "pricing:2",
                              "salience": 5}
    assert new.confidence == 0.8 and new.source == "table:pricing:2"
    assert new.detail["version"] == stage.version == stage.ruleset.tables[0].version
    assert new.detail["rows"] == [2] and new.detail["lines"] == [7]
    assert new.detail["when"].startswith("18 <= fields.age < 65")
    root = board.last("input")
    assert root is not None and list(new.derived_from) == [root]


def test_table_kind_and_per_row_confidence(tmp_path: Path) -> None:
    path = write(tmp_path / "risk.csv", "# kind: risk_band\nin: score.value,out: band,"
                 "out: confidence\n< 0.5,low,0.9\n>= 0.5,high,0.6\n")
    stage = RulesStage(path=str(path), produces=["risk_band"])
    assert stage.requires == ("score",) and stage.produces == ("risk_band",)
    board = Blackboard(Case(text=""))
    from hybrid_ai import NewFact

    score = board.add(NewFact("score", {"value": 0.7}), stage="model")
    [new] = stage.process(board)
    assert new.kind == "risk_band" and dict(new.data) == {"band": "high"}
    assert new.confidence == 0.6 and list(new.derived_from) == [score]


def test_chaining_rules_match_what_a_table_decided(tmp_path: Path) -> None:
    write(tmp_path / "band.csv", "# kind: band\nin: fields.amount,out: level\n< 100,low\n"
                                 ">= 100,high\n")
    rules = write(tmp_path / "rules.yaml", "tables: [band.csv]\nrules:\n  - id: escalate\n"
                  "    when:\n      - band: {level: high}\n"
                  "    then:\n      - insert: {decision: {label: review, strength: override}}\n")
    stage = RulesStage(path=str(rules), produces=["band"])
    assert stage.requires == ()  # `band` comes from the file's own table
    made = stage.process(Blackboard(Case(text="", fields={"amount": 500})))
    assert [(f.kind, dict(f.data).get("level") or f.data["label"]) for f in made] == [
        ("band", "high"), ("decision", "review")]
    assert made[1].source == "rule:escalate"
    assert stage.process(Blackboard(Case(text="", fields={"amount": 5})))[1:] == []


def test_an_empty_row_is_a_problem_not_a_catch_all() -> None:
    # Spreadsheets export trailing ",," lines; read as "-" everywhere it would match every case.
    with pytest.raises(ConfigError, match="row 2 is empty") as info:
        parse_table("# hit: FIRST\nin: fields.amount,out: label\n> 100,review\n,\n", "t.csv")
    (problem,) = info.value.problems
    assert problem.location.line == 4 and "delete it" in str(problem.hint)


def test_a_directive_given_twice_is_a_problem() -> None:
    with pytest.raises(ConfigError, match="'hit' is given twice") as info:
        parse_table("# hit: FIRST\n# hit: UNIQUE\nin: x,out: y\n1,a\n", "t.csv")
    assert info.value.problems[0].location.line == 2
