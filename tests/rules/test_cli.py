"""``hybrid-ai rules check|test|explain|watch``: output and exit status."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hybrid_ai._builtins import hybrid_ai_cli_commands
from hybrid_ai.rules._cli import app, watch_paths

FLAGSHIP = "rules/support_triage.yaml"


def cli(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_rules_commands_are_registered_with_the_main_cli() -> None:
    assert hybrid_ai_cli_commands()["rules"] is app


def test_check_exit_status_follows_the_worst_finding(tmp_path: Path) -> None:
    clean = cli("check", FLAGSHIP)
    assert clean.exit_code == 0, clean.output
    assert "0 error(s)" in clean.output
    broken = write(tmp_path / "b.yaml", """\
        rules:
          - id: never
            when: "fields.n > 5 and fields.n < 3"
            then: {flag: x}
        """)
    result = cli("check", broken)
    assert result.exit_code == 1 and "error[unsatisfiable]" in result.output
    assert f"{broken}:2" in result.output
    warned = write(tmp_path / "w.yaml", """\
        rules:
          - id: a
            when: "fields.n > 5"
            then: {flag: x}
          - id: b
            when: "fields.n > 9"
            then: {flag: x}
        """)
    assert cli("check", warned).exit_code == 0
    assert cli("check", warned, "--strict").exit_code == 1
    unparsable = write(tmp_path / "p.yaml", "rules:\n  - id: x\n    when: 'a ==='\n"
                       "    then: {flag: x}\n")
    failed = cli("check", unparsable, tmp_path / "missing.yaml")
    assert failed.exit_code == 1
    assert failed.output.count("error[load-error]") == 2
    twice = cli("check", FLAGSHIP, Path(FLAGSHIP).parent / "support_triage.yaml", "--json")
    assert json.loads(twice.output)["rules"] == 3  # a file named twice is checked once


def test_check_json_and_pipeline(tmp_path: Path) -> None:
    result = cli("check", FLAGSHIP, "--pipeline", "examples/support-triage/pipeline.yaml",
                 "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rules"] == 3 and data["counts"]["error"] == 0
    rules = write(tmp_path / "shout.yaml", """\
        rules:
          - id: shouting
            when: "text matches '^[A-Z !]+$'"
            then: {flag: shouting}
        """)
    pipeline = write(tmp_path / "p.yaml", """\
        name: p
        pipeline:
          serial:
            - stage: rules
              with: {path: shout.yaml}
        """)
    alone = cli("check", "--pipeline", pipeline, "--json")  # the pipeline's own rule files
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.output)["files"] == [str(rules)]
    assert cli("check").exit_code == 2
    broken = write(tmp_path / "broken.yaml", "name: b\npipeline:\n  serial:\n"
                   "    - stage: rules\n      with: {path: ../../rules/support_triage.yaml}\n")
    failed = cli("check", FLAGSHIP, "--pipeline", broken, "--json")
    assert failed.exit_code == 1
    assert {f["code"] for f in json.loads(failed.output)["findings"]} >= {"pipeline-error"}
    unknown = write(tmp_path / "u.yaml", """\
        rules:
          - id: u
            when: "weather.sky == 'grey'"
            then: {flag: x}
        """)
    missing = cli("check", unknown, "--kind", "intent", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.output)["findings"][0]["code"] == "unreachable"


def test_test_exit_status_pass_fail_and_invalid(tmp_path: Path) -> None:
    passed = cli("test", "rules/support_triage.tests.yaml")
    assert passed.exit_code == 0, passed.output
    assert "coverage: 3/3 rules fired" in passed.output
    assert cli("test", FLAGSHIP).exit_code == 0  # finds the .tests.yaml next to it
    (tmp_path / "r.yaml").write_text((Path(FLAGSHIP)).read_text(), encoding="utf-8")
    write(tmp_path / "r.tests.yaml", """\
        rules: r.yaml
        cases:
          - name: wrong
            given: {text: "my card was stolen"}
            expect: {decision: {label: human_review}}
        """)
    failed = cli("test", tmp_path / "r.tests.yaml", "--json")
    assert failed.exit_code == 1
    (report,) = json.loads(failed.output)
    assert report["cases"][0]["failures"][0].startswith("decision differs")
    assert report["coverage"]["uncovered"] == ["unsure_intent_to_human", "route_by_knowledge"]
    write(tmp_path / "bad.tests.yaml", "rules: r.yaml\ncases: []\n")
    invalid = cli("test", tmp_path / "bad.tests.yaml")
    assert invalid.exit_code == 2 and "cases" in invalid.output


def test_explain_prints_text_or_json(tmp_path: Path) -> None:
    facts = tmp_path / "f.json"
    facts.write_text(json.dumps({"text": "where is my card", "facts": {
        "intent": {"label": "card_arrival", "confidence": 0.9},
        "knowledge": {"properties": {"queue": "cards"}}}}), encoding="utf-8")
    text = cli("explain", FLAGSHIP, "--facts", facts)
    assert text.exit_code == 0, text.output
    assert "route_by_knowledge (simple rule" in text.output and "FIRED" in text.output
    one = cli("explain", FLAGSHIP, "--facts", facts, "--rule", "unsure_intent_to_human",
              "--json")
    data = json.loads(one.output)
    assert [r["rule"] for r in data["rules"]] == ["unsure_intent_to_human"]
    assert data["rules"][0]["failed"][0]["values"] == {"intent.confidence": 0.9}
    assert cli("explain", FLAGSHIP, "--facts", tmp_path / "none.json").exit_code == 2
    assert cli("explain", FLAGSHIP, "--facts", facts, "--rule", "nope").exit_code == 2


def test_watch_once_checks_and_tests() -> None:
    result = cli("watch", "rules/support_triage.tests.yaml", "--once")
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output and "7 passed" in result.output


def test_watch_reruns_after_a_change(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", """\
        rules:
          - id: big
            when: "fields.n > 5"
            then: {flag: big}
        """)
    write(tmp_path / "r.tests.yaml", """\
        rules: r.yaml
        cases:
          - name: big
            given: {fields: {n: 9}}
            expect: {fired: [big]}
        """)
    out: list[str] = []

    def edit(seconds: float) -> None:  # the "sleep" between polls breaks the rule once
        if len(out) == 2:
            rules.write_text(rules.read_text().replace("> 5", "> 50"), encoding="utf-8")

    status = watch_paths([tmp_path], max_iterations=3, echo=out.append, sleep=edit)
    assert status == 1
    assert out[1].startswith("PASS")
    assert any(line.startswith("--- changed:") and "r.yaml" in line for line in out)
    assert out[-1].startswith("FAIL") and "expected rule 'big' to fire" in out[-1]


def test_plugin_modules_add_rule_functions(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "bang_plugin.py", """\
        from hybrid_ai import hookimpl


        @hookimpl
        def hybrid_ai_rule_functions():
            return {"bangs": lambda text: (text or "").count("!")}
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    rules = write(tmp_path / "r.yaml", """\
        rules:
          - id: upset
            when: "bangs(text) >= 2"
            then: {flag: upset}
        """)
    write(tmp_path / "r.tests.yaml", """\
        rules: r.yaml
        cases:
          - name: upset
            given: {text: "where is it!!"}
            expect: {fired: [upset]}
        """)
    without = cli("check", rules)
    assert without.exit_code == 1 and "unknown function 'bangs'" in without.output
    assert cli("check", rules, "-p", "bang_plugin").exit_code == 0
    assert cli("test", rules, "-p", "bang_plugin").exit_code == 0
    assert cli("test", rules, "-p", "no_such_plugin_module").exit_code == 2


def test_check_reads_a_pipeline_with_a_local_plugin_only_when_trusted(tmp_path: Path) -> None:
    # A module name of its own: one imported earlier in the process (trusted elsewhere) would
    # be found in sys.modules and not tell the two cases apart.
    write(tmp_path / "rules_cli_local_plugin.py", """\
        from hybrid_ai import hookimpl


        @hookimpl
        def hybrid_ai_stages():
            return {}
        """)
    pipeline = write(tmp_path / "p.yaml", """\
        plugins: [rules_cli_local_plugin]
        pipeline: {stage: decide}
        """)
    refused = cli("check", "--pipeline", pipeline, "--json")
    assert refused.exit_code == 1
    assert "--trust-code" in json.loads(refused.output)["findings"][0]["message"]
    trusted = cli("check", "--pipeline", pipeline, "--trust-code", "--json")
    assert trusted.exit_code == 0, trusted.output
    assert json.loads(trusted.output)["counts"]["error"] == 0
