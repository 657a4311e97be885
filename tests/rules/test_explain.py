"""``rules explain``: why rules fired (bindings) and why one did not (first failed condition)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.rules import explain_rules

FLAGSHIP = "rules/support_triage.yaml"

ORDERS = """\
rules:
  - id: big_gold_order
    when:
      - customer: {id: "?c", tier: gold}
      - order: {customer: "?c", amount: "> 500"}
        as: ?o
      - not: {hold: {order: "?c"}}
    then:
      - insert: {flag: {name: vip_big, customer: "?c"}}
  - id: any_big_order
    when:
      - order: {amount: "?a"}
      - test: "?a > 800"
    then:
      - insert: {seen: {amount: "?a"}}
  - id: needs_audit
    when:
      - audit: {}
    then:
      - insert: {flag: {name: audited}}
"""


def orders(tmp_path: Path) -> Path:
    path = tmp_path / "orders.yaml"
    path.write_text(ORDERS, encoding="utf-8")
    return path


def given(**facts: Any) -> dict[str, Any]:
    return {"facts": facts}


def test_a_simple_rule_that_fired_shows_the_values_it_read() -> None:
    result = explain_rules(FLAGSHIP, {"text": "hello", "facts": {
        "intent": {"label": "card_arrival", "confidence": 0.1}}}, rule="unsure_intent_to_human")
    (item,) = result.rules
    assert item.fired and item.kind == "simple"
    assert item.firings[0]["bindings"] == {"intent.confidence": 0.1}
    assert item.firings[0]["because"] == ["intent.confidence < 0.25"]
    stolen = explain_rules(FLAGSHIP, {"text": "hi", "facts": {"intent": {
        "label": "compromised_card"}}}, rule="stolen_or_compromised_card").rules[0]
    assert stolen.firings[0]["because"] == [  # the alternative of the `or` that held
        "intent.label in ['lost_or_stolen_card', 'compromised_card']"]
    assert item.firings[0]["matched"][0]["kind"] == "intent"
    assert result.fired() == ["unsure_intent_to_human"]


def test_a_simple_rule_that_did_not_fire_names_the_failed_comparison() -> None:
    result = explain_rules(FLAGSHIP, {"text": "hello", "facts": {
        "intent": {"label": "card_arrival", "confidence": 0.9}}})
    unsure = result.get("unsure_intent_to_human")
    assert not unsure.fired
    (failure,) = unsure.failed
    assert failure["condition"] == "intent.confidence < 0.25"
    assert failure["values"] == {"intent.confidence": 0.9}
    assert failure["location"] == f"{FLAGSHIP}:19:11"
    assert unsure.candidates[0]["fields"]["label"] == "card_arrival"
    stolen = result.get("stolen_or_compromised_card")  # an `or`: every alternative failed
    assert [f["values"] for f in stolen.failed] == [{"text": "hello"},
                                                    {"intent.label": "card_arrival"}]
    route = result.get("route_by_knowledge")
    assert "no fact of kind 'knowledge'" in route.note
    assert "FIRED" not in result.text()


def test_the_first_false_operand_of_an_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent("""\
        rules:
          - id: r
            when: "fields.amount > 100 and (fields.country == 'FR' or not fields.vip)"
            then: {flag: x}
        """), encoding="utf-8")
    low = explain_rules(path, {"fields": {"amount": 50, "country": "FR"}}).get("r")
    assert [f["condition"] for f in low.failed] == ["fields.amount > 100"]
    high = explain_rules(path, {"fields": {"amount": 500, "country": "DE", "vip": True}}).get("r")
    assert [f["condition"] for f in high.failed] == [
        "fields.country == 'FR'", "not fields.vip (the negated part was true)"]
    assert high.failed[1]["values"] == {"fields.vip": True}


def test_a_pattern_rule_that_fired_shows_bindings_and_matched_facts(tmp_path: Path) -> None:
    result = explain_rules(orders(tmp_path), given(
        customer={"id": 2, "tier": "gold"}, order={"customer": 2, "amount": 900}))
    item = result.get("big_gold_order")
    assert item.fired and item.kind == "pattern"
    (firing,) = item.firings
    assert firing["bindings"]["c"] == 2
    assert [m["kind"] for m in firing["matched"]] == ["customer", "order"]
    assert result.get("any_big_order").firings[0]["bindings"] == {"a": 900}


def test_a_pattern_rule_that_did_not_fire_names_the_pattern_and_the_nearest_facts(
        tmp_path: Path) -> None:
    result = explain_rules(orders(tmp_path), given(
        customer=[{"id": 1, "tier": "silver"}, {"id": 2, "tier": "gold"}],
        order=[{"customer": 2, "amount": 100}, {"customer": 1, "amount": 900}]),
        rule="big_gold_order")
    (item,) = result.rules
    assert not item.fired
    (failure,) = item.failed
    assert failure["condition"] == "order pattern"
    assert failure["written"] == '{"order": {"customer": "?c", "amount": "> 500"}, "as": "?o"}'
    assert failure["location"].endswith("orders.yaml:5:9")
    reasons = {c["fields"]["amount"]: (c["rejected_by"], c.get("value"))
               for c in item.candidates}
    assert reasons[900] == ("customer == ?c (?c = 2)", 1)
    assert reasons[100] == ("amount > 500", 100)
    assert "nearest candidates" in item.text()


def test_negations_tests_and_missing_kinds_are_explained(tmp_path: Path) -> None:
    path = orders(tmp_path)
    held = explain_rules(path, given(customer={"id": 2, "tier": "gold"},
                                     order={"customer": 2, "amount": 900},
                                     hold={"order": 2}), rule="big_gold_order").rules[0]
    assert not held.fired
    assert held.failed[0]["condition"] == "not hold pattern"
    assert held.candidates[0]["rejected_by"] == "it matches the negated pattern"
    small = explain_rules(path, given(order={"amount": 10}), rule="any_big_order").rules[0]
    assert small.failed[0]["written"] == "test: ?a > 800"
    assert small.failed[0]["values"] == {"?a": 10}
    none = explain_rules(path, given(), rule="needs_audit").rules[0]
    assert "no fact of kind 'audit'" in none.failed[0]["condition"]


def test_unknown_rules_are_config_errors_listing_the_rules() -> None:
    with pytest.raises(ConfigError, match="route_by_knowledge"):
        explain_rules(FLAGSHIP, {}, rule="nope")


def test_decision_table_rows_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "pricing.csv"
    path.write_text("# hit: FIRST\n# id: pricing\nin: fields.age,in: fields.country,out: label\n"
                    "< 18,-,minor\n>= 18,'DE',adult_de\n>= 18,-,adult\n", encoding="utf-8")
    result = explain_rules(path, {"fields": {"age": 40, "country": "DE"}})
    assert result.fired() == ["pricing:2"]
    assert result.get("pricing:2").firings[0]["outputs"] == {"label": "adult_de"}
    (failure,) = result.get("pricing:1").failed
    assert failure["condition"] == "fields.age < 18" and failure["values"] == {"fields.age": 40}
    assert failure["location"] == f"{path}:4:1"
    assert "hit policy FIRST chose row(s) 2" in result.get("pricing:3").note
    assert [r.rule for r in explain_rules(path, {}, rule="pricing").rules] == [
        "pricing:1", "pricing:2", "pricing:3"]


def test_forall_and_exists_show_the_counterexample_and_the_nearest_fact(tmp_path: Path) -> None:
    path = tmp_path / "forall.yaml"
    path.write_text(textwrap.dedent("""\
        rules:
          - id: all_paid
            when:
              - customer: {id: "?c"}
              - forall:
                  - order: {customer: "?c", id: "?o"}
                  - payment: {order: "?o"}
            then:
              - insert: {flag: {name: all_paid}}
          - id: has_vip
            when:
              - exists: {customer: {tier: vip}}
            then:
              - insert: {flag: {name: some_vip}}
        """), encoding="utf-8")
    result = explain_rules(path, given(customer={"id": 1, "tier": "std"},
                                       order=[{"customer": 1, "id": 10},
                                              {"customer": 1, "id": 11}],
                                       payment={"order": 10}))
    (unpaid,) = result.get("all_paid").failed
    assert unpaid["values"] == {"?c": 1, "?o": 11}  # order 11 has no payment
    vip = result.get("has_vip")
    assert vip.failed[0]["condition"] == "exists customer pattern"
    assert vip.candidates[0]["rejected_by"] == "tier == 'vip'"
    assert vip.candidates[0]["value"] == "std"
    paid = explain_rules(path, given(customer={"id": 1}, order={"customer": 1, "id": 10},
                                     payment={"order": 10}), rule="all_paid")
    assert paid.fired() == ["all_paid"]


def test_the_text_form_shows_twenty_firings_per_rule_and_counts_the_rest(tmp_path: Path) -> None:
    # A rule that loops fires until max_fires: its text must not print every firing.
    orders_given = [{"customer": 1, "amount": 801 + i} for i in range(25)]
    item = explain_rules(orders(tmp_path), given(order=orders_given)).get("any_big_order")
    assert len(item.firings) == 25
    text = item.text()
    assert text.count("bindings:") == 20
    assert "... and 5 more firing(s) (all of them in --json)" in text
