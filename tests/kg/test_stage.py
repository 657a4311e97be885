"""The kg_lookup stage: linking, lookup, and the reasoning options (inferred types with their
derivations, queries with the linked node bound, routes to a class, graph features)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybrid_ai import Engine, PipelineSpec
from hybrid_ai._errors import ConfigError, PipelineError
from hybrid_ai._facts import Blackboard, Case, NewFact
from hybrid_ai.kg import _stage as stage_module
from hybrid_ai.kg._loaders import load
from hybrid_ai.kg._stage import KGLookupStage

DATA = Path(__file__).parent / "data"
STAFF = str(DATA / "staff.ttl")
UNITS = ("PREFIX : <http://example.org/staff/> "
         "SELECT ?unit WHERE { ?entity :memberOf ?u . ?u :partOf ?unit }")


def _run(text: str, **options: Any) -> list[NewFact]:
    stage = KGLookupStage(path=STAFF, **options)
    stage.warm_up()
    out = stage.process(Blackboard(Case(text=text)))
    assert isinstance(out, list)
    return out


def _entity(facts: list[NewFact], label: str) -> NewFact:
    return next(f for f in facts if f.kind == "entity" and f.data["label"] == label)


def test_plain_linking_adds_no_reasoning_keys() -> None:
    alice = _entity(_run("Alice"), "Alice")
    assert "types" not in alice.data and not alice.detail


def test_inferred_types_carry_their_derivation() -> None:
    alice = _entity(_run("Alice", infer=True), "Alice")
    types = {t["type"]: t for t in alice.data["types"]}
    assert types["Professor"]["inferred"] is False
    assert types["Employee"]["inferred"] is True
    assert types["Employee"]["because"][0].startswith("Alice is a Employee  (because")
    assert "  Alice is a Professor  (stated in the data)" in types["Employee"]["because"]
    rules = {d["rule"] for d in alice.detail["derivations"]}
    assert rules == {"cax-sco"}


def test_rdfs_profile_and_user_rules_feed_queries() -> None:
    facts = _run("Alice", infer="owl2rl", rules_path=str(DATA / "staff.rules"),
                 queries={"units": UNITS})
    rows = _entity(facts, "Alice").data["queries"]["units"]
    assert rows == [{"unit": "Science faculty"}, {"unit": "The University"}]
    without_rule = _run("Alice", infer="rdfs", queries={"units": UNITS})
    assert _entity(without_rule, "Alice").data["queries"]["units"] == []


def test_route_to_a_class_marks_inferred_steps() -> None:
    physics = _entity(_run("physics", infer=True, paths=[{"to": "Team", "name": "support"}]),
                      "Physics")
    route = physics.data["routes"]["support"]
    assert route["to"] == "IT team" and route["length"] == 2
    assert route["steps"][0] == "Physics -is part of-> The University (inferred)"
    assert any(d["rule"] == "prp-trp" for d in physics.detail["derivations"])


def test_route_respects_via_and_max_length() -> None:
    spec = {"to": "Team", "via": ["partOf"], "max_length": 5}
    physics = _entity(_run("physics", infer=True, paths=[spec]), "Physics")
    assert physics.data["routes"]["Team"] is None


def test_graph_features_vector() -> None:
    facts = _run("Alice", infer=True, features=True, feature_types=["Employee", "Team"])
    features = next(f for f in facts if f.kind == "graph_features").data
    assert features["names"][-2:] == ["type:Employee", "type:Team"]
    assert features["vector"][-2:] == [1.0, 0.0]
    assert features["inferred_types"] == 2.0 and features["nodes"] == 1.0
    assert len(features["vector"]) == len(features["names"])


@pytest.mark.parametrize(("options", "message"), [
    ({"infer": "owl-full"}, "infer must be"),
    ({"rules": "RULE r { ?x <urn:p> ?y } => { ?y <urn:p> ?x }"}, "need inference"),
    ({"queries": {"q": "SELECT ?x WHERE { ?x a ?y }"}}, r"must use \?entity"),
    ({"paths": [{"to": "Nowhere"}]}, "no node is named 'Nowhere'"),
    ({"paths": [{"to": "Team", "hops": 2}]}, "unknown key"),
])
def test_bad_options_fail_at_warm_up(options: dict[str, Any], message: str) -> None:
    stage = KGLookupStage(path=STAFF, **options)
    with pytest.raises(ConfigError, match=message):
        stage.warm_up()


@pytest.mark.parametrize("key", ["path", "schema_path", "rules_path"])
def test_missing_knowledge_file_is_a_build_problem_at_the_stage_line(tmp_path: Path,
                                                                     key: str) -> None:
    files = {"path": STAFF, key: "missing.ttl"}
    (tmp_path / "p.yaml").write_text(
        "pipeline:\n  serial:\n    - stage: kg_lookup\n      with: " + json.dumps(files)
        + "\n    - stage: decide\n", encoding="utf-8")
    with pytest.raises(PipelineError) as error:
        Engine.from_yaml(tmp_path / "p.yaml")
    (problem,) = error.value.problems
    assert problem.location.line == 3
    assert f"{key}: no such file {tmp_path / 'missing.ttl'}" in problem.message


def test_knowledge_folder_or_non_path_is_refused() -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        KGLookupStage(path=str(DATA))
    with pytest.raises(ConfigError, match="path must be a file path, not int"):
        KGLookupStage(path=42)  # type: ignore[arg-type]


def test_a_failed_load_is_not_retried_for_every_case(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "kb.nt"
    bad.write_text('<urn:a> <urn:p> "open .\n', encoding="utf-8")
    calls: list[str] = []

    def counting_load(path: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(path)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(stage_module, "load", counting_load)
    spec = PipelineSpec.model_validate({"pipeline": {"serial": [
        {"stage": "kg_lookup", "with": {"path": str(bad)}}]}})
    with Engine(spec) as engine:
        results = engine.run_batch([f"case {i}" for i in range(6)])
        assert all(r.error and f"{bad}:1:" in r.error for r in results)
        assert len(calls) == 1
        bad.write_text('<urn:a> <urn:p> "closed" .\n', encoding="utf-8")
        assert engine.run("case").error is None  # a changed file is loaded again
    assert len(calls) == 2


def test_lookup_in_a_pipeline_shows_why(tmp_path: Path) -> None:
    spec = PipelineSpec.model_validate({"pipeline": {"serial": [
        {"stage": "kg_lookup", "id": "kg",
         "with": {"path": STAFF, "link_text": False, "lookup": "input.text", "infer": True,
                  "features": True}}]}})
    with Engine(spec) as engine:
        result = engine.run("Alice")
    knowledge = result.of("knowledge")[0]
    assert knowledge.data["label"] == "Alice"
    assert {t["type"] for t in knowledge.data["types"]} >= {"Employee", "Faculty member"}
    assert knowledge.provenance.detail["derivations"][0]["because"]
    assert result.of("graph_features")[0].data["types"] == 3.0


def test_warm_up_once_and_shared_across_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    stage = KGLookupStage(path=STAFF, infer=True, queries={"units": UNITS},
                          rules_path=str(DATA / "staff.rules"))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: stage.warm_up(), range(4)))
    store = stage._store
    stage.warm_up()
    assert stage._store is store  # loaded and materialized once

    def run(text: str) -> list[Any]:
        out = stage.process(Blackboard(Case(text=text)))
        assert isinstance(out, list)
        return [f.data.get("queries") for f in out]

    texts = ["Alice", "Bob and Alice"] * 10
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, texts))
    assert results == [run(t) for t in texts]
    assert {"unit": "The University"} in results[0][0]["units"]
