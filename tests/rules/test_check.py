"""``rules check``: every lint finding, with the file:line of each rule involved."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from hybrid_ai._expr import parse_expression
from hybrid_ai.rules import Finding, LintReport, check_paths
from hybrid_ai.rules._check import Normalizer, satisfiable


def lint(tmp_path: Path, text: str, **options: object) -> LintReport:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return check_paths([path], **options)  # type: ignore[arg-type]


def only(report: LintReport, code: str) -> list[Finding]:
    return [f for f in report.findings if f.code == code]


def sat(text: str) -> bool:
    names = Normalizer(lambda n: (n,))
    return satisfiable(names.dnf(parse_expression(text)))


@pytest.mark.parametrize(("condition", "expected"), [
    ("x > 5 and x < 3", False),
    ("x > 5 and x < 7", True),
    ("x >= 3 and x <= 3", True),
    ("x > 3 and x <= 3", False),
    ("1 < x < 2 and x == 5", False),
    ("x in ['a', 'b'] and x == 'c'", False),
    ("x in ['a', 'b'] and x not in ['a', 'b']", False),
    ("x not in ['a'] and x != 'b'", True),
    ("x == null and x > 1", False),
    ("not (x > 5) and x > 6", False),
    ("not (x > 5) and x == null", True),     # null fails `x > 5`, so the negation holds
    ("(x > 5 or y == 1) and x < 2", True),
    ("(x > 5 or x < 0) and x == 2", False),
    ("x matches 'a' and not (x matches 'a')", False),
    ("x and x == false", False),
    ("x == 'a' if y else x == 'b'", True),
    ("(x == 'a' if y > 1 else x == 'b') and x == 'c'", False),
    ("false", False),
])
def test_conditions_are_solved_over_value_sets(condition: str, expected: bool) -> None:
    assert sat(condition) is expected


def test_unsatisfiable_simple_and_pattern_rules_are_errors(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: never
            when: "fields.amount > 5 and fields.amount < 3"
            then: {flag: x}
          - id: fine
            when: "fields.amount > 5"
            then: {flag: y}
          - id: p_never
            when:
              - order: {amount: "?a", kind: web}
              - test: "?a > 10 and ?a < 5"
            then:
              - insert: {flag: {name: z}}
        """, kinds=["order"])
    found = only(report, "unsatisfiable")
    assert [f.rules[0].id for f in found] == ["never", "p_never"]
    assert all(f.severity == "error" for f in found)
    assert str(found[0].rules[0]).endswith("r.yaml:2")
    assert "`fields.amount > 5` and `fields.amount < 3`" in found[0].message
    assert "`?a > 10` and `?a < 5`" in found[1].message


def test_a_pattern_constant_clashing_with_a_test_is_unsatisfiable(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: clash
            when:
              - order: {status: open, amount: "> 100"}
                as: ?o
              - test: "?o.status == 'closed'"
            then:
              - insert: {flag: {name: x}}
        """, kinds=["order"])
    assert [f.rules[0].id for f in only(report, "unsatisfiable")] == ["clash"]


def test_unproduced_kinds_are_errors_when_the_producers_are_known(tmp_path: Path) -> None:
    text = """\
        rules:
          - id: ghost
            when:
              - phantom: {x: 1}
            then:
              - insert: {flag: {name: g}}
          - id: chained
            when:
              - flag: {name: g}
            then:
              - insert: {seen: {ok: true}}
          - id: simple_reader
            when: "intent.label == 'a'"
            then: {flag: a}
          - id: fires_without_it
            when: "not (intent.label == 'a')"
            then: {flag: b}
        """
    unknown = lint(tmp_path, text)
    assert {f.rules[0].id for f in only(unknown, "external-kind")} == {"ghost", "simple_reader"}
    assert all(f.severity == "info" for f in unknown.findings)
    known = lint(tmp_path, text, kinds=["intent"])
    assert [(f.rules[0].id, f.severity) for f in only(known, "unreachable")] == [
        ("ghost", "error")]  # `flag` is made by `ghost`'s own file; `intent` comes from outside


def test_the_pipeline_names_the_kinds_its_stages_produce(tmp_path: Path) -> None:
    (tmp_path / "shout.yaml").write_text(textwrap.dedent("""\
        rules:
          - id: shouting
            when: "text matches '^[A-Z !]+$'"
            then: {flag: shouting}
        """), encoding="utf-8")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(textwrap.dedent("""\
        name: p
        pipeline:
          serial:
            - stage: rules
              with: {path: shout.yaml}
        """), encoding="utf-8")
    report = lint(tmp_path, """\
        rules:
          - id: reads_input
            when:
              - input: {text: "?t"}
            then:
              - insert: {decision: {label: x}}
          - id: reads_flags
            when: "flag.name == 'shouting'"
            then: {flag: calm_down}
          - id: reads_nothing_made
            when: "sentiment.label == 'negative'"
            then: {flag: neg}
        """, pipeline=pipeline)
    assert [(f.code, f.rules[0].id) for f in report.findings] == [
        ("unreachable", "reads_nothing_made")]


def test_overlapping_rules_with_different_decisions_conflict(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: big_fraud
            when: "fields.amount > 1000"
            then: {decision: {label: fraud}, strength: veto}
          - id: web_ok
            when: "fields.amount >= 500 and fields.channel == 'web'"
            then: {decision: {label: ok}, strength: veto}
          - id: small_ok
            when: "fields.amount < 10"
            then: {decision: {label: ok}, strength: veto}
          - id: web_review
            salience: 5
            when: "fields.channel == 'web'"
            then: {decision: {label: review}, strength: veto}
          - id: advice
            when: "fields.amount > 2000"
            then: {decision: {label: later}, strength: advise}
        """)
    found = {(f.rules[0].id, f.rules[1].id): f for f in only(report, "contradiction")}
    assert found[("big_fraud", "web_ok")].severity == "error"
    assert [str(r).rsplit(":", 1)[1] for r in found[("big_fraud", "web_ok")].rules] == ["2", "5"]
    assert found[("web_ok", "web_review")].severity == "warning"  # salience decides
    assert found[("big_fraud", "advice")].severity == "info"      # precedence decides
    assert ("big_fraud", "small_ok") not in found                 # amount > 1000 vs < 10
    assert ("web_ok", "small_ok") not in found                    # same label


def test_a_rule_implied_by_another_with_the_same_action_is_subsumed(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: wide
            when: "fields.amount > 1000 or intent.label == 'fraud'"
            then: {decision: {label: fraud}, strength: veto}
          - id: narrow
            when: "fields.amount > 5000 and text matches 'stolen'"
            then: {decision: {label: fraud}, strength: veto}
          - id: other_action
            when: "fields.amount > 9000"
            then: {decision: {label: review}, strength: veto}
          - id: twin
            when: "intent.label == 'fraud' or fields.amount > 1000"
            then: {decision: {label: fraud}, strength: veto}
        """)
    subsumed = only(report, "subsumed")
    assert [(f.rules[0].id, f.rules[1].id) for f in subsumed] == [
        ("narrow", "wide"), ("narrow", "twin")]
    assert all(f.severity == "warning" for f in subsumed)
    assert [(f.rules[0].id, f.rules[1].id) for f in only(report, "duplicate")] == [
        ("twin", "wide")]


def test_pattern_rules_are_compared_pattern_by_pattern(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: big
            when:
              - order: {amount: "> 500"}
            then:
              - insert: {flag: {name: big}}
          - id: big_gold
            when:
              - order: {amount: "> 900", tier: gold}
            then:
              - insert: {flag: {name: big}}
          - id: refund
            when:
              - order: {amount: "> 900"}
              - not: {hold: {}}
            then:
              - insert: {decision: {label: refund}}
          - id: block
            when:
              - order: {amount: "< 100"}
            then:
              - insert: {decision: {label: block}}
        """, kinds=["order", "hold"])
    assert [(f.rules[0].id, f.rules[1].id) for f in only(report, "subsumed")] == [
        ("big_gold", "big")]
    assert only(report, "contradiction") == []  # refund (> 900) and block (< 100) never meet


def test_rules_that_retrigger_themselves(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: bump
            when:
              - counter: {n: "< 100"}
                as: ?c
            then:
              - modify:
                  ?c: {n: "=?c.n + 1"}
          - id: bump_once
            no_loop: true
            when:
              - counter: {n: "< 100"}
                as: ?c
            then:
              - modify:
                  ?c: {n: "=?c.n + 1"}
          - id: close
            when:
              - task: {status: open}
                as: ?t
            then:
              - modify:
                  ?t: {status: done}
          - id: grow
            when:
              - item: {n: "?n"}
            then:
              - insert: {item: {n: "=?n + 1"}}
          - id: other_field
            when:
              - item: {n: "?n"}
            then:
              - insert: {item: {m: 1}}
        """, kinds=["counter", "task"])
    loops = only(report, "self-trigger")
    assert [f.rules[0].id for f in loops] == ["bump", "grow"]
    assert all(f.severity == "warning" for f in loops)
    assert "no_loop" in (loops[0].hint or "")


def test_a_path_compared_with_numbers_and_text_is_a_type_mismatch(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: as_number
            when: "fields.amount > 100"
            then: {flag: a}
          - id: as_text
            when: "fields.amount == 'ten'"
            then: {flag: b}
          - id: label
            when: "intent.label == 'x'"
            then: {flag: c}
        """)
    found = only(report, "type-mismatch")
    assert len(found) == 1 and found[0].severity == "warning"
    assert [r.id for r in found[0].rules] == ["as_number", "as_text"]


def test_load_errors_point_at_the_file_line_and_column(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: bad
            when: "fields.amount >> 3"
            then: {flag: x}
        """)
    (finding,) = report.findings
    assert (finding.code, finding.severity) == ("load-error", "error")
    assert finding.location is not None and ":3:" in finding.location


def test_the_flagship_rules_have_no_errors_and_report_as_json() -> None:
    report = check_paths(["rules/support_triage.yaml"],
                         pipeline="examples/support-triage/pipeline.yaml")
    assert report.errors == [] and report.rules == 3
    data = report.to_dict()
    assert data["counts"]["error"] == 0
    (note,) = data["findings"]  # the veto and the override may both fire: precedence decides
    assert note["code"] == "contradiction" and note["severity"] == "info"
    assert [r["line"] for r in note["rules"]] == [5, 16]


PRICING = """\
# hit: UNIQUE
# id: pricing
in: fields.age,in: fields.country,out: label,out: discount,# why
< 18,-,minor,0,no discounts for minors
[18..65),"'DE','FR'",standard,10,
>= 60,-,senior,20,
"""


def test_decision_tables_are_checked_and_compared_with_rules(tmp_path: Path) -> None:
    (tmp_path / "pricing.csv").write_text(PRICING, encoding="utf-8")
    table_only = check_paths([tmp_path / "pricing.csv"])
    assert {f.code for f in table_only.findings} == {"table-gap", "table-overlap"}
    overlap = only(table_only, "table-overlap")[0]
    assert overlap.severity == "error" and [r.line for r in overlap.rules] == [5, 6]
    report = lint(tmp_path, """\
        tables: [pricing.csv]
        rules:
          - id: kids_free
            when: "fields.age < 12"
            then: {decision: {label: free}, strength: advise}
          - id: teens
            when: "fields.age >= 13 and fields.age < 18"
            then: {decision: {label: minor, discount: 0}, strength: advise}
          - id: teens_other_discount
            when: "fields.age >= 13 and fields.age < 18"
            then: {decision: {label: minor, discount: 5}, strength: advise}
        """)
    found = [(f.rules[0].id, f.rules[1].id) for f in only(report, "contradiction")]
    assert found == [("kids_free", "pricing:1")]  # the rows among themselves: the table check
    assert [(f.rules[0].id, f.rules[1].id) for f in only(report, "subsumed")] == [
        ("teens", "pricing:1")]  # the other discount is another decision, not redundant


def test_huge_conditions_and_broken_pipelines_are_reported_not_fatal(tmp_path: Path) -> None:
    blowup = " and ".join(f"(fields.a{i} == 1 or fields.b{i} == 2)" for i in range(9))
    report = lint(tmp_path, f"""\
        rules:
          - id: wide
            when: "{blowup}"
            then: {{flag: x}}
        """, pipeline=tmp_path / "missing.yaml")
    assert [(f.code, f.severity) for f in report.findings] == [
        ("pipeline-error", "error"), ("not-analysed", "info")]
    assert "512" not in report.findings[1].message and "256" in report.findings[1].message


def test_pattern_decisions_default_to_advice_like_the_stage(tmp_path: Path) -> None:
    report = lint(tmp_path, """\
        rules:
          - id: simple_advice
            when: "order.amount > 100"
            then: {decision: {label: review}}
          - id: pattern_advice
            when:
              - order: {amount: "> 500"}
            then:
              - insert: {decision: {label: approve}}
        """, kinds=["order"])
    (found,) = only(report, "contradiction")
    assert found.severity == "warning" and "advise 'review'" in found.message
    assert "advise 'approve'" in found.message


def _random_rules(seed: int, n: int) -> str:
    """Rules over a few paths, some open-ended, some finite, some multi-valued or negated."""
    rng = random.Random(seed)
    conditions = [
        lambda: f"fields.segment == '{rng.choice('abcd')}'",
        lambda: f"fields.segment in ['{rng.choice('abcd')}', '{rng.choice('abcd')}']",
        lambda: f"fields.segment != '{rng.choice('abcd')}'",
        lambda: f"fields.tier == {rng.randint(1, 3)}",
        lambda: f"fields.amount >= {rng.randint(0, 50)} and fields.amount < {rng.randint(40, 99)}",
        lambda: f"fields.amount > {rng.randint(0, 99)} or fields.segment == 'a'",
        lambda: "fields.vip",
    ]
    lines = ["rules:"]
    for i in range(n):
        when = " and ".join(f"({rng.choice(conditions)()})" for _ in range(rng.randint(1, 3)))
        label = rng.choice(["approve", "decline", "refer"])
        lines += [f"  - id: r{i}", f"    salience: {rng.randint(0, 1)}", f"    when: \"{when}\"",
                  "    then:", f"      decision: {{label: {label}}}",
                  f"      strength: {rng.choice(['advise', 'veto'])}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(6))
def test_pairs_drawn_from_buckets_find_what_every_pair_finds(tmp_path: Path, seed: int) -> None:
    from hybrid_ai.rules import _check

    path = tmp_path / "r.yaml"
    path.write_text(_random_rules(seed, 60), encoding="utf-8")
    report = LintReport()
    rules = [r for r in _check._read_file(path, {}, report) if satisfiable(r.dnf or [])]
    everything = [f for i, a in enumerate(rules) for b in rules[i + 1:]
                  for f in [*_check._contradiction(a, b), *_check._subsumption(a, b)]]
    assert everything  # the random rules do overlap: the comparison is not vacuous
    assert list(_check._pairs(rules)) == everything


def test_candidate_pairs_share_a_value_or_leave_the_path_open() -> None:
    from hybrid_ai.rules._check import Domain, _candidates, _equal_to

    seg = ("fields", "segment")
    outlines: list[dict[tuple[str, ...], Domain]] = [
        {seg: _equal_to("a")}, {seg: _equal_to("b")}, {seg: _equal_to("a") | _equal_to("b")},
        {}, {seg: ~_equal_to("a")},  # open: all texts but "a"
    ]
    assert _candidates(outlines) == [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3),
                                     (2, 4), (3, 4)]


def test_an_unsatisfiable_rule_is_not_also_subsumed(tmp_path: Path) -> None:
    report = lint(tmp_path, """
        rules:
          - id: never
            when: fields.x > 5 and fields.x < 3
            then: {decision: {label: refer}}
          - id: wide
            when: fields.x > 0
            then: {decision: {label: refer}}
          - id: other
            when: fields.x < 0
            then: {decision: {label: approve}}
    """)
    assert [f.code for f in report.findings if f.severity != "info"] == ["unsatisfiable"]
