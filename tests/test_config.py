"""Reading pipeline files: every node kind, every problem at once with file:line, the JSON schema,
and the Python builders."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest
import yaml
from typer.testing import CliRunner

from hybrid_ai import (
    BaseStage,
    CascadeSpec,
    ConfigError,
    ParallelSpec,
    PipelineSpec,
    RouteSpec,
    SerialSpec,
    StageSpec,
    UseSpec,
    cascade,
    parallel,
    read_pipeline,
    route,
    serial,
    stage,
)
from hybrid_ai.cli import app

EVERY_KIND = """\
name: every-kind
description: one of each node kind
plugins: [tests._stages_for_tests]
budget: 3
define:
  labeler:
    stage: t_label
    id: defined_label
    with: {label: z, conf: 0.4}
pipeline:
  serial:
    - parallel:
        merge: union
        branches:
          - stage: t_echo
          - cascade:
              budget: 5
              order: declared
              stages:
                - {stage: t_label, id: cheap, cost: 1, threshold: 0.8, with: {label: a}}
                - {stage: t_label, id: dear, cost: 4, with: {label: b}}
    - route:
        branches:
          - when: "fields.vip == true"
            then: {use: labeler}
        default:
          stage: t_fail_on
          id: guard
          on_error: fallback
          timeout: 2
          retries: 1
          backoff: 0.5
          cache: true
          fallback: {stage: t_label, id: fb, with: {label: fallback}}
"""


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(exc: pytest.ExceptionInfo[ConfigError]) -> list[tuple[int | None, str]]:
    return [(p.location.line, p.message) for p in exc.value.problems]


# --- every node kind ---------------------------------------------------------------------------


def test_reads_every_node_kind(tmp_path: Path) -> None:
    path = write(tmp_path, EVERY_KIND)
    spec = read_pipeline(path)
    assert spec.name == "every-kind"
    assert spec.description == "one of each node kind"
    assert spec.plugins == ["tests._stages_for_tests"]
    assert spec.budget == 3
    assert spec.base_dir == tmp_path.resolve()

    root = spec.pipeline
    assert isinstance(root, SerialSpec)
    par, rte = root.serial
    assert isinstance(par, ParallelSpec)
    assert par.parallel.merge == "union"
    echo, casc = par.parallel.branches
    assert isinstance(echo, StageSpec) and echo.stage == "t_echo" and echo.node_id == "t_echo"
    assert isinstance(casc, CascadeSpec)
    assert casc.cascade.budget == 5
    assert casc.cascade.order == "declared"
    cheap, dear = casc.cascade.stages
    assert (cheap.node_id, cheap.cost, cheap.threshold, cheap.with_) == (
        "cheap", 1, 0.8, {"label": "a"})
    assert dear.threshold is None

    assert isinstance(rte, RouteSpec)
    (branch,) = rte.route.branches
    assert branch.when == "fields.vip == true"
    assert isinstance(branch.then, UseSpec) and branch.then.use == "labeler"
    guard = rte.route.default
    assert isinstance(guard, StageSpec)
    assert (guard.on_error, guard.timeout, guard.retries, guard.backoff, guard.cache) == (
        "fallback", 2, 1, 0.5, True)
    assert isinstance(guard.fallback, StageSpec)
    assert guard.fallback.node_id == "fb"

    defined = spec.define["labeler"]
    assert isinstance(defined, StageSpec) and defined.node_id == "defined_label"


def test_nodes_remember_where_they_were_written(tmp_path: Path) -> None:
    path = write(tmp_path, EVERY_KIND)
    spec = read_pipeline(path)
    root = spec.pipeline
    assert isinstance(root, SerialSpec)
    par, rte = root.serial
    assert isinstance(par, ParallelSpec) and isinstance(rte, RouteSpec)
    assert par.location.file == str(path)
    assert par.location.line == 12
    assert par.parallel.branches[0].location.line == 15
    assert rte.route.branches[0].location.line == 24
    assert rte.route.default is not None and rte.route.default.location.line == 27
    assert str(par.location) == f"{path}:12:7"


def test_defaults_of_a_stage_node() -> None:
    spec = read_pipeline("inline.yaml", text="pipeline: {stage: decide}")
    node = spec.pipeline
    assert isinstance(node, StageSpec)
    assert node.with_ == {}
    assert (node.timeout, node.retries, node.on_error, node.fallback, node.cache) == (
        None, 0, "fail", None, False)
    assert spec.name == "pipeline"
    assert spec.base_dir == Path.cwd()


# --- every problem, at once, with file:line ---------------------------------------------------

THREE_PROBLEMS = """\
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


def test_a_broken_file_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, THREE_PROBLEMS)
    with pytest.raises(ConfigError) as info:
        read_pipeline(path)
    problems = info.value.problems
    assert len(problems) == 3
    assert [p.location.file for p in problems] == [str(path)] * 3
    assert [p.location.line for p in problems] == [5, 7, 9]
    assert problems[0].message.startswith("retries:")
    assert problems[1].message.startswith("on_error:")
    assert "fallback" in (problems[1].hint or "")
    assert problems[2].message.startswith("colour:")
    assert "hybrid-ai schema" in (problems[2].hint or "")
    text = str(info.value)
    assert "3 problem(s)" in text
    for line in (5, 7, 9):
        assert f"{path}:{line}:" in text


NESTED_PROBLEMS = """\
pipeline:
  serial:
    - stage: a
    - bogus: 1
    - parallel:
        merge: union
        branches: [{stage: x}]
    - route:
        branches:
          - when: "text"
            then: {stage: y, retries: abc}
    - cascade:
        stages:
          - {stage: z, threshold: 2}
"""


def test_problems_deep_inside_nodes_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, NESTED_PROBLEMS)
    with pytest.raises(ConfigError) as info:
        read_pipeline(path)
    found = problems_of(info)
    assert [line for line, _ in found] == [4, 7, 11, 14]
    assert "exactly one of its kind keys" in found[0][1] and "bogus" in found[0][1]
    assert found[1][1].startswith("branches:")
    assert found[2][1].startswith("retries:")
    assert found[3][1].startswith("threshold:")


def test_a_node_with_two_kind_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline:\n  serial:\n    - {stage: a, use: b}\n")
    with pytest.raises(ConfigError) as info:
        read_pipeline(path)
    ((line, message),) = problems_of(info)
    assert line == 3
    assert "exactly one" in message
    assert "stage, serial, parallel, route, cascade, use" in (info.value.problems[0].hint or "")


def test_a_node_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline:\n  serial:\n    - just text\n")
    with pytest.raises(ConfigError, match="expected a node"):
        read_pipeline(path)


def test_missing_pipeline_key(tmp_path: Path) -> None:
    path = write(tmp_path, "name: nothing\n")
    with pytest.raises(ConfigError) as info:
        read_pipeline(path)
    ((_, message),) = problems_of(info)
    assert message.startswith("pipeline:")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline: {stage: decide}\n\nstages: 3\n")
    with pytest.raises(ConfigError) as info:
        read_pipeline(path)
    assert problems_of(info) == [(3, "stages: Extra inputs are not permitted")]


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping") as info:
        read_pipeline(path)
    assert info.value.problems[0].location.line == 1


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline:\n  serial:\n    - stage: a\n   - stage: b\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        read_pipeline(path)
    (problem,) = info.value.problems
    assert problem.location.file == str(path)
    assert problem.location.line == 4
    assert problem.location.column is not None
    assert problem.message.startswith("YAML syntax error")


def test_yaml_syntax_error_in_text() -> None:
    with pytest.raises(ConfigError) as info:
        read_pipeline("inline.yaml", text='pipeline: {stage: "unterminated}\n')
    assert info.value.problems[0].location.file == "inline.yaml"


def test_yaml_stays_data(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError):
        read_pipeline(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_pipeline(tmp_path / "absent.yaml")


def test_yaml_tags_are_refused_with_a_hint_about_tags(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError) as info:
        read_pipeline(path)
    assert "remove the tag" in str(info.value.problems[0].hint)


@pytest.mark.parametrize(("text", "line", "first"), [
    ("pipeline: {stage: decide}\npipeline: {stage: rules}\n", 2, 1),
    ("pipeline:\n  stage: rules\n  with: {path: a.yaml}\n  with: {path: b.yaml}\n", 4, 3),
])
def test_a_duplicate_key_is_an_error_naming_both_places(tmp_path: Path, text: str, line: int,
                                                        first: int) -> None:
    # YAML itself keeps the last silently: the first `with:` would simply vanish.
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        read_pipeline(path)
    (problem,) = info.value.problems
    assert problem.location.line == line and f"{path}:{first}:" in problem.message


def test_a_list_as_a_key_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline:\n  ? [a, b]\n  : 1\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        read_pipeline(path)
    assert info.value.problems[0].location.line == 2


def test_a_file_that_is_not_utf8_names_the_byte_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("pipeline:\n  stage: d\xe9cide\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        read_pipeline(path)
    (problem,) = info.value.problems
    assert (problem.location.line, problem.location.column) == (2, 11)
    assert "0xe9" in problem.message and "UTF-8" in str(problem.hint)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfpipeline: {stage: decide}\n")
    assert read_pipeline(path).pipeline.stage == "decide"


# --- JSON schema ------------------------------------------------------------------------------


def test_schema_command_prints_the_node_kinds() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert "pipeline" in schema["required"]
    refs = {ref["$ref"].rsplit("/", 1)[-1] for ref in schema["properties"]["pipeline"]["anyOf"]}
    assert refs == {"StageSpec", "SerialSpec", "ParallelSpec", "RouteSpec", "CascadeSpec",
                    "UseSpec"}
    defs = schema["$defs"]
    for name, key in (("StageSpec", "stage"), ("SerialSpec", "serial"),
                      ("ParallelSpec", "parallel"), ("RouteSpec", "route"),
                      ("CascadeSpec", "cascade"), ("UseSpec", "use")):
        assert key in defs[name]["properties"], name
        assert defs[name]["additionalProperties"] is False
    stage_props = defs["StageSpec"]["properties"]
    assert "with" in stage_props and "with_" not in stage_props
    assert set(stage_props["on_error"]["enum"]) == {"fail", "skip", "fallback"}


# --- Python builders --------------------------------------------------------------------------


class Shout(BaseStage):
    produces = ("shout",)

    def process(self, view):  # type: ignore[no-untyped-def]
        return None


def test_stage_builder_splits_policy_from_parameters() -> None:
    spec = stage("embed", id="enc", batch_size=16, timeout=2.0, retries=1, on_error="skip",
                 cache=True, cost=3, threshold=0.5)
    assert spec.stage == "embed"
    assert spec.node_id == "enc"
    assert spec.with_ == {"batch_size": 16}
    assert (spec.timeout, spec.retries, spec.on_error, spec.cache, spec.cost, spec.threshold) == (
        2.0, 1, "skip", True, 3, 0.5)


def test_stage_builder_takes_an_instance() -> None:
    instance = Shout()
    spec = stage(instance, id="loud", timeout=1.0)
    assert spec.stage == "Shout"
    assert spec.node_id == "loud"
    assert spec._instance is instance
    assert spec.timeout == 1.0


def test_stage_builder_validates_its_policy() -> None:
    with pytest.raises(pydantic.ValidationError):
        stage("decide", retries=-1)
    with pytest.raises(pydantic.ValidationError):
        stage("decide", on_error="explode")


def test_composite_builders() -> None:
    node = serial(
        parallel(stage("a"), stage("b"), merge="first"),
        route(("fields.amount > 100", stage("review")), default=stage("auto")),
        cascade(stage("cheap", threshold=0.8), stage("dear"), budget=5),
    )
    assert isinstance(node, SerialSpec)
    par, rte, casc = node.serial
    assert isinstance(par, ParallelSpec) and par.parallel.merge == "first"
    assert [b.stage for b in par.parallel.branches] == ["a", "b"]  # type: ignore[union-attr]
    assert isinstance(rte, RouteSpec)
    assert rte.route.branches[0].when == "fields.amount > 100"
    assert isinstance(rte.route.default, StageSpec) and rte.route.default.stage == "auto"
    assert isinstance(casc, CascadeSpec)
    assert casc.cascade.budget == 5
    assert [s.threshold for s in casc.cascade.stages] == [0.8, None]
    with pytest.raises(pydantic.ValidationError):
        parallel(stage("only"), merge="union")


def test_python_spec_round_trips_through_yaml() -> None:
    spec = PipelineSpec(
        name="py",
        pipeline=serial(
            parallel(stage("rules", path="r.yaml"), stage("kg_lookup", id="kg", path="k.json"),
                     merge="union"),
            route(("fields.x > 1", stage("decide", id="d1")),
                  default=stage("decide", id="d2", min_confidence=0.5)),
            cascade(stage("fuse", threshold=0.7, cost=1),
                    stage("decide", retries=2, on_error="fallback",
                          fallback=stage("decide", id="fb")),
                    budget=3),
        ),
    )
    text = yaml.safe_dump(spec.model_dump(by_alias=True, exclude_defaults=True), sort_keys=False)
    again = read_pipeline("round-trip.yaml", text=text)
    assert again.model_dump(by_alias=True) == spec.model_dump(by_alias=True)
