"""A conformance kit for plugin authors: the same checks every built-in stage passes.

    from hybrid_ai.testing import check_stage
    def test_my_stage():
        check_stage(MyStage, params={"lexicon": {"fraud": ["stolen"]}}, text="card stolen")

``check_stage`` builds the stage from its factory, checks the declared contract (``requires``,
``produces``, ``blocking``, ``cost``, a stable ``version``), warms it up twice, runs
``process`` on a blackboard that holds the facts it requires (give them with ``facts=``), checks
every returned fact, and finally runs it inside a real :class:`~hybrid_ai.Engine`. All failures
are reported together in one ``AssertionError``.

``StaticStage`` is a stage that emits fixed facts: use it to feed a stage under test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._config import PipelineSpec, serial, stage
from .._engine import Engine
from .._facts import Blackboard, Case, FactView, NewFact, StageOutput
from .._graph import build_graph
from .._plugins import Plugins
from .._run import _normalize
from .._stage import BaseStage, Stage

__all__ = ["CheckReport", "StaticStage", "check_stage"]


class StaticStage(BaseStage):
    """Emits fixed facts: ``StaticStage(facts={"intent": [{"label": "x"}]}, confidence=0.9)``."""

    def __init__(self, *, facts: Mapping[str, Sequence[Mapping[str, Any]]],
                 confidence: float | None = None) -> None:
        super().__init__(facts={k: list(v) for k, v in facts.items()}, confidence=confidence)
        self.produces = tuple(facts)
        self._facts = {k: [dict(d) for d in v] for k, v in facts.items()}

    def process(self, view: FactView) -> list[NewFact]:
        root = view.last("input")
        return [NewFact(kind, data, confidence=self.params["confidence"],
                        derived_from=[root] if root else [], source="static")
                for kind, items in self._facts.items() for data in items]


@dataclass
class CheckReport:
    """What ``check_stage`` looked at: the passed checks, and the facts the stage returned."""

    passed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    output: list[NewFact] = field(default_factory=list)

    def check(self, ok: bool, name: str, why: str = "") -> bool:
        (self.passed if ok else self.failures).append(name if ok else f"{name}: {why}")
        return ok


def check_stage(factory: Callable[..., Any] | Stage, *, params: Mapping[str, Any] | None = None,
                text: str = "conformance check", fields: Mapping[str, Any] | None = None,
                facts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
                run_engine: bool = True) -> CheckReport:
    """Check a stage factory (or instance) against the stage contract; raise on any failure."""
    report = CheckReport()
    instance = _construct(factory, dict(params or {}), report)
    if instance is None:
        raise AssertionError(_message(report))
    _check_declarations(instance, factory, dict(params or {}), report)
    _check_warm_up(instance, report)
    case = Case(text=text, fields=dict(fields or {}))
    _check_process(instance, case, dict(facts or {}), report)
    if run_engine and not report.failures:
        _check_in_engine(instance, case, dict(facts or {}), report)
    if report.failures:
        raise AssertionError(_message(report))
    return report


def _message(report: CheckReport) -> str:
    return "stage does not meet the hybrid-ai stage contract:\n  - " + "\n  - ".join(
        report.failures)


def _construct(factory: Any, params: dict[str, Any], report: CheckReport) -> Any:
    if not inspect.isclass(factory) and hasattr(factory, "process"):
        return factory  # an instance: nothing to construct
    _check_keyword_only(factory, report)
    try:
        return factory(**params)
    except Exception as exc:
        report.check(False, "construct", f"{factory!r}(**params) raised {exc!r}")
        return None


def _check_keyword_only(factory: Any, report: CheckReport) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    positional = [n for n, p in signature.parameters.items()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"]
    report.check(not positional, "keyword-only parameters",
                 f"make {', '.join(positional)} keyword-only (put `*,` first)")


def _check_declarations(stage: Any, factory: Any, params: dict[str, Any],
                        report: CheckReport) -> None:
    for name in ("requires", "produces"):
        value = getattr(stage, name, None)
        report.check(isinstance(value, tuple) and all(isinstance(v, str) for v in value),
                     f"{name} is a tuple of fact kinds", f"got {value!r}")
    report.check(isinstance(getattr(stage, "blocking", None), bool), "blocking is a bool",
                 f"got {getattr(stage, 'blocking', None)!r}")
    cost = getattr(stage, "cost", None)
    report.check(isinstance(cost, (int, float)) and cost >= 0, "cost is a number >= 0",
                 f"got {cost!r}")
    version = getattr(stage, "version", None)
    report.check(isinstance(version, str) and bool(version), "version is a non-empty str",
                 f"got {version!r}")
    if inspect.isclass(factory) or inspect.isfunction(factory):
        again: Any = factory(**params)
        report.check(again.version == version, "version is stable for equal parameters",
                     f"{version!r} != {again.version!r}")


def _check_warm_up(stage: Any, report: CheckReport) -> None:
    try:
        stage.warm_up()
        stage.warm_up()
    except Exception as exc:
        report.check(False, "warm_up is idempotent", repr(exc))
        return
    report.check(True, "warm_up is idempotent")


def _board(case: Case, facts: Mapping[str, Sequence[Mapping[str, Any]]]) -> Blackboard:
    board = Blackboard(case)
    root = board.last("input")
    for kind, items in facts.items():
        for data in items:
            board.add(NewFact(kind, data, derived_from=[root] if root else []), stage="given")
    return board


def _check_process(stage: Any, case: Case, facts: Mapping[str, Sequence[Mapping[str, Any]]],
                   report: CheckReport) -> None:
    missing = [k for k in stage.requires if k != "input" and k not in facts]
    if not report.check(not missing, "required facts given",
                        f"pass facts={{...}} for {', '.join(missing)}"):
        return
    board = _board(case, facts)
    if inspect.iscoroutinefunction(stage.process):
        report.check(True, "process is async (checked in the engine)")
        return
    try:
        output = _normalize_for_check(stage, stage.process(board))
    except Exception as exc:
        report.check(False, "process returns facts", repr(exc))
        return
    report.output = output.facts
    _check_facts(stage, output, board, report)


def _normalize_for_check(stage: Any, raw: Any) -> StageOutput:
    from .._errors import Location
    from .._graph import StageNode

    return _normalize(StageNode("check", type(stage).__name__, stage, Location()), raw)


def _check_facts(stage: Any, output: StageOutput, board: Blackboard,
                 report: CheckReport) -> None:
    known = {f.id for f in board.all()}
    for draft in output.facts:
        if not report.check(isinstance(draft, NewFact), "facts are NewFact", repr(draft)):
            continue
        report.check(draft.kind in stage.produces, f"{draft.kind!r} is declared in produces",
                     f"produces is {stage.produces!r}")
        report.check(isinstance(draft.data, Mapping), f"{draft.kind!r} data is a mapping",
                     type(draft.data).__name__)
        conf = draft.confidence
        report.check(conf is None or 0.0 <= conf <= 1.0, f"{draft.kind!r} confidence in [0, 1]",
                     repr(conf))
        stray = [getattr(f, "id", f) for f in draft.derived_from if getattr(f, "id", None)
                 not in known]
        report.check(not stray, f"{draft.kind!r} derives from facts of this case",
                     f"unknown fact ids {stray}")


def _check_in_engine(instance: Any, case: Case,
                     facts: Mapping[str, Sequence[Mapping[str, Any]]], report: CheckReport) -> None:
    nodes = [instance]
    given = {k: v for k, v in facts.items() if k != "input"}
    if given:
        nodes.insert(0, StaticStage(facts=given))
    spec = PipelineSpec(pipeline=serial(*(stage(n, id=f"s{i}") for i, n in enumerate(nodes))))
    try:
        with Engine(build_graph(spec, Plugins.default())) as engine:
            result = engine.run(case, errors="return")
    except Exception as exc:
        report.check(False, "runs in an engine", repr(exc))
        return
    report.check(result.ok, "runs in an engine", str(result.error))
