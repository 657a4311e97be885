"""Train every trainable stage of a pipeline end to end, then save it with the models.

Usage: ``report = train_pipeline(read_pipeline("p.yaml"), cases, labels, output="models/")``.

A stage is *trainable* when it has ``record(view)``, ``fit_records(records, labels)`` and
``save(directory)`` (``text_classifier``, ``ml_model``; ``fuse`` with a learned strategy).
Training walks the pipeline's stages in declaration order over every training case at once: each
stage runs over all cases, so upstream stages (embeddings, rules, knowledge lookups, models
trained a moment before) provide the facts a trainable stage reads its features from. A stage
whose ``fit_on`` is ``"validation"`` (fusions learning from the models' outputs) fits on the
validation cases, whose upstream predictions are out of sample; with no validation data a
stratified fifth of the training cases is held out for it.
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._facts import Blackboard, Case
from .._graph import Graph, StageNode, build_graph

__all__ = [
    "PRESETS",
    "CascadeGoal",
    "LabelledCases",
    "apply_models",
    "apply_thresholds",
    "is_trainable",
    "preset_pipeline",
    "read_cases",
    "run_stages",
    "train_pipeline",
]

TRAINING_FILE = "training.json"

# The default fused text pipeline: three logistic regressions (TF-IDF word + char n-grams;
# MiniLM; all groups concatenated) stacked by a logistic regression over their out-of-fold
# probabilities. Plain stacking missed TREC (94.0 vs concatenation's 94.8) and concatenation
# missed SST-2 and Financial PhraseBank; stacking with the concatenation as a member reached
# 94.8 on TREC with no per-dataset choice.
_FUSED_STAGE = """\
stage: ml_model
id: text
with:
  features: [word, char, embedding]
  fusion: stacking_all
  name: text-fused"""


def _item(block: str, indent: int) -> str:
    """A YAML block as one list item, ``indent`` spaces in."""
    first, *rest = block.splitlines()
    pad = " " * indent
    return "".join([f"{pad}- {first}\n", *(f"{pad}  {line}\n" for line in rest)])


PRESETS: dict[str, str] = {
    "text": "name: preset-text\npipeline:\n  serial:\n" + _item(_FUSED_STAGE, 4),
    # The same fused model behind the cheap stacked first stage: the encoder runs only where the
    # cheap stage is unsure. `hybrid-ai train` sets the threshold on validation data (a held-out
    # 20 % when no --val is given); 0.9 stands until then.
    "text-cascade": "name: preset-text-cascade\npipeline:\n  cascade:\n    stages:\n"
                    + _item("stage: cheap_text\nid: cheap\nthreshold: 0.9", 6)
                    + _item(_FUSED_STAGE, 6),
}


@dataclass(frozen=True)
class CascadeGoal:
    """How ``train_pipeline`` sets cascade thresholds on validation data (see
    :func:`~hybrid_ai.ml.cascade_pick`): ``CascadeGoal()`` the lowest share within 0.3 points of
    running every step; ``CascadeGoal(budget=0.25)`` the most accurate at most 25 % on;
    ``CascadeGoal(target_accuracy=0.9)`` the lowest share reaching 90 %. ``folds=5`` (when
    no validation cases are given) cross-fits: the pipeline is trained on four fifths five
    times and the threshold is picked on every training case once, not on one held-out fifth:
    steadier, at five extra trainings."""

    tolerance: float = 0.003
    target_accuracy: float | None = None
    budget: float | None = None
    folds: int = 1

    def __post_init__(self) -> None:
        if self.target_accuracy is not None and self.budget is not None:
            raise ConfigError("give one cascade goal: target_accuracy (--cascade-target) or "
                              "budget (--cascade-budget)")
        for name, flag, value in (("target_accuracy", "--cascade-target", self.target_accuracy),
                                  ("budget", "--cascade-budget", self.budget),
                                  ("tolerance", "--cascade-tolerance", self.tolerance)):
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"cascade {name} ({flag}) is a fraction between 0 and 1, "
                                  f"got {value}")
        if self.folds < 1:
            raise ConfigError(f"cascade folds (--cascade-folds) are 1 (a held-out fifth) or "
                              f"more, got {self.folds}")

    def targets(self) -> dict[str, Any]:
        return {"tolerance": self.tolerance, "target_accuracy": self.target_accuracy,
                "budget": self.budget}


@dataclass
class LabelledCases:
    """Cases with their true labels: ``LabelledCases(cases, labels)``."""

    cases: list[Case]
    labels: list[str]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def read_cases(path: str | Path, *, text_column: str = "text",
               label_column: str = "label") -> LabelledCases:
    """Cases from a CSV with a header row: the text column, every other column a field."""
    from ._model_stage import records_from_csv

    records, labels = records_from_csv(path, label_column=label_column, text_column=text_column)
    cases = [Case(id=f"row-{i + 2}", text=r["text"], fields=r["fields"])
             for i, r in enumerate(records)]
    return LabelledCases(cases, labels, str(path))


def preset_pipeline(name: str) -> Any:
    """The :class:`PipelineSpec` of a preset: ``preset_pipeline("text")``."""
    from .._config import read_pipeline

    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return read_pipeline(f"preset:{name}", text=PRESETS[name])


def is_trainable(stage: Any) -> bool:
    """Whether the training walk fits this stage (see the module docstring)."""
    wanted = ("record", "fit_records", "save")
    return all(callable(getattr(stage, a, None)) for a in wanted) and bool(
        getattr(stage, "trainable", True))


def _trainable(node: StageNode) -> Any:
    """The node's stage, typed loosely: the trainable protocol is checked by is_trainable."""
    return node.stage


def _ordered(graph: Graph) -> list[StageNode]:
    """Every stage that runs on the main path, fallbacks left out, in declaration order."""
    fallbacks = {id(n.fallback) for n in graph.stages() if n.fallback is not None}
    return [n for n in graph.stages() if id(n) not in fallbacks]


def run_stages(nodes: Sequence[StageNode], boards: Sequence[Blackboard]) -> dict[str, int]:
    """Run each node over every board, in order; returns failures per stage id (skipped)."""
    failures: dict[str, int] = {}
    loop = asyncio.new_event_loop()
    try:
        for node in nodes:
            node.stage.warm_up()
            many = getattr(node.stage, "process_many", None)
            if callable(many) and boards:  # one model call for all cases
                for board, drafts in zip(boards, many(boards), strict=True):
                    for draft in drafts:
                        board.add(draft, stage=node.id, source=node.component)
                continue
            for board in boards:
                try:
                    raw: Any = node.stage.process(board)
                    if inspect.isawaitable(raw):
                        raw = loop.run_until_complete(raw)
                except Exception:  # a stage failing on one case must not stop training
                    failures[node.id] = failures.get(node.id, 0) + 1
                    continue
                facts = raw.facts if hasattr(raw, "facts") else (raw or [])
                for draft in facts:
                    board.add(draft, stage=node.id, source=node.component)
    finally:
        loop.close()
    return failures


def _fewest(labels: Sequence[str]) -> int:
    """How many cases the rarest label has: stratified splits need at least one per part."""
    from collections import Counter

    return min(Counter(labels).values(), default=0)


def _holdout(data: LabelledCases, share: float = 0.2) -> tuple[LabelledCases, LabelledCases]:
    from sklearn.model_selection import train_test_split

    stratify = data.labels if _fewest(data.labels) >= 2 else None
    fit, held, fit_y, held_y = train_test_split(data.cases, data.labels, test_size=share,
                                                random_state=0, stratify=stratify)
    return (LabelledCases(list(fit), list(fit_y), data.source + " (80 %)"),
            LabelledCases(list(held), list(held_y), data.source + " (held-out 20 %)"))


def _needs_validation(nodes: Sequence[StageNode]) -> bool:
    return any(is_trainable(n.stage) and getattr(n.stage, "fit_on", "train") == "validation"
               for n in nodes)


def train_pipeline(spec: Any, train: LabelledCases, val: LabelledCases | None = None, *,
                   output: str | Path, search: bool = False,
                   cascades: CascadeGoal | None = CascadeGoal()) -> dict[str, Any]:
    """Fit every trainable stage, save each to ``output/<stage id>``; returns the report.

    ``output/pipeline.yaml`` is the pipeline with ``model:`` pointing at the saved folders and,
    unless ``cascades`` is None, each cascade's threshold chosen on the validation cases for
    that goal (``report["cascades"]``; a goal no threshold meets keeps the file's own).
    """
    from .._plugins import Plugins
    from ._train import label_warnings

    plugins = Plugins.default().with_modules(spec.plugins, (), spec.code_dirs,
                                             beside=spec.base_dir)
    graph = build_graph(spec, plugins)
    nodes = _ordered(graph)
    if not any(is_trainable(n.stage) for n in nodes):
        raise ConfigError(f"pipeline {spec.name!r} has no trainable stage (text_classifier, "
                          "ml_model, or fuse with a learned strategy); nothing to train")
    tune = cascades is not None and _has_cascades(graph)
    cross = tune and val is None and cascades is not None and cascades.folds > 1
    held_out = val is None and ((tune and not cross) or _needs_validation(nodes))
    fit_data, val = _holdout(train) if held_out else (train, val)
    report = _walk(nodes, fit_data, val, search)
    if cross and cascades is not None:
        report["cascades"] = _cross_fitted(spec, plugins, graph, train, cascades, search)
    elif tune and val is not None and cascades is not None:
        report["cascades"] = _tune_thresholds(graph, val, cascades)
    if held_out:  # the models were fitted on 80 %: refit them on everything, fusions kept
        report["refit_on_all"] = _refit(nodes, train, search)
    folder = Path(output)
    saved = {n.id: str(_trainable(n).save(folder / _safe(n.id))) for n in nodes
             if is_trainable(n.stage)}
    report |= {"pipeline": spec.name, "saved": saved, "n_train": len(train.cases),
               "validation": val.source if val is not None else None,
               "warnings": label_warnings(train.labels)}
    if val is not None and not held_out:
        report["validation_metrics"] = _score(graph, val)
    _write_pipeline(spec, folder, {n.id: folder / _safe(n.id) for n in nodes
                                   if is_trainable(n.stage)},
                    {n.id: n.threshold for n in nodes if n.threshold is not None})
    (folder / TRAINING_FILE).write_text(json.dumps(report, indent=2, default=str) + "\n",
                                        encoding="utf-8")
    return report


def _has_cascades(graph: Graph) -> bool:
    from ._pipeline_eval import _cascade_nodes

    return bool(_cascade_nodes(graph))


def _tune_thresholds(graph: Graph, val: LabelledCases, goal: CascadeGoal) -> list[dict[str, Any]]:
    """Each cascade's threshold from the fitted stages' answers on the validation cases."""
    from .._engine import Engine
    from ._pipeline_eval import tune_cascades

    with Engine(graph) as engine:
        return tune_cascades(engine, val, **goal.targets())


def _cross_fitted(spec: Any, plugins: Any, graph: Graph, train: LabelledCases,
                  goal: CascadeGoal, search: bool) -> list[dict[str, Any]]:
    """Thresholds picked on out-of-fold cascade tables: each fold's pipeline is trained on the
    other folds and answers its own cases, so every training case is validation once."""
    from .._engine import Engine
    from ._pipeline_eval import _cascade_nodes, cascade_table, merge_tables, pick_threshold

    tables: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for fit, held in _folds(train, goal.folds):
        fold_graph = build_graph(spec, plugins)
        fold_nodes = _ordered(fold_graph)
        inner, inner_val = _holdout(fit) if _needs_validation(fold_nodes) else (fit, None)
        _walk(fold_nodes, inner, inner_val, search)
        with Engine(fold_graph) as engine:
            for node in _cascade_nodes(fold_graph):
                tables.setdefault(_steps(node), []).append(cascade_table(engine, node, held))
    return [pick_threshold(node, merge_tables(tables[_steps(node)]), **goal.targets())
            | {"folds": goal.folds} for node in _cascade_nodes(graph)]


def _steps(node: Any) -> tuple[str, ...]:
    return tuple(step.id for step in node.steps)


def _folds(data: LabelledCases, k: int) -> Iterator[tuple[LabelledCases, LabelledCases]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = StratifiedKFold(k, shuffle=True, random_state=0) if _fewest(data.labels) >= k \
        else KFold(k, shuffle=True, random_state=0)
    for number, (fit, held) in enumerate(splitter.split(data.cases, data.labels), start=1):
        yield (_subset(data, fit, f"{data.source} (folds but {number} of {k})"),
               _subset(data, held, f"{data.source} (fold {number} of {k})"))


def _subset(data: LabelledCases, rows: Any, source: str) -> LabelledCases:
    return LabelledCases([data.cases[i] for i in rows], [data.labels[i] for i in rows], source)


def _through_last_trainable(nodes: Sequence[StageNode]) -> Sequence[StageNode]:
    """Stages after the last trainable one feed nothing that is fitted: running them over every
    training case (a transformer, say) would only cost time."""
    last = max((i for i, n in enumerate(nodes) if is_trainable(n.stage)), default=-1)
    return nodes[: last + 1]


def _walk(nodes: Sequence[StageNode], train: LabelledCases, val: LabelledCases | None,
          search: bool) -> dict[str, Any]:
    boards = [Blackboard(c) for c in train.cases]
    val_boards = [Blackboard(c) for c in val.cases] if val is not None else []
    stages: dict[str, Any] = {}
    failures: dict[str, int] = {}
    for node in _through_last_trainable(nodes):
        if is_trainable(node.stage):
            on_val = getattr(node.stage, "fit_on", "train") == "validation" and val is not None
            data, where = (val, val_boards) if on_val else (train, boards)
            assert data is not None
            records = [_trainable(node).record(b) for b in where]
            fitted = _trainable(node).fit_records(records, data.labels, search=search,
                                            source=data.source)
            stages[node.id] = {"fitted_on": data.source, "n": len(records),
                               "card": getattr(fitted, "card", fitted)}
        failures |= run_stages([node], [*boards, *val_boards])
    return {"stages": stages, "failures": failures}


def _refit(nodes: Sequence[StageNode], train: LabelledCases, search: bool) -> list[str]:
    boards = [Blackboard(c) for c in train.cases]
    refit = []
    for node in _through_last_trainable(nodes):
        if is_trainable(node.stage) and getattr(node.stage, "fit_on", "train") == "train":
            stage = _trainable(node)
            stage.fit_records([stage.record(b) for b in boards], train.labels,
                                   search=search, source=train.source)
            refit.append(node.id)
        run_stages([node], boards)
    return refit


def _score(graph: Graph, data: LabelledCases) -> dict[str, Any]:
    from ._eval import metrics

    boards = [Blackboard(c) for c in data.cases]
    run_stages(_ordered(graph), boards)
    predicted = [str(_decision(b)) for b in boards]
    found = metrics(data.labels, predicted)
    return {k: found[k] for k in ("n_test", "accuracy", "macro_f1")}


def _decision(board: Blackboard) -> Any:
    from .._result import _final_fact

    fact = _final_fact(board.all())
    return None if fact is None else fact.data.get("label", fact.data.get("value"))


def _safe(stage_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stage_id)


# The parameters that only say how to train, dropped once a saved model stands in.
_TRAINING_PARAMS = frozenset({"train_path", "dataset", "split"})


def _saved_param(component: str) -> str:
    """The parameter a trainable stage reads its saved folder from: its ``saved_model_param``
    (``text_classifier``'s ``model`` is a name), else ``model``."""
    from .._plugins import Plugins

    stages = Plugins.default().stages
    factory = stages.get(component) if component in stages else None
    return str(getattr(factory, "saved_model_param", "model"))


def apply_models(spec: Any, models: Mapping[str, Path]) -> None:
    """Point the stages named in ``models`` (by id) at saved folders, in the spec itself."""

    def point(node: Any) -> None:
        if node.node_id in models:
            params = {k: v for k, v in node.with_.items() if k not in _TRAINING_PARAMS}
            params[_saved_param(node.stage)] = str(Path(models[node.node_id]).resolve())
            node.with_ = params

    _each_stage_spec(spec, point)


def apply_thresholds(spec: Any, thresholds: Mapping[str, float]) -> None:
    """Set the cascade ``threshold`` of the stages named in ``thresholds`` (by id), in the spec."""

    def set_threshold(node: Any) -> None:
        if node.node_id in thresholds and node.threshold is not None:
            node.threshold = float(thresholds[node.node_id])

    _each_stage_spec(spec, set_threshold)


def _each_stage_spec(spec: Any, change: Callable[[Any], None]) -> None:
    """Call ``change`` on every stage of the spec: main path, fallbacks and definitions."""
    from .._config import StageSpec

    def visit(node: Any) -> None:
        if isinstance(node, StageSpec):
            change(node)
            if node.fallback is not None:
                visit(node.fallback)
            return
        for child in _children(node):
            visit(child)

    visit(spec.pipeline)
    for definition in spec.define.values():
        visit(definition)


def _children(node: Any) -> list[Any]:
    for attr in ("serial",):
        if hasattr(node, attr):
            return list(getattr(node, attr))
    body = getattr(node, "parallel", None) or getattr(node, "cascade", None)
    if body is not None:
        return list(getattr(body, "branches", None) or getattr(body, "stages", []))
    body = getattr(node, "route", None)
    if body is not None:
        return [b.then for b in body.branches] + ([body.default] if body.default else [])
    return []


def _write_pipeline(spec: Any, folder: Path, models: Mapping[str, Path],
                    thresholds: Mapping[str, float]) -> None:
    """``folder/pipeline.yaml``: the pipeline as JSON-compatible YAML, trained stages loaded."""
    import copy

    trained = copy.deepcopy(spec)
    apply_models(trained, models)
    apply_thresholds(trained, thresholds)
    data = trained.model_dump(mode="json", by_alias=True, exclude_none=True)
    data = _absolute(data, spec.base_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # JSON is a subset of YAML: the safe loader reads this file back as it is.
    (folder / "pipeline.yaml").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _absolute(data: Any, base: Path) -> Any:
    """Relative ``path`` / ``*_path`` parameters made absolute, so the copy works elsewhere."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if (key == "path" or key.endswith("_path")) and isinstance(value, str) \
                    and not Path(value).is_absolute():
                value = str((base / value).resolve())
            out[key] = _absolute(value, base)
        return out
    if isinstance(data, list):
        return [_absolute(v, base) for v in data]
    return data


def write_cases_csv(path: str | Path, data: LabelledCases, *, label_column: str = "label",
                    text_column: str = "text") -> None:
    """The inverse of :func:`read_cases` (tests and benchmarks write slices with it)."""
    fields = sorted({k for c in data.cases for k in c.fields})
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([text_column, *fields, label_column])
        for case, label in zip(data.cases, data.labels, strict=True):
            writer.writerow([case.text, *[case.fields.get(f, "") for f in fields], label])
