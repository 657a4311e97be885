"""The ``rules`` stage: rule files compiled from YAML, decisions of each strength, computed values
and reasons, provenance back to the rule and its evidence, and bad files reported with file:line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from hybrid_ai import (
    Blackboard,
    Case,
    ConfigError,
    Engine,
    Fact,
    NewFact,
    PipelineError,
    hookimpl,
    read_pipeline,
    serial,
    stage,
)
from hybrid_ai.rules import RulesStage
from tests._stages_for_tests import LabelStage

RULES = """\
# rules for the tests
rules:
  - id: stolen_card
    salience: 100
    when: "text matches '(?i)\\\\b(stolen|lost)\\\\b'"
    then:
      decision: {label: fraud, priority: urgent}
      strength: veto
      reason: "card reported lost or stolen: {text}"

  - id: unsure
    salience: 50
    when: intent.confidence < 0.5
    then:
      decision: {label: human_review}
      strength: override
      reason: "intent {intent.label} is too uncertain ({intent.confidence})"

  - id: by_label
    salience: 10
    when: intent.label != null
    then:
      decision:
        label: "=upper(intent.label)"
        team: "=coalesce(fields.team, 'general')"
        literal: plain text
      strength: advise

  - id: big_amount
    when: fields.amount > 1000
    then:
      flag: "=lower('BIG')"
      reason: "amount {fields.amount} over 1000"

  - id: note_country
    when: fields.country in ['FR', 'DE']
    then:
      fact:
        kind: region
        data: {name: eu, country: "=fields.country"}
"""


@pytest.fixture
def rule_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def board(text: str = "hello", fields: dict[str, Any] | None = None,
          intent: tuple[str, float] | None = None) -> Blackboard:
    b = Blackboard(Case(text=text, fields=fields or {}))
    if intent is not None:
        b.add(NewFact("intent", {"label": intent[0]}, confidence=intent[1]), stage="fuse")
    return b


def fire(stage_: RulesStage, b: Blackboard) -> list[Fact]:
    return [b.add(d, stage="rules", source="rules") for d in stage_.process(b)]


def test_requires_and_produces_come_from_the_rules(rule_file: Path) -> None:
    rules = RulesStage(path=str(rule_file))
    assert rules.requires == ("intent",)
    assert rules.produces == ("decision", "flag", "region")
    assert [r.id for r in rules.ruleset.rules] == ["stolen_card", "unsure", "by_label",
                                                   "big_amount", "note_country"]
    assert rules.version == hashlib.sha256(RULES.encode()).hexdigest()[:12]
    assert RulesStage(path=str(rule_file), produces=["extra"]).produces == (
        "decision", "extra", "flag", "region")


def test_veto_with_a_reason_template(rule_file: Path) -> None:
    rules = RulesStage(path=str(rule_file))
    b = board("my card was stolen", intent=("lost_card", 0.9))
    veto = next(f for f in fire(rules, b) if f.get("rule") == "stolen_card")
    assert veto.kind == "decision"
    assert dict(veto.data) == {"label": "fraud", "priority": "urgent", "strength": "veto",
                               "reason": "card reported lost or stolen: my card was stolen",
                               "rule": "stolen_card", "salience": 100}


def test_provenance_names_rule_version_and_evidence(rule_file: Path) -> None:
    rules = RulesStage(path=str(rule_file))
    b = board("my card was stolen", intent=("lost_card", 0.3))
    fired = fire(rules, b)
    veto, unsure = fired[0], fired[1]
    assert veto.provenance.source == "rule:stolen_card"
    assert veto.provenance.stage == "rules"
    detail = veto.provenance.detail
    assert detail["rule"] == "stolen_card"
    assert detail["version"] == rules.version
    assert detail["ruleset"] == str(rule_file)
    assert detail["line"] == 5
    assert "stolen|lost" in detail["when"]
    root = b.last("input")
    intent = b.last("intent")
    assert root is not None and intent is not None
    # a text condition rests on the input; a fact condition on that fact
    assert veto.provenance.inputs == (root.id,)
    assert unsure.provenance.source == "rule:unsure"
    assert unsure.provenance.inputs == (intent.id,)
    assert unsure.provenance.detail["line"] == 13


def test_override_reason_formats_numbers(rule_file: Path) -> None:
    rules = RulesStage(path=str(rule_file))
    fired = fire(rules, board("where is it", intent=("card_arrival", 0.3)))
    unsure = next(f for f in fired if f.get("rule") == "unsure")
    assert unsure.data["strength"] == "override"
    assert unsure.data["reason"] == "intent card_arrival is too uncertain (0.30)"


def test_expression_values_and_default_reason(rule_file: Path) -> None:
    rules = RulesStage(path=str(rule_file))
    fired = fire(rules, board("where is it", {"team": "cards"}, intent=("card_arrival", 0.9)))
    assert [f.get("rule") for f in fired] == ["by_label"]
    (advice,) = fired
    assert advice.data["label"] == "CARD_ARRIVAL"
    assert advice.data["team"] == "cards"
    assert advice.data["literal"] == "plain text"
    assert advice.data["strength"] == "advise"
    assert advice.data["reason"] == "rule by_label"
    fired = fire(rules, board("x", intent=("card_arrival", 0.9)))
    assert fired[0].data["team"] == "general"


def test_flags_and_fact_actions(rule_file: Path) -> None:
    rules = RulesStage(path=str(rule_file))
    fired = fire(rules, board("x", {"amount": 5000, "country": "FR"}))
    by_kind = {f.kind: f for f in fired}
    assert set(by_kind) == {"flag", "region"}
    assert dict(by_kind["flag"].data) == {"name": "big", "reason": "amount 5000 over 1000"}
    assert dict(by_kind["region"].data) == {"name": "eu", "country": "FR"}
    assert by_kind["region"].provenance.source == "rule:note_country"


def test_rules_fire_in_salience_order_once_each(rule_file: Path) -> None:
    rules = RulesStage(path=str(rule_file))
    fired = fire(rules, board("card stolen", {"amount": 5000, "country": "DE"},
                              intent=("lost_card", 0.2)))
    assert [f.provenance.source for f in fired] == [
        "rule:stolen_card", "rule:unsure", "rule:by_label", "rule:big_amount",
        "rule:note_country"]


def test_nothing_fires(rule_file: Path) -> None:
    assert RulesStage(path=str(rule_file)).process(board("hello")) == []


def test_rules_and_decide_in_an_engine(rule_file: Path, tmp_path: Path) -> None:
    text = f"""\
plugins: [tests._stages_for_tests]
pipeline:
  serial:
    - stage: t_label
      with: {{label: lost_card, conf: 0.9}}
    - stage: fuse
      with: {{output: intent}}
    - stage: rules
      with: {{path: {rule_file.name}}}
    - stage: decide
      with: {{base: intent}}
"""
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    with Engine.from_yaml(path) as engine:
        vetoed = engine.run("I lost my card")
        modelled = engine.run({"text": "where is it", "fields": {"team": "cards"}})
    assert vetoed.decision == "fraud"
    assert vetoed.decision_fact is not None
    assert vetoed.decision_fact.provenance.source == "rule:stolen_card"
    assert "because card reported lost or stolen: I lost my card" in vetoed.explain().text()
    support = {f.provenance.source for f in vetoed.explain().support()}
    assert {"rule:stolen_card", "case"} <= support
    # with no veto or override, the model's answer wins over the advice
    assert modelled.decision == "lost_card"


def test_plugin_rule_functions_are_available(tmp_path: Path) -> None:
    class Functions:
        @hookimpl
        def hybrid_ai_rule_functions(self) -> dict[str, Any]:
            return {"shout": lambda s: None if s is None else str(s).upper() + "!"}

    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - id: loud\n    when: \"shout(text) == 'HI!'\"\n"
                    "    then: {flag: \"=shout('x')\"}\n", encoding="utf-8")
    with Engine(stage("rules", path=str(path)), plugins=[Functions()]) as engine:
        assert engine.run("hi").of("flag")[0].data["name"] == "X!"
    with pytest.raises(PipelineError, match="unknown function 'shout'"):
        Engine(stage("rules", path=str(path)))


def test_rule_requirements_are_checked_in_the_graph(rule_file: Path) -> None:
    with pytest.raises(PipelineError, match="requires fact 'intent'"):
        Engine(stage("rules", path=str(rule_file)))
    with Engine(serial(stage(LabelStage()), stage("fuse", output="intent"),
                       stage("rules", path=str(rule_file)))) as engine:
        assert "flag" in engine.graph.produces


# --- bad rule files -----------------------------------------------------------------------------

BAD_EXPRESSIONS = """\
rules:
  - id: fine
    when: "text matches 'a'"
    then: {decision: {label: a}}
  - id: broken_expr
    when: "text ==="
    then: {decision: {label: b}}
  - id: bad_fn
    when: "nosuchfn(text)"
    then: {flag: x}
  - id: bad_value
    when: "true"
    then: {decision: {label: "=text +"}}
  - id: bad_template
    when: "true"
    then: {flag: x, reason: "value {text ==}"}
"""

BAD_SHAPE = """\
rules:
  - id: ok
    when: "true"
    then: {decision: {label: a}, strength: maybe}
  - id: "9bad"
    when: "true"
    colour: red
    then: {flag: x}
"""


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_expressions_are_all_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_EXPRESSIONS)
    with pytest.raises(ConfigError) as info:
        RulesStage(path=str(path))
    problems = info.value.problems
    assert [(p.location.file, p.location.line) for p in problems] == [
        (str(path), 6), (str(path), 9), (str(path), 12), (str(path), 15)]
    assert "rule 'broken_expr'" in problems[0].message
    assert "unknown function 'nosuchfn'" in problems[1].message
    assert "rule 'bad_value'" in problems[2].message
    assert "rule 'bad_template'" in problems[3].message
    assert f"{path}:6:" in str(info.value)


def test_bad_shape_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_SHAPE)
    with pytest.raises(ConfigError, match="not a valid rule file") as info:
        RulesStage(path=str(path))
    found = [(p.location.line, p.message.split(":")[0]) for p in info.value.problems]
    assert found == [(4, "rules.0.then.strength"), (5, "rules.1.id"), (7, "rules.1.colour")]


def test_an_action_needs_exactly_one_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: two\n    when: 'true'\n"
                           "    then: {decision: {label: a}, flag: x}\n"
                           "  - id: none\n    when: 'true'\n    then: {reason: why}\n"
                           "  - id: kindless\n    when: 'true'\n    then: {fact: {data: {}}}\n")
    with pytest.raises(ConfigError) as info:
        RulesStage(path=str(path))
    lines = [p.location.line for p in info.value.problems]
    assert lines[0] == 3 and 6 in lines and 9 in lines
    assert "exactly one of decision, flag, fact" in str(info.value)
    assert "`fact` needs a `kind`" in str(info.value)


def test_rule_file_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: a\n    when: 'true'\n   then: {flag: x}\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        RulesStage(path=str(path))
    assert info.value.problems[0].location.line == 4


def test_empty_and_missing_rule_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        RulesStage(path=str(write(tmp_path, "rules: []\n")))
    with pytest.raises(ConfigError, match="cannot read rule file"):
        RulesStage(path=str(tmp_path / "absent.yaml"))


def test_a_bad_rule_file_fails_the_pipeline_with_its_location(tmp_path: Path) -> None:
    write(tmp_path, BAD_EXPRESSIONS)
    pipeline = write(tmp_path, "pipeline:\n  serial:\n    - stage: rules\n"
                               "      with: {path: bad.yaml}\n", name="p.yaml")
    with pytest.raises(PipelineError) as info:
        Engine(read_pipeline(pipeline))
    (problem,) = info.value.problems
    assert problem.location.line == 3
    assert f"{tmp_path / 'bad.yaml'}:6:" in problem.message
    assert f"{tmp_path / 'bad.yaml'}:9:" in problem.message


def test_expression_error_column_points_at_the_token(tmp_path: Path) -> None:
    path = write(tmp_path, 'rules:\n  - id: r\n    when: "text ==="\n    then: {flag: x}\n')
    with pytest.raises(ConfigError) as info:
        RulesStage(path=str(path))
    (problem,) = info.value.problems
    # `    when: "text ===` -- the third '=' is in column 19
    assert str(problem).startswith(f"{path}:3:19:")
    assert (problem.location.line, problem.location.column) == (3, 19)


# --- confidence, schemas, atomic reload -------------------------------------------------------


def test_rule_decisions_carry_their_confidence_to_decide(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: sure\n    when: 'true'\n"
                           "    then: {decision: {label: a}, confidence: 0.9}\n"
                           "  - id: unsure\n    when: 'true'\n"
                           "    then: {decision: {label: b}}\n"
                           "  - id: chained\n    when: [{input: {}}]\n"
                           "    then: [{insert: {decision: {label: c, confidence: 0.4}}}]\n",
                 "conf.yaml")
    made = {f.data["label"]: f for f in fire(RulesStage(path=str(path)), board())}
    assert made["a"].confidence == 0.9 and made["b"].confidence is None
    assert made["c"].confidence == 0.4
    bad = write(tmp_path, "rules:\n  - id: r\n    when: 'true'\n"
                          "    then: {decision: {label: a}, confidence: 1.5}\n", "bad.yaml")
    with pytest.raises(ConfigError, match="confidence") as info:
        RulesStage(path=str(bad))
    assert info.value.problems[0].location.line == 4
    # decide ranks equal-salience advice by confidence and reports the chosen one's
    with Engine(serial(stage("rules", path=str(path)), stage("decide"))) as engine:
        result = engine.run("x")
    assert result.decision == "a" and result.decision_fact is not None
    assert result.decision_fact.confidence == 0.9


SCHEMA_RULES = """\
schemas:
  order: {id: int, amount: number, tier: text}
  fields: {amount: number}
rules:
  - id: big
    when: "order.amount > 'lots' or order.amout > 3 or fields.amount in ['x']"
    then: {fact: {kind: order, data: {id: one, colour: red}}}
  - id: chained
    when:
      - order: {tier: 5, amount: "> 'x'", size: 3}
    then:
      - insert: {order: {id: 2.5}}
"""


def test_fact_schemas_are_checked_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, SCHEMA_RULES, "schema.yaml")
    with pytest.raises(ConfigError) as info:
        RulesStage(path=str(path))
    found = [(p.location.line, p.location.column, p.message) for p in info.value.problems]
    assert found == [
        (6, 27, "order.amount is number, but it is compared with 'lots'"),
        (6, 43, "order has no field 'amout' in its schema"),
        (6, 73, "fields.amount is number, but it is compared with 'x'"),
        (7, 43, "order.id is int, but the rule writes 'one'"),
        (7, 48, "order has no field 'colour' in its schema"),
        (10, 23, "order.tier is text, but the rule tests it against 5"),
        (10, 35, "order.amount is number, but the rule tests it against 'x'"),
        (10, 43, "order has no field 'size' in its schema"),
        (12, 30, "order.id is int, but the rule writes 2.5")]
    assert "did you mean 'amount'?" in str(info.value)
    good = write(tmp_path, "schemas:\n  order: {id: int, amount: number}\nrules:\n"
                           "  - id: ok\n    when: order.amount > 3 and order.id == 1\n"
                           "    then: {flag: big}\n", "good.yaml")
    assert RulesStage(path=str(good)).ruleset.schemas == {"order": {"id": "int",
                                                                    "amount": "number"}}
    typo = write(tmp_path, "schemas:\n  order: {id: integr}\nrules:\n  - id: ok\n"
                           "    when: 'true'\n    then: {flag: x}\n", "typo.yaml")
    with pytest.raises(ConfigError, match=r"unknown type 'integr'.*did you mean 'int'"):
        RulesStage(path=str(typo))


def version_rules(label: str) -> str:
    return ("rules:\n"
            f"  - id: first\n    when: 'true'\n    then: {{decision: {{label: {label}}}}}\n"
            f"  - id: second\n    when: 'true'\n    then: {{flag: {label}}}\n")


def test_reload_swaps_the_rule_set_and_the_version(tmp_path: Path) -> None:
    path = write(tmp_path, version_rules("a"), "live.yaml")
    rules = RulesStage(path=str(path))
    old = rules.version
    assert fire(rules, board())[0].provenance.detail["version"] == old
    path.write_text(version_rules("b"), encoding="utf-8")
    rules.reload()
    assert rules.version != old
    new = fire(rules, board())
    assert new[0].data["label"] == "b" and new[0].provenance.detail["version"] == rules.version
    path.write_text("rules: [", encoding="utf-8")
    with pytest.raises(ConfigError):
        rules.reload()
    assert fire(rules, board())[0].data["label"] == "b"  # a broken file leaves the old set
    wider = write(tmp_path, "rules:\n  - id: r\n    when: intent.label == 'x'\n"
                            "    then: {fact: {kind: extra, data: {}}}\n", "wider.yaml")
    with pytest.raises(ConfigError, match=r"reads fact kinds \['intent'\].*makes fact kinds "
                                          r"\['extra'\]"):
        rules.reload(wider)


def test_reload_is_atomic_under_concurrent_cases(tmp_path: Path) -> None:
    import threading

    files = {label: write(tmp_path, version_rules(label), f"{label}.yaml") for label in "ab"}
    rules = RulesStage(path=str(files["a"]))
    versions = {label: load_rules_version(path) for label, path in files.items()}
    seen: list[tuple[str, str, str, str]] = []
    stop = threading.Event()

    def cases() -> None:
        while not stop.is_set():
            decision, flag = rules.process(board())
            seen.append((decision.data["label"], flag.data["name"],
                         decision.detail["version"], flag.detail["version"]))

    def reloads() -> None:
        for i in range(60):
            rules.reload(files["ab"[i % 2]])
        stop.set()

    threads = [threading.Thread(target=cases) for _ in range(3)]
    threads.append(threading.Thread(target=reloads))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen
    for label, flag, version, flag_version in seen:  # each case saw one whole rule set
        assert label == flag and version == flag_version == versions[label]
    with Engine(stage(rules)) as engine:
        assert engine.run("x").decision_fact is not None


def load_rules_version(path: Path) -> str:
    from hybrid_ai.rules import load_rules

    return load_rules(path, {}).version


def test_a_reload_changes_the_version_in_the_engine_results(tmp_path: Path) -> None:
    path = write(tmp_path, version_rules("a"), "live.yaml")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("pipeline:\n  serial:\n    - stage: rules\n"
                        "      with: {path: live.yaml}\n", encoding="utf-8")
    with Engine.from_yaml(pipeline) as engine:
        before = engine.run("hello")
        path.write_text(version_rules("b"), encoding="utf-8")
        (node,) = engine.graph.stages()
        node.stage.reload()
        after = engine.run("hello")
        again = engine.run("hello")
    assert before.version != after.version == again.version == engine.version
    assert after.of("decision")[0].data["label"] == "b"
