"""Cascades: thresholds from validation predictions, the cheap stack, the engine's cascade."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hybrid_ai import Case, Engine
from hybrid_ai._config import read_pipeline
from hybrid_ai.ml import (
    EmbeddingStore,
    TrainedModel,
    WordVectors,
    cheap_classifier,
    choose_threshold,
    deferral_curve,
    load_dataset,
    load_model,
    save_model,
    stacking_oof,
    train,
    tune_cascades,
)
from hybrid_ai.ml._pipeline import CascadeGoal, LabelledCases, train_pipeline
from hybrid_ai.ml._pipeline_eval import _cascade_nodes, cascade_table, table_curve

from . import CountingEncoder

LEXICAL = ("tfidf", "nb")  # no encoder: quick, and the stack still has two members


@pytest.fixture(scope="module")
def sst2() -> tuple[list[str], list[str], list[str], list[str]]:
    """A real slice of SST-2: 900 training and 400 test sentences."""
    data = load_dataset("sst2")
    return (list(data.train_texts[:900]), list(data.train_labels[:900]),
            list(data.test_texts[:400]), list(data.test_labels[:400]))


def _brute(conf: list[float], first: list[str], second: list[str], truth: list[str],
           t: float) -> tuple[float, float]:
    answer = [a if c >= t else b for c, a, b in zip(conf, first, second, strict=True)]
    right = np.mean([a == y for a, y in zip(answer, truth, strict=True)])
    return float(np.mean([c < t for c in conf])), float(right)


def test_deferral_curve_covers_every_distinct_confidence() -> None:
    rng = np.random.default_rng(0)
    conf = list(np.round(rng.random(60), 1))  # many ties
    truth = list(rng.choice(["a", "b"], 60))
    first = [y if rng.random() < 0.7 else "c" for y in truth]
    second = [y if rng.random() < 0.9 else "c" for y in truth]
    curve = deferral_curve(conf, first, second, truth)
    assert len(curve) == len(set(conf)) + 1
    assert curve[0]["share_to_transformer"] == 0 and curve[-1]["share_to_transformer"] == 1
    for row in curve:
        assert (row["share_to_transformer"], row["accuracy"]) == pytest.approx(
            _brute(conf, first, second, truth, row["threshold"]))


def test_threshold_chosen_on_validation_meets_its_goal_there(sst2: tuple[list[str], ...]
                                                             ) -> None:
    train_x, train_y = sst2[0][:600], sst2[1][:600]
    from sklearn.model_selection import cross_val_predict

    cheap, costly = train(train_x, train_y, features="word"), train(train_x, train_y,
                                                                    features="tfidf")
    # Out-of-fold predictions: what each stage does on texts it was not fitted on.
    proba = cross_val_predict(cheap.classifier, train_x, train_y, cv=5, method="predict_proba")
    classes = np.asarray(sorted(set(train_y)))
    first, conf = list(classes[proba.argmax(axis=1)]), list(proba.max(axis=1))
    second = list(cross_val_predict(costly.classifier, train_x, train_y, cv=5))
    full = float(np.mean(np.asarray(second) == np.asarray(train_y)))
    picked = choose_threshold(conf, first, second, train_y, tolerance=0.003)
    assert picked is not None and picked["accuracy"] >= full - 0.003 - 1e-9
    share, accuracy = _brute(conf, first, second, train_y, picked["threshold"])
    assert (share, accuracy) == pytest.approx((picked["share_to_transformer"],
                                               picked["accuracy"]))
    cheaper = [r for r in deferral_curve(conf, first, second, train_y)
               if r["share_to_transformer"] < share]
    assert all(r["accuracy"] < full - 0.003 for r in cheaper)  # none cheaper reaches it
    budget = choose_threshold(conf, first, second, train_y, budget=0.2)
    assert budget is not None and budget["share_to_transformer"] <= 0.2


def test_cheap_stack_ranks_its_errors_last(sst2: tuple[list[str], ...]) -> None:
    train_x, train_y, test_x, test_y = sst2
    stack = cheap_classifier(LEXICAL).fit(train_x, train_y)
    proba = stack.predict_proba(test_x)
    wrong = stack.classes_[proba.argmax(axis=1)] != np.asarray(test_y)
    unsure = proba.max(axis=1) < np.quantile(proba.max(axis=1), 0.25)
    # The quarter it is least sure of holds well over a quarter of its errors (measured on
    # this slice: twice the error rate of the rest, 40 % of the errors).
    assert wrong[unsure].mean() > 1.5 * wrong[~unsure].mean()
    assert wrong[unsure].sum() > 0.33 * wrong.sum()


def test_stacking_oof_reuses_known_members(sst2: tuple[list[str], ...]) -> None:
    train_x, train_y = sst2[0][:300], sst2[1][:300]
    oof, members = stacking_oof(cheap_classifier(LEXICAL), train_x, train_y)
    assert oof.shape == (300, 2) and np.allclose(oof.sum(axis=1), 1)
    assert set(members) == set(LEXICAL)
    again, _ = stacking_oof(cheap_classifier(LEXICAL), train_x, train_y, known=members)
    assert np.allclose(again, oof)
    right = np.asarray(sorted(set(train_y)))[oof.argmax(axis=1)] == np.asarray(train_y)
    assert right.mean() > 0.6  # out of fold, yet well above chance


def test_word_vectors_encode_the_vocabulary_once_and_never_the_inputs(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    store = EmbeddingStore(encoder, cache_dir=None)
    texts = ["the card never arrived", "refund my money", "my card is lost"] * 4
    labels = ["card", "refund", "card"] * 4
    stack = cheap_classifier(("tfidf", "vectors"), store=store, cv=2).fit(texts, labels)
    assert sorted(encoder.encoded) == sorted({w for t in texts for w in t.split()})
    seen = encoder.calls
    rows = WordVectors(store=store).fit(texts).transform(["card arrived", "zzz unknown"])
    assert encoder.calls == seen and np.allclose(np.linalg.norm(rows, axis=1), [1, 0])
    save_model(TrainedModel(stack, {}), tmp_path)
    loaded = load_model(tmp_path)  # WordVectors is a trusted type; no encoder is saved
    assert loaded.predict(["where is my card"]) == list(stack.predict(["where is my card"]))
    assert encoder.calls == seen


PIPELINE = """\
name: trec-cheap-first
pipeline:
  cascade:
    stages:
      - stage: cheap_text
        id: cheap
        threshold: 0.99
        with: {members: [tfidf, nb], name: cheap}
      - stage: ml_model
        id: costly
        cost: 10
        with: {features: [word, char], name: costly}
"""


@pytest.fixture(scope="module")
def trec_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    data = load_dataset("trec")
    cases = LabelledCases([Case(text=t) for t in data.train_texts[:500]],
                          list(data.train_labels[:500]))
    folder = tmp_path_factory.mktemp("cascade")
    train_pipeline(read_pipeline("p.yaml", text=PIPELINE), cases, output=folder)
    return Engine.from_yaml(folder / "pipeline.yaml")


def _reached_and_right(results: list, labels: list[str]) -> tuple[float, float]:
    """The share of cases the costly step ran on, and the accuracy: what the engine did."""
    reached = np.mean([any(t.stage == "costly" and t.status == "ok" for t in r.trace)
                       for r in results])
    right = np.mean([str(r.decision) == y for r, y in zip(results, labels, strict=True)])
    return float(reached), float(right)


def test_tune_cascades_sets_a_threshold_that_holds_in_the_engine(trec_engine: Engine) -> None:
    data = load_dataset("trec")
    val = LabelledCases([Case(text=t) for t in data.train_texts[500:700]],
                        list(data.train_labels[500:700]))
    node = _cascade_nodes(trec_engine.graph)[0]
    chosen = tune_cascades(trec_engine, val, budget=0.3)
    pick = chosen[0]["pick"]
    assert pick is not None and pick["share_to_last"] <= 0.3
    assert node.steps[0].threshold == pick["threshold"]
    # The figures read off the table are what the engine does at that threshold.
    results = trec_engine.run_batch(val.cases)
    assert _reached_and_right(results, val.labels) == pytest.approx(
        (pick["share_to_last"], pick["accuracy"]))


def test_table_curve_reads_any_threshold_off_one_run_per_step(trec_engine: Engine) -> None:
    data = load_dataset("trec")
    test = LabelledCases([Case(text=t) for t in data.test_texts[:120]],
                         list(data.test_labels[:120]))
    node = _cascade_nodes(trec_engine.graph)[0]
    rows = table_curve(cascade_table(trec_engine, node, test), [0.0, 0.8, 1.01])
    assert rows[0]["share_to_last"] == 0 and rows[-1]["share_to_last"] == 1
    assert rows[-1]["mean_cost"] == pytest.approx(11) and rows[0]["mean_cost"] == 1
    saved = node.steps[0].threshold
    node.steps[0].threshold = 0.8
    try:
        results = trec_engine.run_batch(test.cases)
    finally:
        node.steps[0].threshold = saved
    right = np.mean([str(r.decision) == y for r, y in zip(results, test.labels, strict=True)])
    assert rows[1]["accuracy"] == pytest.approx(right)


def _trec_cases(start: int, stop: int) -> LabelledCases:
    data = load_dataset("trec")
    return LabelledCases([Case(text=t) for t in data.train_texts[start:stop]],
                         list(data.train_labels[start:stop]), f"trec[{start}:{stop}]")


def _cheap_threshold(folder: Path) -> float:
    spec = read_pipeline(folder / "pipeline.yaml")
    return float(spec.pipeline.cascade.stages[0].threshold)


def test_training_writes_the_threshold_chosen_on_validation(tmp_path: Path) -> None:
    val = _trec_cases(500, 700)
    report = train_pipeline(read_pipeline("p.yaml", text=PIPELINE), _trec_cases(0, 500), val,
                            output=tmp_path, cascades=CascadeGoal(budget=0.3))
    (found,) = report["cascades"]
    pick = found["pick"]
    assert found["stages"] == ["cheap", "costly"] and pick["share_to_last"] <= 0.3
    assert _cheap_threshold(tmp_path) == pytest.approx(pick["threshold"]) != 0.99
    # Fitted on the training cases only (a --val was given), so the saved pipeline does on the
    # validation cases exactly what the pick says.
    with Engine.from_yaml(tmp_path / "pipeline.yaml") as engine:
        results = engine.run_batch(val.cases)
    assert _reached_and_right(results, val.labels) == pytest.approx(
        (pick["share_to_last"], pick["accuracy"]))


def test_without_validation_data_a_held_out_fifth_chooses_then_all_refit(tmp_path: Path) -> None:
    report = train_pipeline(read_pipeline("p.yaml", text=PIPELINE), _trec_cases(0, 400),
                            output=tmp_path)
    assert "held-out 20 %" in report["validation"]
    assert set(report["refit_on_all"]) == {"cheap", "costly"}
    (found,) = report["cascades"]
    assert found["pick"] is not None  # the default goal: within 0.3 points of both stages
    assert found["pick"]["accuracy"] >= found["validation_all_stages"] - 0.003 - 1e-9
    assert _cheap_threshold(tmp_path) == pytest.approx(found["pick"]["threshold"])


def test_cascades_none_keeps_the_files_thresholds(tmp_path: Path) -> None:
    report = train_pipeline(read_pipeline("p.yaml", text=PIPELINE), _trec_cases(0, 300),
                            output=tmp_path, cascades=None)
    assert "cascades" not in report and "refit_on_all" not in report
    assert _cheap_threshold(tmp_path) == 0.99


def test_a_goal_nothing_meets_keeps_the_threshold(tmp_path: Path) -> None:
    report = train_pipeline(read_pipeline("p.yaml", text=PIPELINE), _trec_cases(0, 300),
                            _trec_cases(500, 600), output=tmp_path,
                            cascades=CascadeGoal(target_accuracy=1.0))
    assert report["cascades"][0]["pick"] is None
    assert _cheap_threshold(tmp_path) == 0.99


def test_text_cascade_preset_runs_the_cheap_stage_first_by_cost() -> None:
    from hybrid_ai._graph import build_graph
    from hybrid_ai._plugins import Plugins
    from hybrid_ai.ml import preset_pipeline

    graph = build_graph(preset_pipeline("text-cascade"), Plugins.default())
    (node,) = _cascade_nodes(graph)
    # ml_model over an embedding group pays for the encoder on every input; cheap_text not.
    assert [(s.id, s.cost) for s in node.steps] == [("cheap", 1.0), ("text", 11.0)]
    assert node.steps[0].threshold == 0.9


def test_cross_fitted_thresholds_are_picked_on_every_training_case(tmp_path: Path) -> None:
    report = train_pipeline(read_pipeline("p.yaml", text=PIPELINE), _trec_cases(0, 300),
                            output=tmp_path, cascades=CascadeGoal(budget=0.3, folds=3))
    (found,) = report["cascades"]
    assert found["folds"] == 3 and found["validation_cases"] == 300
    assert "refit_on_all" not in report  # no fifth was held out: the models saw everything
    assert found["pick"]["share_to_last"] <= 0.3
    assert _cheap_threshold(tmp_path) == pytest.approx(found["pick"]["threshold"])


def test_tables_of_disjoint_cases_merge_into_the_table_of_all(trec_engine: Engine) -> None:
    from hybrid_ai.ml._pipeline_eval import merge_tables

    node = _cascade_nodes(trec_engine.graph)[0]
    cases = _trec_cases(700, 820)
    first, second = (LabelledCases(cases.cases[a:b], cases.labels[a:b]) for a, b in
                     ((0, 50), (50, 120)))
    merged = merge_tables([cascade_table(trec_engine, node, part) for part in (first, second)])
    whole = cascade_table(trec_engine, node, cases)
    assert {k: merged[k] for k in ("decisions", "confidence", "truth", "step_costs")} == \
        {k: whole[k] for k in ("decisions", "confidence", "truth", "step_costs")}
    assert merged["other_cost"] == pytest.approx(whole["other_cost"])
    assert table_curve(merged) == table_curve(whole)


@pytest.mark.parametrize(("goal", "message"), [
    ({"budget": 0.2, "target_accuracy": 0.9}, "one cascade goal"),
    ({"budget": 1.5}, "between 0 and 1"),
    ({"tolerance": -0.1}, "between 0 and 1"),
    ({"folds": 0}, "--cascade-folds"),
])
def test_cascade_goals_are_checked_when_made(goal: dict, message: str) -> None:
    from hybrid_ai._errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        CascadeGoal(**goal)


def test_two_step_curves_take_one_pass_and_agree_with_the_general_one() -> None:
    from hybrid_ai.ml._pipeline_eval import _curve_by_threshold

    rng = np.random.default_rng(3)
    truth = [str(v) for v in rng.integers(0, 3, 200)]
    table = {"decisions": [[str(v) for v in rng.integers(0, 3, 200)],
                           [y if rng.random() < 0.8 else "x" for y in truth]],
             "confidence": [[float(c) if c > 0.05 else float("-inf")
                             for c in np.round(rng.random(200), 2)]],  # ties, and no-confidence
             "truth": truth, "step_costs": [1.0, 10.0], "other_cost": 0.5}
    fast = table_curve(table)
    conf = np.asarray(table["confidence"], dtype=np.float64)
    grid = [r["threshold"] for r in fast]
    slow = _curve_by_threshold(table, conf, grid)
    assert [(r["threshold"], r["accuracy"], r["share_to_last"]) for r in fast] == \
        [(r["threshold"], r["accuracy"], r["share_to_last"]) for r in slow]
    assert [r["mean_cost"] for r in fast] == pytest.approx([r["mean_cost"] for r in slow])


# The same cascade as PIPELINE, first in a serial list, with routing rules after it.
ROUTED = ("name: trec-cheap-first-then-desks\npipeline:\n  serial:\n"
          + textwrap.indent(PIPELINE.split("pipeline:\n", 1)[1], "    ")
          .replace("      cascade:", "    - cascade:", 1)
          + "    - stage: rules\n      with: {path: ROUTES}\n")

ROUTES = """\
rules:
  - id: people_and_places
    when: prediction.label in ['HUM', 'LOC']
    then: {decision: {label: desk_a}, strength: advise}
  - id: the_rest
    when: prediction.label not in ['HUM', 'LOC']
    then: {decision: {label: desk_b}, strength: advise}
"""


def test_a_cascade_before_routing_rules_is_tuned_on_its_own_predictions(tmp_path: Path) -> None:
    # The labels are TREC classes; the pipeline decides desks. Scoring desks against classes
    # would rate every threshold 0 and pick the lowest share: the cascade's output is scored.
    (tmp_path / "routes.yaml").write_text(ROUTES)
    text = ROUTED.replace("ROUTES", str(tmp_path / "routes.yaml"))
    report = train_pipeline(read_pipeline("p.yaml", text=text), _trec_cases(0, 300),
                            _trec_cases(500, 620), output=tmp_path / "m",
                            cascades=CascadeGoal(budget=0.4))
    (found,) = report["cascades"]
    assert found["scored"] == "cascade output" and found["pick"] is not None
    assert found["validation_all_stages"] > 0.5
    with Engine.from_yaml(tmp_path / "m" / "pipeline.yaml") as engine:
        results = engine.run_batch(_trec_cases(500, 620).cases)
    assert {str(r.decision) for r in results} <= {"desk_a", "desk_b"}
    labels = [[f.get("label") for f in r.facts if f.kind == "prediction"][-1] for r in results]
    right = np.mean([y == t for y, t in zip(labels, _trec_cases(500, 620).labels, strict=True)])
    assert found["pick"]["accuracy"] == pytest.approx(right)


def test_labels_that_match_nothing_keep_the_threshold(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    text = ROUTED.replace("ROUTES", str(tmp_path / "routes.yaml"))
    val = _trec_cases(500, 560)
    wrong = LabelledCases(val.cases, ["no-such-label"] * len(val.cases))
    report = train_pipeline(read_pipeline("p.yaml", text=text), _trec_cases(0, 300), wrong,
                            output=tmp_path / "m", cascades=CascadeGoal(budget=0.4))
    (found,) = report["cascades"]
    assert found["scored"] is None and found["pick"] is None
    spec = read_pipeline(tmp_path / "m" / "pipeline.yaml")
    assert spec.pipeline.serial[0].cascade.stages[0].threshold == 0.99
