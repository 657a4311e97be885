"""The ``hybrid-ai`` command line, driven in-process through typer's CliRunner (plus one real
subprocess), on tiny model-free pipelines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from hybrid_ai.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "hybrid-ai"

KNOWLEDGE = {
    "base": "http://example.org/t/",
    "nodes": [
        {"id": "cards_team", "type": "Team", "label": "Cards team",
         "properties": {"queue": "cards"}},
        {"id": "card", "type": "Product", "label": "Card", "aliases": ["debit card"]},
    ],
    "edges": [{"source": "card", "predicate": "handledBy", "target": "cards_team"}],
}

RULES = """\
rules:
  - id: stolen
    salience: 100
    when: "text matches '(?i)stolen'"
    then:
      decision: {label: fraud}
      strength: veto
      reason: "stolen: {text}"
  - id: card_mentioned
    when: "entity.label == 'Card'"
    then:
      decision: {label: cards}
      strength: override
      reason: "mentions {entity.text}"
"""

PIPELINE = """\
name: cli-test
plugins: [tests._stages_for_tests]
pipeline:
  serial:
    - stage: t_fail_on
      with: {word: boom}
    - stage: kg_lookup
      id: entities
      with: {path: kb.json}
    - stage: rules
      with: {path: rules.yaml}
    - stage: decide
      with: {base: prediction}
"""

BROKEN = """\
name: broken
pipeline:
  serial:
    - stage: rules
      retries: -1
    - stage: fuse
      on_error: explode
    - stage: decide
      colour: red
"""

MISWIRED = """\
pipeline:
  serial:
    - stage: nosuch
    - stage: fuse
    - parallel:
        branches: [{stage: decide, id: a}, {stage: decide, id: b}]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "kb.json").write_text(json.dumps(KNOWLEDGE), encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "pipeline.yaml").write_text(PIPELINE, encoding="utf-8")
    (tmp_path / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    (tmp_path / "miswired.yaml").write_text(MISWIRED, encoding="utf-8")
    return tmp_path


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


# --- validate / plan / plugins / schema ---------------------------------------------------------


def test_validate_ok(folder: Path) -> None:
    result = cli("validate", folder / "pipeline.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{folder / 'pipeline.yaml'}: ok (4 stages)"


def test_validate_lists_every_problem_with_its_line(folder: Path) -> None:
    path = folder / "broken.yaml"
    result = cli("validate", path)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}: 3 problem(s)"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [
        f"{path}:5:7", f"{path}:7:7", f"{path}:9:7"]
    assert "retries" in lines[1] and "on_error" in lines[2] and "colour" in lines[3]


def test_validate_lists_every_wiring_problem(folder: Path) -> None:
    path = folder / "miswired.yaml"
    result = cli("validate", path)
    assert result.exit_code == 1
    assert f"{path}: 3 problem(s)" in result.stderr
    for line, fragment in ((3, "unknown stage component 'nosuch'"),
                           (4, "requires fact 'prediction'"),
                           (6, "no merge policy")):
        assert f"{path}:{line}:" in result.stderr
        assert fragment in result.stderr


def test_validate_missing_file(folder: Path) -> None:
    result = cli("validate", folder / "absent.yaml")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


def test_validate_unimportable_plugin(folder: Path) -> None:
    path = folder / "plugin.yaml"
    path.write_text("plugins: [no_such_module_xyz]\npipeline: {stage: decide}\n",
                    encoding="utf-8")
    result = cli("validate", path)
    assert result.exit_code == 1
    assert "no_such_module_xyz" in result.stderr


def test_validate_trusts_code_beside_the_pipeline_only_when_told(folder: Path) -> None:
    (folder / "beside_cli_plugin.py").write_text(
        "from hybrid_ai import hookimpl\n\n@hookimpl\ndef hybrid_ai_stages():\n    return {}\n",
        encoding="utf-8")
    path = folder / "local.yaml"
    path.write_text("plugins: [beside_cli_plugin]\npipeline: {stage: decide}\n",
                    encoding="utf-8")
    refused = cli("validate", path)
    assert refused.exit_code == 1 and "--trust-code" in refused.stderr
    assert cli("validate", path, "--trust-code").exit_code == 0


def test_plan(folder: Path) -> None:
    result = cli("plan", folder / "pipeline.yaml")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "pipeline 'cli-test': 4 stage(s)"
    assert lines[1].startswith("1 t_fail_on")
    assert lines[2].startswith("2 entities [kg_lookup]")
    assert lines[3].startswith("3 rules  needs entity")
    assert lines[4].startswith("4 decide")


def test_plan_json(folder: Path) -> None:
    result = cli("plan", "--json", folder / "pipeline.yaml")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "cli-test"
    assert [s["id"] for s in data["root"]["serial"]] == ["t_fail_on", "entities", "rules",
                                                          "decide"]


def test_plan_of_a_broken_file_fails(folder: Path) -> None:
    result = cli("plan", folder / "broken.yaml")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


def test_plugins_lists_the_builtins() -> None:
    result = cli("plugins")
    assert result.exit_code == 0, result.output
    assert any(line.startswith("hybrid_ai.builtins  [") for line in result.stdout.splitlines())
    stage_lines = [line for line in result.stdout.splitlines()
                   if line.strip().startswith("stages: ") and "decide" in line]
    assert stage_lines, result.stdout
    stages = stage_lines[0].strip().removeprefix("stages: ").split(", ")
    assert stages == sorted(stages)
    assert {"decide", "embed", "few_shot", "fuse", "kg_lookup", "rules",
            "text_classifier"} <= set(stages)


def test_plugins_json() -> None:
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    infos = {i["name"]: i for i in json.loads(result.stdout)}
    assert "rules" in infos["hybrid_ai.builtins"]["provides"]["stages"]
    assert infos["hybrid_ai.builtins"]["provides"]["merge policies"] == [
        "best_confidence", "first", "union"]


def test_schema() -> None:
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert {"StageSpec", "SerialSpec", "ParallelSpec", "RouteSpec", "CascadeSpec",
            "UseSpec"} <= set(schema["$defs"])


# --- run ---------------------------------------------------------------------------------------


def test_run_text(folder: Path) -> None:
    result = cli("run", folder / "pipeline.yaml", "--text", "my card was stolen")
    assert result.exit_code == 0, result.output
    _case_id, decision, confidence = result.stdout.strip().split("\t")
    # The veto chose another label than the model, so the model's confidence does not carry over.
    assert (decision, confidence) == ("fraud", "-")


def test_run_text_explain(folder: Path) -> None:
    result = cli("run", folder / "pipeline.yaml", "--text", "where is my debit card",
                 "--explain")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "decision 'cards'" in lines[0]
    assert "because mentions debit card" in lines[0]
    assert any("entity: Card" in line and "<- entities/kg:link" in line for line in lines)
    assert any("<- rules/rule:card_mentioned" in line for line in lines)
    assert lines[-1].startswith("  stages: t_fail_on ok")


def test_run_input_json(folder: Path) -> None:
    case = {"id": "c-7", "text": "hello", "fields": {"n": 1}}
    result = cli("run", folder / "pipeline.yaml", "--input", json.dumps(case), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["case"] == "c-7"
    assert data["ok"] is True
    assert data["decision"] == "hello"
    assert [t["stage"] for t in data["trace"]] == ["t_fail_on", "entities", "rules", "decide"]
    assert "support" not in data


def test_run_json_explain(folder: Path) -> None:
    result = cli("run", folder / "pipeline.yaml", "--text", "card stolen", "--json",
                 "--explain")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["decision"] == "fraud"
    sources = [f["provenance"]["source"] for f in data["support"]]
    assert "rule:stolen" in sources and "case" in sources


def test_run_failing_case_exits_1(folder: Path) -> None:
    result = cli("run", folder / "pipeline.yaml", "--text", "boom", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert "RuntimeError" in data["error"]


def test_run_bad_input_json(folder: Path) -> None:
    result = cli("run", folder / "pipeline.yaml", "--input", "{not json")
    assert result.exit_code == 1
    assert "--input: invalid JSON" in result.stderr
    result = cli("run", folder / "pipeline.yaml", "--input", "[1, 2]")
    assert result.exit_code == 1
    assert "expected a JSON object or string, got list" in result.stderr


@pytest.mark.parametrize("args", [(), ("--text", "a", "--input", "{}")])
def test_run_needs_exactly_one_source(folder: Path, args: tuple[str, ...]) -> None:
    result = cli("run", folder / "pipeline.yaml", *args)
    assert result.exit_code == 2
    assert "exactly one of --text, --input or --file" in result.stderr


def write_cases(folder: Path) -> Path:
    path = folder / "cases.jsonl"
    path.write_text('{"text": "hello"}\n'
                    "{not json\n"
                    '"my card was stolen"\n'
                    '{"text": "boom now"}\n'
                    '{"id": "last", "text": "where is my debit card"}\n', encoding="utf-8")
    return path


def test_run_file(folder: Path) -> None:
    result = cli("run", folder / "pipeline.yaml", "--file", write_cases(folder))
    assert result.exit_code == 1
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(rows) == 5
    assert rows[0][1:] == ["hello", "1.00"]
    assert rows[1][0] == "line-2" and rows[1][1].startswith("FAILED:")
    assert rows[2][1] == "fraud"
    assert rows[3][1].startswith("FAILED: stage 't_fail_on'")
    assert rows[4][:2] == ["last", "cards"]


def test_run_file_explain(folder: Path) -> None:
    path = write_cases(folder)
    result = cli("run", folder / "pipeline.yaml", "--file", path, "--explain")
    headers = [line for line in result.stdout.splitlines() if line.startswith("--- ")]
    assert headers == [f"--- {path}:{n}" for n in (1, 2, 3, 4, 5)]


# --- batch -------------------------------------------------------------------------------------


def test_batch_gives_one_row_per_line_and_error_rows(folder: Path) -> None:
    out = folder / "out.jsonl"
    result = cli("batch", folder / "pipeline.yaml", "--input", write_cases(folder),
                 "--output", out, "--no-progress", "--concurrency", "2")
    assert result.exit_code == 1
    assert f"5 record(s), 2 failed -> {out}" in result.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["ok"] for r in rows] == [True, False, True, False, True]
    assert [r["decision"] for r in rows] == ["hello", None, "fraud", None, "cards"]
    bad_json, failed = rows[1], rows[3]
    assert bad_json["case"] == "line-2"
    assert bad_json["error"].startswith(f"{folder / 'cases.jsonl'}:2: invalid JSON")
    assert "RuntimeError: found 'boom'" in failed["error"]
    assert failed["trace"][0]["status"] == "failed"
    assert rows[4]["case"] == "last"


def test_batch_all_good_exits_0(folder: Path) -> None:
    cases = folder / "good.jsonl"
    cases.write_text('"a"\n\n{"text": "b"}\n', encoding="utf-8")
    out = folder / "good-out.jsonl"
    result = cli("batch", folder / "pipeline.yaml", "-i", cases, "-o", out, "--no-progress")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["decision"]) for r in rows] == [(1, "a"), (3, "b")]


def test_batch_lines_that_are_not_utf8_or_not_json_fail_alone(folder: Path) -> None:
    cases = folder / "mixed.jsonl"
    cases.write_bytes(b'\xef\xbb\xbf"a"\n\xff\xfe bad bytes\n{"text": "b", "n": NaN}\n"c"\n')
    out = folder / "mixed-out.jsonl"
    result = cli("batch", folder / "pipeline.yaml", "-i", cases, "-o", out, "--no-progress")
    assert result.exit_code == 1
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["decision"]) for r in rows] == [(1, "a"), (2, None), (3, None),
                                                         (4, "c")]
    assert rows[1]["error"].startswith(f"{cases}:2:1: byte 0xff is not UTF-8")
    assert "NaN is not JSON" in rows[2]["error"]


def test_batch_names_an_invalid_case_by_its_line_and_id(folder: Path) -> None:
    cases = folder / "ids.jsonl"
    cases.write_text('"a"\n\n{"id": "d", "text": 5}\n', encoding="utf-8")
    out = folder / "ids-out.jsonl"
    cli("batch", folder / "pipeline.yaml", "-i", cases, "-o", out, "--no-progress")
    bad = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()][1]
    assert (bad["line"], bad["case"]) == (3, "d")
    assert bad["error"].startswith(f"{cases}:3: invalid case")


def test_batch_refuses_to_overwrite_its_input_or_write_nowhere(folder: Path) -> None:
    cases = folder / "in.jsonl"
    cases.write_text('"a"\n', encoding="utf-8")
    same = cli("batch", folder / "pipeline.yaml", "-i", cases, "-o", cases, "--no-progress")
    assert same.exit_code == 1 and "would overwrite --input" in same.stderr
    assert cases.read_text(encoding="utf-8") == '"a"\n'
    nowhere = cli("batch", folder / "pipeline.yaml", "-i", cases, "-o",
                  folder / "no" / "such" / "o.jsonl", "--no-progress")
    assert nowhere.exit_code == 1 and "cannot write --output" in nowhere.stderr


def test_batch_missing_input(folder: Path) -> None:
    result = cli("batch", folder / "pipeline.yaml", "-i", folder / "absent.jsonl",
                 "-o", folder / "o.jsonl")
    assert result.exit_code == 1
    assert "cannot read" in result.stderr


# --- the installed script ----------------------------------------------------------------------


@pytest.mark.skipif(not SCRIPT.exists(), reason="the hybrid-ai script is not installed")
def test_console_script(folder: Path) -> None:
    builtin_only = folder / "builtin.yaml"
    builtin_only.write_text("pipeline:\n  serial:\n    - {stage: kg_lookup, with: {path: kb.json}}"
                            "\n    - {stage: rules, with: {path: rules.yaml}}\n"
                            "    - {stage: decide}\n", encoding="utf-8")
    ok = subprocess.run([str(SCRIPT), "run", str(builtin_only), "--text", "my card was stolen"],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split("\t")[1] == "fraud"
    broken = subprocess.run([str(SCRIPT), "validate", str(folder / "broken.yaml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert broken.returncode == 1
    assert "3 problem(s)" in broken.stderr
