"""Building the graph: every wiring problem is reported together, and the plan is readable."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_ai import (
    Engine,
    Graph,
    PipelineError,
    PipelineSpec,
    Plugins,
    build_graph,
    cascade,
    parallel,
    read_pipeline,
    route,
    serial,
    stage,
)
from tests._stages_for_tests import EchoStage, LabelStage

BROKEN = """\
plugins: [tests._stages_for_tests]
pipeline:
  serial:
    - stage: nosuch
    - stage: decide
      with: {bogus: 1}
    - stage: kg_lookup
      with: {path: kb.json, lookup: intent.label}
    - parallel:
        branches: [{stage: t_echo, id: e1}, {stage: t_echo, id: e2}]
    - parallel:
        merge: smash
        branches: [{stage: t_echo, id: e3}, {stage: t_echo, id: e4}]
    - use: loop
    - stage: t_echo
      id: e1
    - route:
        branches:
          - when: "text matches"
            then: {stage: t_echo, id: e5}
    - cascade:
        stages:
          - {stage: t_label, id: c1, cost: 1}
          - {stage: t_label, id: c2, cost: 2}
define:
  loop:
    serial:
      - stage: t_echo
        id: e6
      - use: loop
"""


def build_text(text: str) -> Graph:
    spec = read_pipeline("inline.yaml", text=text)
    return build_graph(spec, Plugins.default().with_modules(spec.plugins))


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> PipelineError:
    path = tmp_path_factory.mktemp("graph") / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    # The knowledge file must exist (a missing one is a build problem of its own, which would
    # stand in for the wiring problems this fixture is about).
    (path.parent / "kb.json").write_text("{}", encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        Engine.from_yaml(path)
    return info.value


def find(error: PipelineError, fragment: str) -> list[tuple[int | None, str, str]]:
    return [(p.location.line, p.message, p.hint or "") for p in error.problems
            if fragment in p.message]


def test_every_wiring_problem_is_reported_together(broken: PipelineError) -> None:
    assert len(broken.problems) == 9
    assert f"has {len(broken.problems)} problem(s)" in str(broken)
    assert all(p.location.file and p.location.file.endswith("broken.yaml")
               for p in broken.problems)


def test_unknown_component_lists_available_names(broken: PipelineError) -> None:
    ((line, message, hint),) = find(broken, "unknown stage component")
    assert line == 4
    assert "'nosuch'" in message
    assert hint.startswith("available: ")
    for name in ("decide", "fuse", "kg_lookup", "rules", "t_echo", "t_label"):
        assert name in hint


def test_bad_stage_parameters(broken: PipelineError) -> None:
    ((line, message, hint),) = find(broken, "invalid parameters")
    assert line == 5
    assert "'decide'" in message and "bogus" in message
    assert "base" in hint and "min_confidence" in hint


def test_required_fact_nobody_produces(broken: PipelineError) -> None:
    ((line, message, hint),) = find(broken, "requires fact")
    assert line == 7
    assert "'kg_lookup'" in message and "'intent'" in message
    assert "available: input" in hint


def test_parallel_without_merge(broken: PipelineError) -> None:
    ((line, _, hint),) = find(broken, "no merge policy")
    assert line == 10
    assert "best_confidence, first, union" in hint


def test_unknown_merge_policy(broken: PipelineError) -> None:
    ((line, message, hint),) = find(broken, "unknown merge policy")
    assert line == 12
    assert "'smash'" in message
    assert "union" in hint


def test_use_cycle(broken: PipelineError) -> None:
    ((line, message, _),) = find(broken, "cycle in `use`")
    assert line == 30
    assert "loop -> loop" in message


def test_duplicate_ids(broken: PipelineError) -> None:
    ((line, message, _),) = find(broken, "duplicate stage id")
    assert line == 15
    assert "'e1'" in message
    assert "broken.yaml:10:" in message  # where it was first used


def test_bad_route_expression(broken: PipelineError) -> None:
    ((line, message, _),) = find(broken, "route condition")
    assert line == 19
    assert "ends too early" in message


def test_cascade_stage_without_threshold(broken: PipelineError) -> None:
    ((line, message, hint),) = find(broken, "no threshold")
    assert line == 23
    assert "'c1'" in message
    assert "threshold" in hint


def test_a_two_step_use_cycle() -> None:
    text = """\
pipeline: {use: a}
define:
  a: {serial: [{stage: decide, id: d1}, {use: b}]}
  b: {serial: [{stage: decide, id: d2}, {use: a}]}
"""
    with pytest.raises(PipelineError) as info:
        build_text(text)
    (problem,) = info.value.problems
    assert "a -> b -> a" in problem.message


def test_use_of_an_undefined_name() -> None:
    text = "pipeline: {use: ghost}\ndefine:\n  real: {stage: decide}\n"
    with pytest.raises(PipelineError) as info:
        build_text(text)
    (problem,) = info.value.problems
    assert "names nothing under `define:`" in problem.message
    assert problem.hint == "defined: real"


def test_route_condition_may_only_name_known_facts() -> None:
    text = """\
plugins: [tests._stages_for_tests]
pipeline:
  serial:
    - route:
        branches:
          - when: "intent.label == 'x'"
            then: {stage: t_echo}
"""
    with pytest.raises(PipelineError, match="intent"):
        build_text(text)


def test_route_condition_sees_upstream_facts() -> None:
    text = """\
plugins: [tests._stages_for_tests]
pipeline:
  serial:
    - stage: t_label
    - route:
        branches:
          - when: "prediction.label == 'a' and fields.n > 1"
            then: {stage: t_echo}
"""
    graph = build_text(text)
    assert "echo" in graph.produces


def test_fallback_policy_needs_a_fallback_stage() -> None:
    with pytest.raises(PipelineError, match="no `fallback:` stage"):
        Engine(stage(EchoStage(), on_error="fallback"))


def test_problems_from_python_specs() -> None:
    with pytest.raises(PipelineError) as info:
        Engine(serial(stage("decide", id="x"), stage("decide", id="x"), stage("nosuch")))
    assert len(info.value.problems) == 2


def test_parallel_branches_do_not_see_each_other() -> None:
    node = serial(parallel(stage(LabelStage()), stage("fuse"), merge="union"))
    with pytest.raises(PipelineError, match="requires fact 'prediction'"):
        Engine(node)


def test_parallel_outputs_are_available_after_fan_in() -> None:
    with Engine(serial(parallel(stage(LabelStage(), id="l1"), stage(LabelStage(), id="l2"),
                                merge="union"), stage("fuse"))) as engine:
        assert "intent" in engine.graph.produces


# --- the plan -----------------------------------------------------------------------------------

PLAN = """\
name: planned
plugins: [tests._stages_for_tests]
pipeline:
  serial:
    - parallel:
        merge: best_confidence
        branches:
          - stage: t_echo
          - cascade:
              budget: 5
              stages:
                - {stage: t_label, id: dear, cost: 4, with: {label: b}}
                - {stage: t_label, id: cheap, cost: 1, threshold: 0.8, with: {label: a}}
    - route:
        branches:
          - when: "fields.vip == true"
            then: {stage: t_label, id: vip}
        default:
          stage: t_fail_on
          id: guard
          timeout: 2
          retries: 1
          on_error: fallback
          fallback: {stage: t_label, id: fb}
"""


@pytest.fixture(scope="module")
def planned() -> Graph:
    return build_text(PLAN)


def test_explain_plan_shows_order_groups_routes_and_thresholds(planned: Graph) -> None:
    text = planned.explain_plan()
    lines = text.splitlines()
    assert lines[0] == "pipeline 'planned': 6 stage(s)"
    assert "1 parallel group (concurrent; merge: best_confidence)" in text
    assert " | 1.1 t_echo  -> echo" in text
    assert "cascade (cost order, budget 5)" in text
    # cost order: the cheap stage runs first and carries the stop threshold
    cheap = next(i for i, line in enumerate(lines) if "cheap [t_label]" in line)
    dear = next(i for i, line in enumerate(lines) if "dear [t_label]" in line)
    assert cheap < dear
    assert "stop if confidence >= 0.8" in lines[cheap]
    assert lines[dear].endswith("-> last")
    assert "2 route (first true condition)" in text
    assert "when fields.vip == true:" in text
    assert "otherwise:" in text
    assert "timeout 2s, retries 1, on_error fallback fb" in text
    assert lines[-1] == "produces: echo, input, prediction"


def test_plan_data(planned: Graph) -> None:
    data = planned.plan()
    assert data["name"] == "planned"
    assert data["stages"] == 6
    assert data["produces"] == ["echo", "input", "prediction"]
    par, rte = data["root"]["serial"]
    assert par["parallel"]["merge"] == "best_confidence"
    echo, casc = par["parallel"]["branches"]
    assert echo["id"] == "t_echo" and echo["produces"] == ["echo"] and echo["line"] == 8
    steps = casc["cascade"]["stages"]
    assert [s["id"] for s in steps] == ["cheap", "dear"]
    assert [s["threshold"] for s in steps] == [0.8, None]
    assert casc["cascade"]["budget"] == 5
    assert rte["route"]["branches"][0]["when"] == "fields.vip == true"
    guard = rte["route"]["default"]
    assert (guard["id"], guard["timeout"], guard["retries"], guard["on_error"]) == (
        "guard", 2, 1, "fallback")
    assert guard["fallback"]["id"] == "fb"


def test_graph_lists_stages_with_fallbacks(planned: Graph) -> None:
    assert [s.id for s in planned.stages()] == ["t_echo", "cheap", "dear", "vip", "guard", "fb"]


def test_engine_explain_plan_matches_graph() -> None:
    spec = PipelineSpec(name="tiny", pipeline=cascade(
        stage(LabelStage(), id="one", threshold=0.5, cost=1),
        stage(EchoStage(), id="two", cost=2)))
    with Engine(spec) as engine:
        assert engine.explain_plan() == engine.graph.explain_plan()
        assert engine.name == "tiny"
        assert "one [LabelStage]" in engine.explain_plan()


def test_relative_paths_resolve_against_the_pipeline_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - id: r\n    when: 'true'\n    then: {flag: x}\n", encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text("pipeline: {stage: rules, with: {path: rules/r.yaml}}\n", encoding="utf-8")
    with Engine.from_yaml(path) as engine:
        (node,) = engine.graph.stages()
        assert Path(node.stage.ruleset.path) == tmp_path / "rules" / "r.yaml"  # type: ignore[attr-defined]


def test_route_builder_in_python() -> None:
    with Engine(route(("text == 'a'", stage(EchoStage())))) as engine:
        assert "when text == 'a':" in engine.explain_plan()


def test_unused_definitions_are_checked_too() -> None:
    text = ("define:\n  used: {stage: decide}\n  broken: {stage: nosuch}\n"
            "pipeline: {use: used}\n")
    with pytest.raises(PipelineError) as info:
        Engine(read_pipeline("d.yaml", text=text))
    (problem,) = info.value.problems
    assert "nosuch" in problem.message
    assert problem.location.line == 3


def test_a_definition_used_twice_gets_distinct_ids() -> None:
    text = "define:\n  tail: {stage: decide}\npipeline:\n  serial: [{use: tail}, {use: tail}]\n"
    with Engine(read_pipeline("d.yaml", text=text)) as engine:
        assert [n.id for n in engine.graph.stages()] == ["decide", "tail#2/decide"]


def test_a_parameter_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    # The rules stage's own error ("expected str, bytes or os.PathLike object, not int") names
    # no parameter; the declared types do.
    path = tmp_path / "p.yaml"
    path.write_text("pipeline:\n  stage: rules\n  with: {path: 42}\n", encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        Engine.from_yaml(path)
    ((line, message, _),) = find(info.value, "invalid parameters")
    assert line == 2
    assert "path must be str, not int 42" in message
