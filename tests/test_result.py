"""Results: the decision, its confidence and alternatives, and one explanation in every format."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest

from hybrid_ai import Blackboard, Case, Engine, NewFact, Result, StageTrace, serial, stage
from tests._stages_for_tests import LabelStage


def board_with_decision() -> tuple[Blackboard, dict[str, int]]:
    """input -> prediction -> intent -> decision (final), plus an unrelated flag."""
    board = Blackboard(Case(id="c1", text="my card was stolen"))
    root = board.last("input")
    assert root is not None
    pred = board.add(NewFact("prediction", {"label": "lost_card", "model": "m",
                                            "proba": {"lost_card": 0.7, "card_arrival": 0.2,
                                                      "other": 0.1}},
                             confidence=0.7, derived_from=[root]), stage="tfidf")
    flag = board.add(NewFact("flag", {"name": "unrelated"}), stage="flags")
    rule = board.add(NewFact("decision", {"label": "fraud", "strength": "veto",
                                          "reason": "stolen"},
                             derived_from=[root], source="rule:stolen"), stage="rules")
    final = board.add(NewFact("decision", {"label": "fraud", "final": True, "strength": "veto",
                                           "priority": "urgent", "reason": "card reported stolen",
                                           "alternatives": {"lost_card": 0.7, "fraud": 0.9,
                                                            "card_arrival": 0.2}},
                              confidence=0.9, derived_from=[rule, pred], source="rule:stolen"),
                      stage="decide")
    ids = {"input": root.id, "prediction": pred.id, "flag": flag.id, "rule": rule.id,
           "final": final.id}
    return board, ids


def make_result(board: Blackboard, **kwargs: object) -> Result:
    trace = (StageTrace("tfidf", "text_classifier", seconds=0.002, attempts=1),
             StageTrace("decide", "decide", seconds=0.001, attempts=1))
    return Result(board.case, tuple(board.all()), trace, "p", "v1", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def result() -> Result:
    board, _ = board_with_decision()
    return make_result(board)


# --- the decision ---------------------------------------------------------------------------


def test_decision_confidence_and_alternatives(result: Result) -> None:
    assert result.ok
    assert result.decision == "fraud"
    assert result.confidence == 0.9
    assert result.decision_fact is not None and result.decision_fact.data["final"] is True
    # best first, the decision itself left out
    assert result.alternatives == [("lost_card", 0.7), ("card_arrival", 0.2)]
    assert not result.abstained
    assert result.timings == {"tfidf": 0.002, "decide": 0.001}
    assert [f.kind for f in result.of("decision")] == ["decision", "decision"]


def test_final_decision_wins_over_later_proposals() -> None:
    board, _ = board_with_decision()
    board.add(NewFact("decision", {"label": "advice", "strength": "advise"}), stage="late")
    assert make_result(board).decision == "fraud"


def test_last_decision_without_final() -> None:
    board = Blackboard(Case())
    board.add(NewFact("decision", {"label": "first"}), stage="a")
    board.add(NewFact("decision", {"label": "second"}), stage="b")
    assert make_result(board).decision == "second"


def test_prediction_decides_without_decisions() -> None:
    board = Blackboard(Case())
    board.add(NewFact("prediction", {"label": "x", "proba": {"x": 0.6, "y": 0.4}},
                      confidence=0.6), stage="m1")
    board.add(NewFact("prediction", {"value": 42.0}, confidence=0.8), stage="m2")
    result = make_result(board)
    assert result.decision == 42.0
    assert result.confidence == 0.8
    assert result.alternatives == []


def test_proba_gives_alternatives() -> None:
    board = Blackboard(Case())
    board.add(NewFact("prediction", {"label": "x", "proba": {"y": 0.3, "x": 0.6, "z": 0.1}},
                      confidence=0.6), stage="m")
    assert make_result(board).alternatives == [("y", 0.3), ("z", 0.1)]


def test_no_decision() -> None:
    result = make_result(Blackboard(Case(id="c0")))
    assert result.decision is None
    assert result.confidence is None
    assert result.alternatives == []
    assert not result.abstained
    assert result.explain().support() == []
    assert result.explain().text().startswith("case c0: no decision")


def test_abstention() -> None:
    board = Blackboard(Case())
    board.add(NewFact("decision", {"label": None, "abstain": True, "final": True,
                                   "reason": "nothing to go on"}), stage="decide")
    result = make_result(board)
    assert result.abstained
    assert result.decision is None
    assert "because nothing to go on" in result.explain().text()


def test_failed_result() -> None:
    result = make_result(Blackboard(Case(id="bad")), error="stage 'x': boom")
    assert not result.ok
    assert result.to_dict()["error"] == "stage 'x': boom"
    assert result.explain().text().splitlines()[0] == "case bad: FAILED: stage 'x': boom"


def test_to_dict(result: Result) -> None:
    data = result.to_dict()
    assert data["case"] == "c1"
    assert data["ok"] is True and data["error"] is None
    assert (data["decision"], data["confidence"]) == ("fraud", 0.9)
    assert data["alternatives"] == [("lost_card", 0.7), ("card_arrival", 0.2)]
    assert (data["pipeline"], data["version"]) == ("p", "v1")
    assert data["trace"][0] == {"stage": "tfidf", "component": "text_classifier",
                                "status": "ok", "seconds": 0.002, "attempts": 1, "facts": (),
                                "cost": 0.0}
    json.dumps(data)


# --- the explanation --------------------------------------------------------------------------


def test_support_follows_provenance(result: Result) -> None:
    _, ids = board_with_decision()
    support = result.explain().support()
    assert [f.id for f in support] == sorted([ids["input"], ids["prediction"], ids["rule"],
                                              ids["final"]])
    assert ids["flag"] not in {f.id for f in support}


def test_networkx_graph_edges_follow_provenance(result: Result) -> None:
    _, ids = board_with_decision()
    graph = result.explain().graph
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.nodes) == {f.id for f in result.facts}
    expected = {(p, f.id) for f in result.facts for p in f.provenance.inputs}
    assert set(graph.edges) == expected
    assert (ids["rule"], ids["final"]) in graph.edges
    assert (ids["prediction"], ids["final"]) in graph.edges
    assert (ids["input"], ids["prediction"]) in graph.edges
    assert nx.is_directed_acyclic_graph(graph)
    node = graph.nodes[ids["final"]]
    assert (node["kind"], node["stage"], node["source"], node["summary"], node["confidence"]) == (
        "decision", "decide", "rule:stolen", "fraud", 0.9)


def test_explain_text(result: Result) -> None:
    text = result.explain().text()
    lines = text.splitlines()
    assert lines[0] == ("case c1: decision 'fraud' (confidence 0.90) [strength: veto, "
                        "priority: urgent] because card reported stolen")
    assert lines[1] == "  #4 decision: fraud p=0.90  <- decide/rule:stolen"
    assert "  #3 decision: fraud  <- rules/rule:stolen" in lines
    assert "  #1 prediction: lost_card p=0.70  <- tfidf" in lines
    assert "  #0 input: my card was stolen  <- input/case" in lines
    assert "unrelated" not in text
    assert lines[-1].startswith("  stages: tfidf ok 2.0ms; decide ok 1.0ms")


def test_explain_json(result: Result) -> None:
    data = json.loads(result.explain().to_json())
    assert data["decision"] == "fraud"
    support = {f["id"]: f for f in data["support"]}
    assert set(support) == {0, 1, 3, 4}
    final = support[4]
    assert final["kind"] == "decision"
    assert final["provenance"] == {"stage": "decide", "source": "rule:stolen", "inputs": [3, 1],
                                   "detail": {}}
    assert support[1]["data"]["proba"]["lost_card"] == 0.7
    assert result.explain().to_dict()["support"][0]["kind"] == "input"


def test_explain_dot(result: Result) -> None:
    dot = result.explain().to_dot()
    assert dot.startswith("digraph provenance {")
    assert dot.rstrip().endswith("}")
    assert 'f4 [label="decision: fraud\\n[rule:stolen]"];' in dot
    assert 'f1 [label="prediction: lost_card\\n[tfidf]"];' in dot
    for edge in ("f3 -> f4;", "f1 -> f4;", "f0 -> f1;", "f0 -> f3;"):
        assert edge in dot
    assert "f2" not in dot  # the unrelated flag


def test_explain_mermaid(result: Result) -> None:
    mermaid = result.explain().to_mermaid()
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  f4["decision: fraud"]' in lines
    assert '  f0["input: my card was stolen"]' in lines
    for edge in ("f3 --> f4", "f1 --> f4", "f0 --> f1", "f0 --> f3"):
        assert f"  {edge}" in lines
    assert "f2" not in mermaid


def test_quotes_in_labels_do_not_break_dot_or_mermaid() -> None:
    board = Blackboard(Case(text='he said "stolen"'))
    root = board.last("input")
    assert root is not None
    board.add(NewFact("decision", {"label": 'say "hi"', "final": True}, derived_from=[root]),
              stage="d")
    explanation = make_result(board).explain()
    assert "say 'hi'" in explanation.to_dot()
    assert "say 'hi'" in explanation.to_mermaid()
    assert '"hi"' not in explanation.to_mermaid()


def test_large_values_are_summarised_in_json() -> None:
    board = Blackboard(Case())
    root = board.last("input")
    assert root is not None
    emb = board.add(NewFact("embedding", {"vector": np.zeros(384, dtype=np.float32),
                                          "tokens": list(range(100))}, derived_from=[root]),
                    stage="embed")
    board.add(NewFact("prediction", {"label": "x"}, derived_from=[emb]), stage="m")
    data = json.loads(make_result(board).explain().to_json())
    vec = next(f for f in data["support"] if f["kind"] == "embedding")["data"]
    assert vec["vector"] == "<array (384,) float32>"
    assert vec["tokens"] == "<100 values>"


def test_explanation_of_an_engine_run() -> None:
    with Engine(serial(stage(LabelStage(label="card_arrival", conf=0.8), id="model"),
                       stage("fuse", output="intent"), stage("decide", base="intent"))) as engine:
        result = engine.run(Case(id="run1", text="where is my card?"))
    explanation = result.explain()
    assert result.decision == "card_arrival"
    assert result.confidence == pytest.approx(0.8)
    assert [f.kind for f in explanation.support()] == ["input", "prediction", "intent",
                                                       "decision"]
    assert explanation.text().startswith("case run1: decision 'card_arrival' (confidence 0.80)")
    chain = [(a, b) for a, b in explanation.graph.edges]
    assert chain == [(0, 1), (1, 2), (2, 3)]
    assert "f2 --> f3" in explanation.to_mermaid()
