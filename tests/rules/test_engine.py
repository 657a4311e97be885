"""The engine: agenda order, refraction, no-loop, truth maintenance, chaining, rule files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.rules import Engine, RuleLimitError, compile_rules, load_rules


def engine_for(*rules: dict[str, Any], **options: Any) -> Engine:
    return Engine(compile_rules(list(rules)), **options)


def rule(rid: str, when: list[Any], then: list[Any], **extra: Any) -> dict[str, Any]:
    return {"id": rid, "when": when, "then": then, **extra}


def fired(engine: Engine) -> list[str]:
    return [f.rule for f in engine.firings]


def test_refraction_an_activation_fires_once_per_token() -> None:
    engine = engine_for(rule("seen", [{"item": {"n": "?n"}}], [{"insert": {"log": {"n": "?n"}}}]))
    item = engine.insert("item", {"n": 1})
    assert engine.run() == 1
    assert engine.run() == 0  # still matching, but already fired
    engine.modify(item, {"n": 2})  # a modified fact is a new match
    assert engine.run() == 1
    assert sorted(f.fields["n"] for f in engine.facts("log")) == [1, 2]


def test_no_loop_stops_a_rule_reactivating_itself() -> None:
    bump = [{"counter": {"n": "< 100"}, "as": "?c"}]
    action = [{"modify": {"?c": {"n": "=?c.n + 1"}}}]
    looping = engine_for(rule("bump", bump, action), max_fires=50)
    looping.insert("counter", {"n": 0})
    with pytest.raises(RuleLimitError, match="bump"):
        looping.run()
    guarded = engine_for(rule("bump", bump, action, no_loop=True))
    counter = guarded.insert("counter", {"n": 0})
    assert guarded.run() == 1 and counter.fields["n"] == 1


def test_salience_then_strategy_orders_the_agenda() -> None:
    rules = [rule("low", [{"go": {"n": "?n"}}], [], salience=-5),
             rule("high", [{"go": {"n": "?n"}}], [], salience=10),
             rule("mid", [{"go": {"n": "?n"}}], [])]
    for strategy, expected in [("depth", [2, 1]), ("breadth", [1, 2])]:
        engine = Engine(compile_rules(rules), strategy=strategy)  # type: ignore[arg-type]
        engine.insert("go", {"n": 1})
        engine.insert("go", {"n": 2})
        engine.run()
        assert fired(engine) == ["high", "high", "mid", "mid", "low", "low"]
        assert [f.bindings["n"] for f in engine.firings[:2]] == expected


def test_logical_insert_goes_when_its_support_goes() -> None:
    engine = engine_for(rule("alarm", [{"sensor": {"hot": True, "id": "?s"}}],
                             [{"logical": {"alarm": {"sensor": "?s"}}}]))
    first = engine.insert("sensor", {"id": 1, "hot": True})
    second = engine.insert("sensor", {"id": 2, "hot": True})
    engine.run()
    assert len(engine.facts("alarm")) == 2
    engine.modify(first, {"hot": False})
    assert [f.fields for f in engine.facts("alarm")] == [{"sensor": 2}]
    engine.retract(second)
    assert engine.facts("alarm") == []


def test_logical_fact_with_two_supports_stays_until_both_go() -> None:
    engine = engine_for(rule("any_hot", [{"sensor": {"hot": True}}],
                             [{"logical": {"alarm": {"on": True}}}]))
    a = engine.insert("sensor", {"id": 1, "hot": True})
    b = engine.insert("sensor", {"id": 2, "hot": True})
    engine.run()
    assert len(engine.facts("alarm")) == 1  # identical facts are not duplicated
    engine.retract(a)
    assert len(engine.facts("alarm")) == 1
    engine.retract(b)
    assert engine.facts("alarm") == []


def test_chaining_runs_to_a_fixpoint() -> None:
    engine = engine_for(
        rule("edge_path", [{"edge": {"a": "?x", "b": "?y"}}],
             [{"insert": {"path": {"a": "?x", "b": "?y"}}}]),
        rule("extend", [{"path": {"a": "?x", "b": "?y"}}, {"edge": {"a": "?y", "b": "?z"}}],
             [{"insert": {"path": {"a": "?x", "b": "?z"}}}]))
    for a, b in [(1, 2), (2, 3), (3, 4)]:
        engine.insert("edge", {"a": a, "b": b})
    engine.run()
    paths = sorted((f.fields["a"], f.fields["b"]) for f in engine.facts("path"))
    assert paths == [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]


def test_retract_action_and_flags_as_facts() -> None:
    engine = engine_for(
        rule("cancel", [{"order": {"id": "?o"}, "as": "?f"}, {"cancel": {"order": "?o"}}],
             [{"retract": "?f"}, {"insert": {"flag": {"name": "cancelled", "order": "?o"}}}]))
    engine.insert("order", {"id": 1})
    engine.insert("order", {"id": 2})
    engine.insert("cancel", {"order": 2})
    engine.run()
    assert [f.fields["id"] for f in engine.facts("order")] == [1]
    (firing,) = engine.firings
    assert firing.bindings == {"o": 2, "f": 2} and firing.matched == [2, 3]
    assert [f.fields for f in firing.inserted] == [{"name": "cancelled", "order": 2}]


def test_agenda_groups_and_halt() -> None:
    engine = engine_for(
        rule("start", [{"go": {}}], [{"focus": "later"}, {"insert": {"step": {"n": 1}}}]),
        rule("in_main", [{"step": {"n": 1}}], [{"insert": {"main": {}}}]),
        rule("in_later", [{"step": {"n": 1}}], [{"halt": True}], agenda_group="later"))
    engine.insert("go", {})
    engine.run()
    assert fired(engine) == ["start", "in_later"]
    engine.run()
    assert fired(engine) == ["start", "in_later", "in_main"]


RULE_FILE = """\
rules:
  - id: flag_big_gold
    salience: 5
    when:
      - order: {customer: "?c", amount: "> 500", id: "?o"}
      - customer:
          id: ?c
          tier: gold
      - not: {flag: {order: "?o"}}
    then:
      - insert: {flag: {order: "?o", rule: big_gold}}
  - id: classic
    when: "text matches 'x'"
    then: {flag: x}
"""


def test_a_yaml_rule_file_loads_both_forms(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULE_FILE)
    ruleset = load_rules(path, {})
    assert [r.id for r in ruleset.rules] == ["classic"]
    assert [r.id for r in ruleset.chaining] == ["flag_big_gold"]
    engine = Engine(ruleset.chaining)
    engine.insert("customer", {"id": 1, "tier": "gold"})
    engine.insert("order", {"id": 7, "customer": 1, "amount": 900})
    engine.run()
    assert [f.fields for f in engine.facts("flag")] == [{"order": 7, "rule": "big_gold"}]


BAD_FILE = """\
rules:
  - id: unknown_action
    when:
      - order: {id: "?o"}
    then:
      - shout: {x: 1}
  - id: bad_pattern
    when:
      - order: 5
    then: []
  - id: unbound
    when:
      - order: {id: "?o"}
      - test: "?o > ?nope"
    then: []
  - id: unbound_value
    when:
      - order: {id: "?o"}
    then:
      - insert: {flag: {x: "?y"}}
"""


def test_load_errors_have_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_FILE)
    with pytest.raises(ConfigError) as info:
        load_rules(path, {})
    found = [(p.location.line, p.message.split(":")[0]) for p in info.value.problems]
    assert found == [(6, "rule 'unknown_action'"), (9, "rule 'bad_pattern'"),
                     (14, "rule 'unbound'"), (20, "rule 'unbound_value'")]
    assert all(p.location.file == str(path) for p in info.value.problems)
    assert "unknown action 'shout'" in str(info.value)
    assert "nope" in str(info.value)


STAGE_RULES = """\
rules:
  - id: big_gold
    when:
      - order: {customer: "?c", amount: "> 500", id: "?o"}
      - customer: {id: "?c", tier: gold}
    then:
      - insert: {risk: {order: "?o"}}
  - id: escalate
    when:
      - risk: {order: "?o"}
    then:
      - insert: {decision: {label: review, order: "?o"}}
      - insert: {note: {text: internal}}
  - id: escalate_again
    when:
      - risk: {order: "?o"}
    then:
      - insert: {decision: {label: review, order: "?o"}}
"""


def test_the_rules_stage_runs_chaining_rules_with_provenance(tmp_path: Path) -> None:
    from hybrid_ai import Blackboard, Case, NewFact
    from hybrid_ai.rules import RulesStage

    path = tmp_path / "chain.yaml"
    path.write_text(STAGE_RULES)
    stage = RulesStage(path=str(path), produces=["risk"])
    assert stage.requires == ("customer", "order")
    assert stage.produces == ("decision", "risk")
    board = Blackboard(Case(text="x", fields={}))
    gold = board.add(NewFact("customer", {"id": 1, "tier": "gold"}), stage="load")
    order = board.add(NewFact("order", {"id": 9, "customer": 1, "amount": 700}), stage="load")
    out = stage.process(board)
    assert [(f.kind, dict(f.data)) for f in out] == [
        ("risk", {"order": 9}),
        ("decision", {"label": "review", "order": 9, "strength": "advise",
                      "reason": "rule escalate", "rule": "escalate", "salience": 0})]
    risk, decision = out
    assert risk.source == "rule:big_gold" and list(risk.derived_from) == [order, gold]
    assert risk.detail["bindings"] == {"c": 1, "o": 9}
    assert risk.detail["version"] == stage.ruleset.version
    assert decision.source == "rule:escalate" and list(decision.derived_from) == []


def test_fact_variables_are_checked_when_the_rules_compile() -> None:
    with pytest.raises(ConfigError) as info:
        compile_rules([rule("r", [{"order": {"id": "?o"}}], [{"retract": "?o"}]),
                       rule("s", [{"order": {}, "as": "oops"}], []),
                       rule("t", [{"order": {"n": "> ?later"}}, {"x": {"v": "?later"}}], [])])
    text = str(info.value)
    assert "'?o' is not a fact variable" in text
    assert "`as` needs a new variable" in text
    assert "rule 't'" in text and "later" in text


def test_insert_all_and_unhashable_fields() -> None:
    engine = engine_for(rule("tagged", [{"doc": {"tags": "?t", "id": "?d"}}],
                             [{"insert": {"seen": {"doc": "?d", "tags": "?t"}}}]))
    docs = engine.insert_all([("doc", {"id": 1, "tags": ["a"]}), ("doc", {"id": 2, "tags": ["a"]})])
    assert [d.id for d in docs] == [1, 2]
    assert engine.run() == 2
    assert sorted(f["doc"] for f in engine.facts("seen")) == [1, 2]


def test_salience_type_and_duplicate_ids_are_load_errors() -> None:
    with pytest.raises(ConfigError) as info:
        compile_rules([rule("a", [{"x": {}}], [], salience="high"),
                       rule("b", [{"x": {}}], []), rule("b", [{"y": {}}], [])])
    text = str(info.value)
    assert "`salience` must be an integer" in text and "rule 'b' is defined twice" in text


def test_a_file_of_only_chaining_rules_still_rejects_unknown_top_level_keys(
        tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - id: a\n    when:\n      - x: {}\n    then: []\ncolour: red\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path, {})
    (problem,) = info.value.problems
    assert problem.location.line == 6 and problem.message.startswith("colour")


def test_run_limit_and_strategy_checks(tmp_path: Path) -> None:
    from hybrid_ai.rules import RulesStage

    engine = engine_for(rule("r", [{"x": {"n": "?n"}}], []))
    engine.insert_all([("x", {"n": i}) for i in range(5)])
    assert engine.run(limit=2) == 2 and engine.run() == 3
    with pytest.raises(ValueError, match="unknown strategy"):
        Engine(strategy="lifo")  # type: ignore[arg-type]
    path = tmp_path / "r.yaml"
    path.write_text(STAGE_RULES)
    with pytest.raises(ConfigError, match="unknown strategy"):
        RulesStage(path=str(path), strategy="lifo")  # type: ignore[arg-type]
    assert RulesStage(path=str(path), strategy="breadth").version.endswith("+breadth/100000")


def _facts_alive() -> int:
    import gc

    from hybrid_ai.rules._rete import Fact

    gc.collect()
    return sum(isinstance(o, Fact) for o in gc.get_objects())


def test_keep_firings_bounds_the_log_of_a_long_lived_engine() -> None:
    rules = compile_rules([{"id": "flag", "when": [{"order": {"id": "?o", "amount": "> 5"}}],
                            "then": [{"insert": {"flag": {"order": "?o"}}}]}])
    engine = Engine(rules, keep_firings=3)
    unbounded = Engine(rules)
    before = _facts_alive()
    for i in range(200):  # a stream: each input inserted, run, then cleared away
        for eng in (engine, unbounded):
            order = eng.insert("order", {"id": i, "amount": 9})
            eng.run()
            for fact in [order, *eng.facts("flag")]:
                eng.retract(fact)
    assert [f.bindings["o"] for f in engine.firings] == [197, 198, 199]
    assert len(unbounded.firings) == 200
    del unbounded, eng, order, fact
    # What the bounded engine keeps: three firings' orders and flags, not 200 of each.
    assert _facts_alive() - before <= 6
    with pytest.raises(ValueError, match="keep_firings"):
        Engine(rules, keep_firings=0)


@pytest.mark.parametrize("first", [True, False])
def test_a_variable_repeated_in_one_pattern_compares_its_fields(first: bool) -> None:
    same = {"pair": {"a": "?v", "b": "?v"}}
    before = [] if first else [{"go": {}}]
    rules = compile_rules([{"id": "same", "when": [*before, same],
                            "then": [{"insert": {"hit": {"v": "?v"}}}]}])
    engine = Engine(rules)
    engine.insert_all([("go", {}), ("pair", {"a": 1, "b": 1}), ("pair", {"a": 1, "b": 2}),
                       ("pair", {"a": "x", "b": "x"}), ("pair", {"a": 3}),
                       ("pair", {"a": None})])  # a missing field equals nothing, not null
    engine.run()
    assert [f.fields["v"] for f in engine.facts("hit")] in ([1, "x"], ["x", 1])


def test_an_insert_identical_to_a_fact_a_modify_made_returns_that_fact() -> None:
    engine = Engine()
    first = engine.insert("b", {"p": 1})
    second = engine.insert("b", {"p": 2})
    engine.modify(second, {"p": 1})  # two identical facts now: the index knows the first
    engine.retract(first)
    assert engine.insert("b", {"p": 1}) is second
    assert engine.facts() == [second]
