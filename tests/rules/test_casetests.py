"""``rules test``: YAML cases through the rules stage, diffs on failure, coverage."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.rules import run_tests
from hybrid_ai.rules._casetests import find_tests

RULES = """\
rules:
  - id: vip
    salience: 10
    when: "fields.tier == 'gold'"
    then:
      decision: {label: vip_desk, priority: high}
      strength: override
  - id: unsure
    when: "intent.confidence < 0.3"
    then: {flag: unsure}
  - id: big_order
    when:
      - order: {amount: "> 500", id: "?o"}
    then:
      - insert: {review: {order: "?o"}}
  - id: never_tested
    when: "fields.tier == 'platinum'"
    then: {flag: platinum}
"""


def write(tmp_path: Path, cases: str, stage: str = "stage: {produces: [review]}\n") -> Path:
    (tmp_path / "r.yaml").write_text(RULES, encoding="utf-8")
    path = tmp_path / "r.tests.yaml"
    path.write_text("rules: r.yaml\n" + stage + textwrap.dedent(cases), encoding="utf-8")
    return path


def test_passing_cases_and_the_coverage_report(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        cases:
          - name: gold customers go to the vip desk
            given: {fields: {tier: gold}}
            expect:
              fired: [vip]
              not_fired: [unsure]
              decision: {label: vip_desk, strength: override, priority: high}
          - name: model confidence is the fact's confidence
            given:
              facts: {intent: {label: x, confidence: 0.1}}
            expect:
              fired: [unsure]
              facts: {flag: {name: unsure}}
              no_decision: true
          - name: pattern rules join facts
            given:
              facts:
                order: [{id: 1, amount: 100}, {id: 2, amount: 900}]
            expect:
              fired: [big_order]
              facts: {review: [{order: 2}]}
        """)
    report = run_tests(path)
    assert report.passed, report.text()
    assert [c.passed for c in report.cases] == [True, True, True]
    assert report.uncovered == ["never_tested"]
    assert "coverage: 3/4 rules fired; never fired: never_tested" in report.text()
    assert report.cases[0].location.endswith("r.tests.yaml:4:5")


def test_failures_come_with_a_diff(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        cases:
          - name: wrong expectations
            given: {fields: {tier: gold}}
            expect:
              fired: [unsure]
              not_fired: [vip]
              decision: {label: fraud, strength: override}
              facts: {flag: {name: vip}}
          - name: a fact that is not made
            given:
              facts: {order: {id: 3, amount: 700}}
            expect:
              facts: {review: {order: 4}}
        """)
    report = run_tests(path)
    assert not report.passed
    first, second = report.cases
    assert first.failures == [
        "expected rule 'unsure' to fire; fired: vip",
        "rule 'vip' fired but should not have; fired: vip",
        "decision differs (- expected, + got):\n- label: 'fraud'\n+ label: 'vip_desk'",
        "expected a flag fact with {name: 'vip'}; the rules made no flag fact",
    ]
    assert second.failures == [
        "no review fact has {order: 4}; the closest (- expected, + got):\n- order: 4\n+ order: 3"]
    assert "FAIL  wrong expectations" in report.text()
    assert report.to_dict()["counts"] == {"cases": 2, "failed": 2}


def test_a_case_whose_rules_raise_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        rules:
          - id: arithmetic
            when: "fields.n - 1 > 0"
            then: {flag: positive}
        """), encoding="utf-8")
    (tmp_path / "r.tests.yaml").write_text(textwrap.dedent("""\
        rules: r.yaml
        cases:
          - name: text where a number is expected
            given: {fields: {n: abc}}
            expect: {not_fired: [arithmetic]}
          - name: a number
            given: {fields: {n: 3}}
            expect: {fired: [arithmetic]}
        """), encoding="utf-8")
    report = run_tests(tmp_path / "r.tests.yaml")
    broken, fine = report.cases
    assert not broken.passed and fine.passed
    assert broken.failures[0].startswith("the rules failed:")
    assert "cannot apply '-' to str and int" in broken.failures[0]


def test_invalid_tests_files_are_config_errors_with_locations(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        cases:
          - name: typo in a key
            given: {fields: {tier: gold}}
            expekt: {fired: [vip]}
        """)
    with pytest.raises(ConfigError) as info:
        run_tests(path)
    assert "expekt" in str(info.value) and "r.tests.yaml:6:5" in str(info.value)
    bad_stage = write(tmp_path, "cases: [{name: x}]\n", stage="stage: {colour: red}\n")
    with pytest.raises(ConfigError, match="invalid `stage` parameters"):
        run_tests(bad_stage)


def test_tests_are_found_next_to_rule_files_and_in_directories(tmp_path: Path) -> None:
    path = write(tmp_path, "cases: [{name: x}]\n")
    assert find_tests(tmp_path / "r.yaml") == [path]
    assert find_tests(tmp_path) == [path]
    with pytest.raises(ConfigError, match="no tests found"):
        find_tests(tmp_path / "other.yaml")


def test_the_flagship_rules_pass_their_tests_with_full_coverage() -> None:
    report = run_tests("rules/support_triage.tests.yaml")
    assert report.passed, report.text()
    assert report.uncovered == []
    assert len(report.cases) >= 6


def test_decision_table_rows_count_as_rules_for_firing_and_coverage(tmp_path: Path) -> None:
    (tmp_path / "pricing.csv").write_text(
        "# hit: FIRST\n# id: pricing\nin: fields.age,out: label\n< 18,minor\n>= 18,adult\n",
        encoding="utf-8")
    (tmp_path / "t.tests.yaml").write_text(textwrap.dedent("""\
        rules: pricing.csv
        cases:
          - name: a child
            given: {fields: {age: 9}}
            expect: {fired: [pricing, "pricing:1"], decision: {label: minor}}
        """), encoding="utf-8")
    report = run_tests(tmp_path / "t.tests.yaml")
    assert report.passed, report.text()
    assert report.uncovered == ["pricing:2"]
