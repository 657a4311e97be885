"""Evaluate a whole pipeline on labelled cases: metrics, calibration, cost, ablation, cascade.

Usage: ``report = eval_pipeline(spec, read_cases("test.csv"), ablation=True, plots="out/")``.

Cases run through the real engine (cascades stop, routes choose, rules veto), so the figures
are those of the deployed pipeline. An abstention counts as a wrong answer and is reported
apart. Ablation removes each stage in turn (its facts are never written; everything after it
runs on what is left) and, given training data, refits each ``ml_model`` stage without each of
its feature groups. The cascade curve runs the cases once per cascade step (stopping there) and
reads every threshold's outcome off those runs (:func:`table_curve`); :func:`tune_cascades` sets
the thresholds from validation cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._engine import Engine
from .._errors import ConfigError
from .._facts import Blackboard, FactView
from .._graph import CascadeNode, Graph, StageNode
from .._result import Result
from ._eval import THRESHOLDS, calibration, cascade_pick, confusion, metrics
from ._pipeline import LabelledCases, _ordered, apply_models, is_trainable, run_stages

__all__ = ["ABSTAIN", "cascade_table", "eval_pipeline", "score_results", "table_curve",
           "tune_cascades"]

ABSTAIN = "(abstain)"


class _Removed:
    """Stands in for a stage during ablation: same contract, writes nothing."""

    def __init__(self, stage: Any) -> None:
        self.requires, self.produces = stage.requires, stage.produces
        self.blocking, self.cost, self.version = False, 0.0, "removed"

    def warm_up(self) -> None:
        return None

    def process(self, view: FactView) -> None:
        return None


def score_results(results: Sequence[Result], labels: Sequence[str]) -> dict[str, Any]:
    """Metrics, calibration, confusion, abstentions and cost of engine results."""
    predicted = [ABSTAIN if r.decision is None else str(r.decision) for r in results]
    truth = [str(label) for label in labels]
    report = metrics(truth, predicted)
    correct = [p == t for p, t in zip(predicted, truth, strict=True)]
    answered = [(r.confidence, ok) for r, ok in zip(results, correct, strict=True)
                if r.decision is not None and r.confidence is not None]
    report["calibration"] = calibration([c for c, _ in answered], [ok for _, ok in answered])
    report["confusion"] = confusion(truth, predicted)
    report["abstained"] = sum(p == ABSTAIN for p in predicted) / max(1, len(predicted))
    failed = [r.error for r in results if r.error is not None]
    report["errors"] = len(failed)
    report["first_error"] = failed[0] if failed else None
    report["cost"] = _costs(results)
    return report


def _costs(results: Sequence[Result]) -> dict[str, Any]:
    """Mean cost per case and the share of cases each stage ran on."""
    ran: dict[str, int] = {}
    total = 0.0
    for result in results:
        for trace in result.trace:
            if trace.status in ("ok", "cached", "failed", "timeout"):
                ran[trace.stage] = ran.get(trace.stage, 0) + 1
                total += trace.cost
    n = max(1, len(results))
    return {"mean_cost": total / n, "stage_share": {k: v / n for k, v in sorted(ran.items())}}


def _run(engine: Engine, data: LabelledCases) -> dict[str, Any]:
    results = engine.run_batch(data.cases, concurrency=4)
    return score_results(results, data.labels)


def eval_pipeline(spec: Any, test: LabelledCases, *, models: str | Path | None = None,
                  train: LabelledCases | None = None, ablation: bool = False,
                  plots: str | Path | None = None,
                  thresholds: Sequence[float] = THRESHOLDS,
                  target_accuracy: float | None = None,
                  budget: float | None = None) -> dict[str, Any]:
    """The whole evaluation report (see the module docstring); PNGs go to ``plots``.

    ``target_accuracy`` / ``budget`` (a share of cases, 0-1) add each cascade's threshold
    chosen for that goal (:func:`cascade_pick`, every distinct confidence a candidate). Picks
    made on these cases describe them; to set thresholds, pick on validation cases
    (:func:`tune_cascades`) and report on test cases.
    """
    found = None if models is None else _model_folders(Path(models))
    if found is not None:
        apply_models(spec, found)
    with Engine(spec) as engine:
        if found is not None:
            _check_models(engine.graph, Path(str(models)), found)
        report: dict[str, Any] = {"pipeline": spec.name, "data": test.source}
        report |= _run(engine, test)
        report["cascades"] = _cascades(engine, test, thresholds, target_accuracy, budget)
        if ablation:
            report["ablation"] = _stage_ablation(engine, test, report)
            if train is not None:
                report["ablation"] += _group_ablation(engine, train, test, report)
    if plots is not None:
        from ._plots import write_plots

        report["plots"] = write_plots(report, plots)
    return report


def _model_folders(folder: Path) -> dict[str, Path]:
    """The saved stage folders (``<stage id>/model_card.json`` or ``fusion.json``) in
    ``folder``, by stage id; a missing folder is a ConfigError."""
    if not folder.is_dir():
        raise ConfigError(f"--models {folder}: no such folder; give the folder "
                          "`hybrid-ai train PIPELINE -o FOLDER` wrote")
    return {p.name: p for p in sorted(folder.iterdir())
            if (p / "model_card.json").is_file() or (p / "fusion.json").is_file()}


def _check_models(graph: Graph, folder: Path, found: dict[str, Path]) -> None:
    """Every trainable stage has its folder in ``--models``; else every case would fail."""
    missing = [n.id for n in _ordered(graph) if is_trainable(n.stage) and n.id not in found]
    if not missing:
        return
    listed = ", ".join(found) or "no stage folders"
    single = (" (it holds one model: use `hybrid-ai eval --model` for it)"
              if (folder / "model_card.json").is_file() else "")
    stages = ", ".join(repr(m) for m in missing)
    raise ConfigError(f"--models {folder}: no model for stage(s) {stages} there (found: "
                      f"{listed}){single}; give the folder `hybrid-ai train PIPELINE -o "
                      "FOLDER` wrote for this pipeline")


def _swapped(node: StageNode, stage: Any, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    original = node.stage
    node.stage = stage
    try:
        return work()
    finally:
        node.stage = original


def _row(removed: str, kind: str, found: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    return {"removed": removed, "kind": kind, "accuracy": found["accuracy"],
            "macro_f1": found["macro_f1"], "mean_cost": found["cost"]["mean_cost"],
            "delta_accuracy": found["accuracy"] - full["accuracy"],
            "delta_macro_f1": found["macro_f1"] - full["macro_f1"]}


def _stage_ablation(engine: Engine, test: LabelledCases,
                    full: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for node in _ordered(engine.graph):
        found = _swapped(node, _Removed(node.stage), lambda: _run(engine, test))
        rows.append(_row(node.id, "stage", found, full))
    return rows


def _group_ablation(engine: Engine, train: LabelledCases, test: LabelledCases,
                    full: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    nodes = _ordered(engine.graph)
    for index, node in enumerate(nodes):
        groups = _groups(node.stage)
        if len(groups) < 2:
            continue
        boards = [Blackboard(c) for c in train.cases]
        run_stages(nodes[:index], boards)
        stage: Any = node.stage
        for group in groups:
            params = dict(stage.params) | {"features": [g for g in groups if g != group],
                                                "model": None, "train_path": None}
            variant = type(stage)(**params)
            variant.fit_records([variant.record(b) for b in boards], train.labels)
            found = _swapped(node, variant, lambda: _run(engine, test))
            rows.append(_row(f"{node.id}:{group}", "feature group", found, full))
    return rows


def _groups(stage: Any) -> list[str]:
    if not is_trainable(stage) or "features" not in getattr(stage, "params", {}):
        return []
    from ._models import feature_groups

    fitted = getattr(stage, "fitted", None)
    if fitted is not None and fitted.card.get("features"):
        return list(fitted.card["features"])
    return list(feature_groups(stage.params["features"]))


def _cascades(engine: Engine, test: LabelledCases, thresholds: Sequence[float],
              target_accuracy: float | None, budget: float | None) -> list[dict[str, Any]]:
    found = []
    for node in _cascade_nodes(engine.graph):
        table = cascade_table(engine, node, test)
        everything = table_curve(table, [_NEVER])[0]  # no step ever stops it
        fine = table_curve(table)
        row = {"stages": [s.id for s in node.steps], "curve": table_curve(table, thresholds),
               "all_stages": everything, "scored": table["scored"],
               "pick_within_0.3": cascade_pick(fine, everything["accuracy"],
                                               share_key="share_to_last")}
        if target_accuracy is not None:
            row["pick_target"] = cascade_pick(fine, share_key="share_to_last",
                                              target_accuracy=target_accuracy)
        if budget is not None:
            row["pick_budget"] = cascade_pick(fine, share_key="share_to_last", budget=budget)
        found.append(row)
    return found


def _cascade_nodes(graph: Graph) -> list[CascadeNode]:
    out: list[CascadeNode] = []

    def visit(node: Any) -> None:
        if isinstance(node, CascadeNode):
            out.append(node)
        for attr in ("children", "branches"):
            for child in getattr(node, attr, None) or []:
                visit(child[1] if isinstance(child, tuple) else child)
        if getattr(node, "default", None) is not None:
            visit(node.default)

    visit(graph.root)
    return out


_NEVER = 1.01  # above any confidence: the step never stops the cascade


def cascade_table(engine: Engine, node: CascadeNode, data: LabelledCases) -> dict[str, Any]:
    """Per case, each non-last step's confidence and the answer when the cascade stops at each
    step: one engine run per step, from which :func:`table_curve` gives the cascade at any
    threshold without running it again.

    The answer scored is the pipeline's decision when the labels speak its language, else the
    label the stopping step itself predicted (a cascade of intents in front of rules that route
    to teams is scored on intents); ``table["scored"]`` says which, ``None`` when neither
    shares a label with the data.
    """
    steps, saved = node.steps, [s.threshold for s in node.steps]
    decisions: list[list[str]] = []
    outputs: list[list[str]] = []
    results: list[Result] = []
    try:
        for k in range(len(steps)):
            for j, step in enumerate(steps[:-1]):
                step.threshold = 0.0 if j == k else _NEVER
            results = engine.run_batch(data.cases, concurrency=4)
            decisions.append([ABSTAIN if r.decision is None else str(r.decision)
                              for r in results])
            outputs.append([_step_label(r, steps[k].id) for r in results])
    finally:
        for step, value in zip(steps, saved, strict=True):
            step.threshold = value
    scored, answers = _scored_answers(decisions, outputs, data.labels)
    confidence = [[_step_confidence(r, step.id) for r in results] for step in steps[:-1]]
    step_costs = [float(step.cost) for step in steps]
    outside = _costs(results)["mean_cost"] - sum(step_costs)  # the rest of the pipeline
    return {"decisions": answers, "confidence": confidence, "truth": list(data.labels),
            "step_costs": step_costs, "other_cost": outside, "scored": scored}


def _scored_answers(decisions: list[list[str]], outputs: list[list[str]],
                    labels: Sequence[str]) -> tuple[str | None, list[list[str]]]:
    truth = {str(y) for y in labels}
    if truth & {d for run in decisions for d in run}:
        return "decision", decisions
    if truth & {o for run in outputs for o in run}:
        return "cascade output", outputs
    return None, decisions


def _step_label(result: Result, step: str) -> str:
    """The label the step predicted for this case (its last fact with a ``label``)."""
    made = {i for t in result.trace if t.stage == step for i in t.facts}
    labels = [f.get("label") for f in result.facts if f.id in made and f.get("label") is not None]
    return str(labels[-1]) if labels else ABSTAIN


def _step_confidence(result: Result, step: str) -> float:
    found = [t.confidence for t in result.trace if t.stage == step and t.confidence is not None]
    return float(found[-1]) if found else float("-inf")  # no confidence: never stops there


def table_curve(table: dict[str, Any],
                thresholds: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The cascade's accuracy, share reaching the last step and mean cost per threshold (the
    same for every step but the last); ``None``: every distinct confidence."""
    import numpy as np

    from ._eval import fine_thresholds

    conf = np.asarray(table["confidence"], dtype=np.float64).reshape(
        len(table["decisions"]) - 1, len(table["truth"]))
    finite = conf[np.isfinite(conf)]
    grid = fine_thresholds(finite) if thresholds is None else thresholds
    if len(table["decisions"]) == 2:
        return _two_step_curve(table, conf[0], grid)
    return _curve_by_threshold(table, conf, grid)


def _two_step_curve(table: dict[str, Any], conf: Any,
                    grid: Sequence[float] | Any) -> list[dict[str, Any]]:
    """The common cascade, one pass for every threshold (:func:`deferral_curve`'s cumulative
    sums) instead of one pass over the cases per threshold."""
    from ._eval import deferral_curve

    first, second = table["decisions"]
    rows = deferral_curve(conf, first, second, table["truth"], grid)
    base, last = table["other_cost"] + table["step_costs"][0], table["step_costs"][1]
    return [{"threshold": r["threshold"], "accuracy": r["accuracy"],
             "share_to_last": r["share_to_transformer"],
             "mean_cost": float(base + last * r["share_to_transformer"])} for r in rows]


def _curve_by_threshold(table: dict[str, Any], conf: Any,
                        grid: Sequence[float] | Any) -> list[dict[str, Any]]:
    import numpy as np

    right = np.asarray(table["decisions"]) == np.asarray(table["truth"], dtype=str)
    paid = np.cumsum(table["step_costs"])
    last, rows = len(table["decisions"]) - 1, []
    for t in grid:
        stops = np.vstack([conf >= t, np.ones((1, conf.shape[1]), dtype=bool)])
        answer = stops.argmax(axis=0)  # the first step confident enough, else the last
        rows.append({"threshold": float(t),
                     "accuracy": float(right[answer, np.arange(len(answer))].mean()),
                     "share_to_last": float((answer == last).mean()),
                     "mean_cost": float(table["other_cost"] + paid[answer].mean())})
    return rows


def tune_cascades(engine: Engine, validation: LabelledCases, *, tolerance: float = 0.003,
                  target_accuracy: float | None = None,
                  budget: float | None = None) -> list[dict[str, Any]]:
    """Set every cascade's thresholds from validation cases; returns what was chosen.

    ``tune_cascades(engine, read_cases("val.csv"), budget=0.25)``. Every distinct confidence
    is a candidate; the goal is as in :func:`cascade_pick` (by default the lowest share within
    ``tolerance`` of running every step). A cascade no threshold satisfies keeps its own.
    """
    return [pick_threshold(node, cascade_table(engine, node, validation), tolerance=tolerance,
                           target_accuracy=target_accuracy, budget=budget)
            for node in _cascade_nodes(engine.graph)]


def pick_threshold(node: CascadeNode, table: dict[str, Any], *, tolerance: float = 0.003,
                   target_accuracy: float | None = None,
                   budget: float | None = None) -> dict[str, Any]:
    """Set the thresholds of ``node``'s steps from a :func:`cascade_table` for the goal."""
    reference = table_curve(table, [_NEVER])[0]["accuracy"]
    pick = None
    if table.get("scored", "decision") is not None:  # else every threshold would score 0
        pick = cascade_pick(table_curve(table), reference, tolerance, budget=budget,
                            target_accuracy=target_accuracy, share_key="share_to_last")
    if pick is not None:
        for step in node.steps[:-1]:
            step.threshold = pick["threshold"]
    return {"stages": [s.id for s in node.steps], "pick": pick,
            "scored": table.get("scored", "decision"), "validation_all_stages": reference,
            "validation_cases": len(table["truth"]),
            "thresholds": [s.threshold for s in node.steps]}


def merge_tables(tables: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One :func:`cascade_table` from tables of the same cascade over disjoint cases (folds)."""
    first = tables[0]
    sizes = [len(t["truth"]) for t in tables]
    return {"decisions": [[d for t in tables for d in t["decisions"][k]]
                          for k in range(len(first["decisions"]))],
            "confidence": [[c for t in tables for c in t["confidence"][k]]
                           for k in range(len(first["confidence"]))],
            "truth": [y for t in tables for y in t["truth"]],
            "step_costs": first["step_costs"], "scored": first.get("scored", "decision"),
            "other_cost": sum(t["other_cost"] * n for t, n in zip(tables, sizes, strict=True))
            / max(1, sum(sizes))}
