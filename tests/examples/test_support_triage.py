"""examples/support-triage: Banking77 messages routed with vetoes, escalation and explanations."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from hybrid_ai import Engine

from .conftest import EXAMPLES


def _messages() -> list[dict[str, Any]]:
    path = EXAMPLES / "support-triage" / "messages.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_messages_get_their_intent_and_a_routing_decision(triage: Engine) -> None:
    messages = _messages()
    results = triage.run_batch(messages, concurrency=2)
    assert all(r.ok for r in results)
    intents = [r.of("intent")[-1].data["label"] for r in results]
    right = sum(i == m["fields"]["gold_intent"] for i, m in zip(intents, messages, strict=True))
    assert right >= 10
    assert all(r.decision in {"cards", "payments", "fraud", "identity", "accounts", "general",
                              "human_review"} for r in results)


def test_a_stolen_card_is_an_urgent_veto_no_model_overrules(triage: Engine) -> None:
    result = triage.run("my card was stolen yesterday, please help")
    final = result.decision_fact
    assert final is not None and result.decision == "fraud"
    assert (final.data["strength"], final.data["priority"]) == ("veto", "urgent")
    assert "stolen_or_compromised_card" in result.explain().text()


def test_money_at_stake_escalates_and_the_reason_says_why(triage: Engine) -> None:
    case = {"text": "My money transfer has not arrived.", "fields": {"amount": 2400}}
    result = triage.run(case)
    final = result.decision_fact
    assert final is not None and result.decision == "payments"
    assert final.data["priority"] == "urgent" and final.data["escalated"] is True
    assert "2400 EUR at stake" in final.data["reason"]
    text = result.explain().text()
    assert "money_at_stake" in text and "knowledge" in text


def test_the_evaluation_reports_accuracy_and_transformer_share(
        triage: Engine, evaluate: ModuleType) -> None:
    app = evaluate.APPS["support-triage"]
    cases, gold = evaluate.load_cases(app, limit=60)
    report = evaluate.score(app, triage.run_batch(cases, concurrency=2), gold)
    assert report["cases"] == 60 and report["failed"] == 0
    assert report["accuracy"] >= 0.8
    assert 0.0 < report["transformer_share"] < 0.8
