"""The kg_lookup stage: linking, lookup, and the reasoning options (inferred types with their
derivations, queries with the linked node bound, routes to a class, graph features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hybrid_ai import Engine, PipelineSpec
from hybrid_ai._errors import ConfigError
from hybrid_ai._facts import Blackboard, Case, NewFact
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
