"""Runs one case through a graph on asyncio: stage policies, fan-out/fan-in, routes, cascades.

Sync stages that are ``blocking`` (or have a ``timeout``) run on the engine's bounded thread
pool; others run inline on the event loop, which keeps trivial stages cheap. A timed-out thread
cannot be killed: its result is discarded when it finishes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from ._errors import StageError, StageOutputError, StageTimeoutError
from ._facts import Blackboard, Fact, FactView, NewFact, StageOutput
from ._fingerprint import fingerprint
from ._graph import CascadeNode, GraphNode, ParallelNode, RouteNode, SerialNode, StageNode
from ._result import StageTrace

__all__ = ["BranchOutcome", "CaseRun", "StageCache"]


@dataclass(frozen=True)
class BranchOutcome:
    """What one parallel branch produced, handed to the fan-in merge policy."""

    index: int
    facts: list[Fact]
    confidence: float | None


class StageCache:
    """A bounded in-memory map from (stage, version, inputs) to the stage's output drafts."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._data: dict[str, StageOutput] = {}
        self._lock = threading.Lock()  # cases on different threads' loops share one cache

    def get(self, key: str) -> StageOutput | None:
        return self._data.get(key)

    def put(self, key: str, output: StageOutput) -> None:
        with self._lock:
            if len(self._data) >= self.size:
                self._data.pop(next(iter(self._data)))  # oldest first: insertion order
            self._data[key] = output


OBSERVERS = ("hybrid_ai_stage_started", "hybrid_ai_stage_finished", "hybrid_ai_stage_failed",
             "hybrid_ai_veto_applied", "hybrid_ai_decision_made", "hybrid_ai_engine_started")


class Observers:
    """The observation hooks, each a no-op when no plugin implements it: a pluggy call costs
    microseconds even with nobody listening, about a fifth of a trivial stage's overhead."""

    def __init__(self, hook: Any) -> None:
        for name in OBSERVERS:
            caller = getattr(hook, name)
            setattr(self, name, caller if caller.get_hookimpls() else _ignore)

    def __getattr__(self, name: str) -> Any:  # for type checkers; every name is set above
        raise AttributeError(name)


def _ignore(**kwargs: Any) -> None:
    return None


@dataclass
class Context:
    """What every case run shares with its engine."""

    executor: Executor
    hook: Observers
    cache: StageCache
    fact_types: Mapping[str, Any]
    default_budget: float | None


class CaseRun:
    """The execution of one case; ``traces`` grows as stages finish."""

    def __init__(self, ctx: Context, board: Blackboard) -> None:
        self.ctx, self.board, self.case = ctx, board, board.case
        self.traces: list[StageTrace] = []

    async def node(self, node: GraphNode, board: Blackboard) -> float | None:
        """Run any node; returns the confidence of the last stage that reported one."""
        if isinstance(node, StageNode):
            return await self.stage(node, board)
        if isinstance(node, SerialNode):
            conf = None
            for child in node.children:
                conf = await self.node(child, board)
            return conf
        if isinstance(node, ParallelNode):
            return await self.parallel(node, board)
        if isinstance(node, RouteNode):
            return await self.route(node, board)
        return await self.cascade(node, board)

    # --- stages -------------------------------------------------------------------------

    async def stage(self, node: StageNode, board: Blackboard) -> float | None:
        trace = StageTrace(node.id, node.component, cost=node.cost)
        self.ctx.hook.hybrid_ai_stage_started(case=self.case, stage=node.id)
        start = time.perf_counter()
        try:
            output = await self.output(node, board, trace)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            trace.seconds = time.perf_counter() - start
            return await self.failed(node, board, trace, exc)
        facts = [board.add(d, stage=node.id, source=node.component) for d in output.facts]
        trace.seconds = time.perf_counter() - start
        trace.facts = tuple(f.id for f in facts)
        trace.confidence = output.confidence
        self.finish(trace)
        self.announce_vetoes(facts, board)
        return output.confidence

    def announce_vetoes(self, facts: Sequence[Fact], board: Blackboard) -> None:
        """Call ``hybrid_ai_veto_applied`` for each final decision a veto won."""
        for fact in facts:
            if (fact.kind == "decision" and fact.data.get("final")
                    and fact.data.get("strength") == "veto"):
                ids = set(fact.data.get("overruled") or ())
                overruled = [f for f in board.all() if f.id in ids]
                self.ctx.hook.hybrid_ai_veto_applied(case=self.case, decision=fact,
                                                     overruled=overruled)

    def finish(self, trace: StageTrace) -> None:
        self.traces.append(trace)
        self.ctx.hook.hybrid_ai_stage_finished(case=self.case, stage=trace.stage, trace=trace)

    async def output(self, node: StageNode, view: Blackboard, trace: StageTrace) -> StageOutput:
        key = self.cache_key(node, view) if node.cache else None
        if key is not None:
            hit = self.ctx.cache.get(key)
            if hit is not None:
                trace.status = "cached"
                return _rebind(hit, view, node)
        output = await self.attempts(node, view, trace)
        if key is not None:
            self.ctx.cache.put(key, output)
        return output

    def cache_key(self, node: StageNode, view: FactView) -> str:
        inputs = [[f.data for f in view.of(kind)] for kind in node.stage.requires]
        case = view.case
        return fingerprint(node.id, node.stage.version, case.text, case.fields, inputs)

    async def attempts(self, node: StageNode, view: Blackboard, trace: StageTrace) -> StageOutput:
        for attempt in range(node.retries + 1):
            trace.attempts = attempt + 1
            try:
                return await self.invoke(node, view)
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == node.retries:
                    raise
                await asyncio.sleep(node.backoff * (2**attempt))
        raise AssertionError("unreachable")

    async def invoke(self, node: StageNode, view: Blackboard) -> StageOutput:
        stage = node.stage
        if node.is_async:
            pending: Any = stage.process(view)
        elif stage.blocking or node.timeout is not None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(self.ctx.executor, stage.process, view)
        else:
            return self.check(node, stage.process(view))
        if node.timeout is None:
            return self.check(node, await pending)
        try:
            return self.check(node, await asyncio.wait_for(pending, node.timeout))
        except asyncio.TimeoutError:
            raise StageTimeoutError(node.id, f"ran past its timeout of {node.timeout}s") from None

    def check(self, node: StageNode, raw: Any) -> StageOutput:
        output = _normalize(node, raw)
        allowed = node.stage.produces
        for draft in output.facts:
            _check_draft(node, draft, allowed, self.ctx.fact_types)
        return output

    async def failed(self, node: StageNode, board: Blackboard, trace: StageTrace,
                     exc: Exception) -> float | None:
        trace.status = "timeout" if isinstance(exc, StageTimeoutError) else "failed"
        trace.error = f"{type(exc).__name__}: {exc}"
        self.ctx.hook.hybrid_ai_stage_failed(case=self.case, stage=node.id, error=exc,
                                             trace=trace)
        if node.on_error == "skip":
            trace.note = "on_error=skip: continued without this stage"
        elif node.on_error == "fallback" and node.fallback is not None:
            trace.note = f"on_error=fallback: ran {node.fallback.id!r} instead"
        self.traces.append(trace)
        if node.on_error == "skip":
            return None
        if node.on_error == "fallback" and node.fallback is not None:
            return await self.stage(node.fallback, board)
        if isinstance(exc, StageError):
            raise exc
        raise StageError(node.id, trace.error) from exc

    # --- composite nodes ----------------------------------------------------------------

    async def parallel(self, node: ParallelNode, board: Blackboard) -> float | None:
        layers = [board.child() for _ in node.branches]
        tasks = [asyncio.ensure_future(self.node(branch, layer))
                 for branch, layer in zip(node.branches, layers, strict=True)]
        try:
            confidences = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        outcomes = [BranchOutcome(i, layer.own(), conf)
                    for i, (layer, conf) in enumerate(zip(layers, confidences, strict=True))]
        board.merge(node.merge(outcomes))
        known = [c for c in confidences if c is not None]
        return max(known) if known else None

    async def route(self, node: RouteNode, board: Blackboard) -> float | None:
        env = route_env(board)
        for index, (condition, branch) in enumerate(node.branches):
            if condition(env):
                self.note_route(node, f"branch {index + 1}: {condition.source}")
                return await self.node(branch, board)
        if node.default is None:
            self.note_route(node, "no condition held and there is no default")
            return None
        self.note_route(node, "default")
        return await self.node(node.default, board)

    def note_route(self, node: RouteNode, taken: str) -> None:
        self.traces.append(StageTrace(f"route@{node.location}", "route", note=f"took {taken}"))

    async def cascade(self, node: CascadeNode, board: Blackboard) -> float | None:
        budget = _first_set(self.case.budget, node.budget, self.ctx.default_budget)
        spent, conf = 0.0, None
        for index, step in enumerate(node.steps):
            if budget is not None and index > 0 and spent + step.cost > budget:
                self.skip_rest(node.steps[index:], f"budget: spent {spent:g} of {budget:g}")
                break
            conf = await self.stage(step, board)
            spent += step.cost
            if step.threshold is not None and conf is not None and conf >= step.threshold:
                why = f"{step.id!r} reached {conf:.2f} >= {step.threshold:g}"
                self.skip_rest(node.steps[index + 1:], why)
                break
        return conf

    def skip_rest(self, steps: Sequence[StageNode], why: str) -> None:
        for step in steps:
            self.traces.append(StageTrace(step.id, step.component, status="not_run",
                                          cost=0.0, note=f"cascade stopped: {why}"))


def route_env(view: FactView) -> dict[str, Any]:
    """The names a route condition can read: text, fields, case, facts, and each kind's newest."""
    case = view.case
    env: dict[str, Any] = {"text": case.text, "fields": case.fields,
                           "case": {"id": case.id, "text": case.text, "fields": case.fields}}
    facts: dict[str, list[Mapping[str, Any]]] = {}
    for fact in view.all():
        facts.setdefault(fact.kind, []).append(fact.data)
        env[fact.kind] = {**fact.data, "confidence": fact.confidence}
    env["facts"] = facts
    return env


def _first_set(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _normalize(node: StageNode, raw: Any) -> StageOutput:
    if raw is None:
        return StageOutput()
    if isinstance(raw, StageOutput):
        if raw.confidence is None:
            raw.confidence = _last_confidence(raw.facts)
        return raw
    if isinstance(raw, (list, tuple)):
        facts = list(raw)
        return StageOutput(facts, _last_confidence(facts))
    raise StageOutputError(node.id, f"returned {type(raw).__name__}; return a list of NewFact, "
                           "a StageOutput, or None")


def _last_confidence(facts: Sequence[Any]) -> float | None:
    for draft in reversed(facts):
        conf = getattr(draft, "confidence", None)
        if conf is not None:
            return float(conf)
    return None


def _check_draft(node: StageNode, draft: Any, allowed: Sequence[str],
                 fact_types: Mapping[str, Any]) -> None:
    if not isinstance(draft, NewFact):
        raise StageOutputError(node.id, f"returned a {type(draft).__name__} among its facts; "
                               "wrap each in hybrid_ai.NewFact(kind, data)")
    if draft.kind not in allowed:
        raise StageOutputError(node.id, f"produced fact kind {draft.kind!r} that it does not "
                               f"declare; its produces: {', '.join(allowed) or 'nothing'}")
    if not isinstance(draft.data, Mapping):
        raise StageOutputError(node.id, f"fact {draft.kind!r} has {type(draft.data).__name__} "
                               "data; facts hold a mapping")
    schema = fact_types.get(draft.kind)
    if schema is not None:
        try:
            schema.model_validate(dict(draft.data))
        except Exception as exc:
            raise StageOutputError(node.id, f"fact {draft.kind!r} does not match its "
                                   f"schema: {exc}") from None


def _rebind(hit: StageOutput, view: FactView, node: StageNode) -> StageOutput:
    """Cached drafts now derive from this case's facts of the kinds the stage requires."""
    inputs = [f for kind in node.stage.requires for f in view.of(kind)] or view.of("input")
    facts = [NewFact(d.kind, d.data, d.confidence, inputs, d.source,
                     {**d.detail, "cached": True}) for d in hit.facts]
    return StageOutput(facts, hit.confidence)
