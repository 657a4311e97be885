"""examples/credit-decision: policy vetoes, a cost-aware risk model, pricing, explanations."""

from __future__ import annotations

import json
from typing import Any

from hybrid_ai import Engine

from .conftest import EXAMPLES, load_script


def _applicants() -> dict[str, dict[str, Any]]:
    path = EXAMPLES / "credit-decision" / "applicants.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {row["id"]: row for row in rows}


def test_a_policy_veto_overrules_the_model(credit: Engine) -> None:
    result = credit.run(_applicants()["applicant-minor"])
    final = result.decision_fact
    assert final is not None and result.decision == "decline"
    assert (final.data["rule"], final.data["strength"]) == ("applicant_is_a_minor", "veto")


def test_every_decision_names_its_rule_and_the_features_behind_it(credit: Engine) -> None:
    results = credit.run_batch(list(_applicants().values()), concurrency=2)
    assert all(r.ok for r in results)
    for result in results:
        risk = result.of("risk")[-1].data
        assert len(risk["drivers"]) == 4 and risk["threshold"] < 0.5
        text = result.explain().text()
        assert "rule:" in text
        if result.decision in ("approve", "decline") and "policy" not in text:
            assert risk["drivers"][0]["feature"] in text
    approved = [r for r in results if r.decision == "approve"]
    assert approved and all(r.decision_fact is not None
                            and r.decision_fact.data["tier"] in "ABCD" for r in approved)


def test_expected_cost_on_the_held_out_split_beats_the_baselines() -> None:
    module = load_script(EXAMPLES / "credit-decision" / "evaluate.py", "credit_evaluate")
    report = module.run(limit=120)
    cost = report["expected_cost"]
    assert report["failed"] == 0 and report["applicants"] == 120
    assert cost["pipeline"] < cost["model_at_0.5"] < cost["approve_everyone"]


def test_the_documented_command_runs_the_example() -> None:
    from typer.testing import CliRunner

    from hybrid_ai.cli import app

    folder = EXAMPLES / "credit-decision"
    result = CliRunner().invoke(app, ["run", str(folder / "pipeline.yaml"), "--file",
                                      str(folder / "applicants.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert len(rows) == 11 and all(row["ok"] for row in rows)
    by_case = {row["case"]: row["decision"] for row in rows}
    assert by_case["applicant-minor"] == "decline"
