"""The examples' rule files pass their own rule tests, and every rule in them is covered."""

from __future__ import annotations

import pytest

from hybrid_ai.rules import run_tests

from .conftest import ROOT


@pytest.mark.parametrize("name", ["credit_policy", "market_alerts", "support_escalation"])
def test_rule_tests_pass_with_full_coverage(name: str) -> None:
    report = run_tests(ROOT / "rules" / f"{name}.tests.yaml")
    assert report.passed, report.text()
    assert report.uncovered == []
