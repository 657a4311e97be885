"""The executable graph: serial, parallel, route and cascade nodes over stages.

``build_graph`` resolves every component, instantiates stages (cheap: no model loads), compiles
route conditions and checks the wiring. Every problem (unknown component, bad parameters, a
required fact nobody produces upstream, a fan-in without a merge policy, a ``use`` cycle, a
duplicate id) is collected and raised together as one PipelineError with file:line.

    graph = build_graph(read_pipeline("p.yaml"), Plugins.default())
    print(graph.explain_plan())
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from pydantic import ValidationError

from ._config import (
    CascadeSpec,
    Node,
    ParallelSpec,
    PipelineSpec,
    RouteSpec,
    SerialSpec,
    StageSpec,
    UseSpec,
)
from ._errors import (
    ExpressionError,
    HybridAIError,
    Location,
    PipelineError,
    Problem,
    UnknownComponentError,
)
from ._expr import Expression, compile_expression
from ._facts import INPUT_KIND
from ._plugins import _ACTIVE, Plugins
from ._stage import Stage

__all__ = [
    "CascadeNode",
    "Graph",
    "GraphNode",
    "ParallelNode",
    "RouteNode",
    "SerialNode",
    "StageNode",
    "build_graph",
]

ROUTE_NAMES = frozenset({"text", "fields", "case", "facts"})


@dataclass(eq=False)
class StageNode:
    """One stage with its policy; ``fallback`` runs when it fails and ``on_error`` says so."""

    id: str
    component: str
    stage: Stage
    location: Location
    timeout: float | None = None
    retries: int = 0
    backoff: float = 0.05
    on_error: str = "fail"
    fallback: StageNode | None = None
    cache: bool = False
    cost: float = 0.0
    threshold: float | None = None
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        # Decided once here: inspecting the method on every run costs ~8% of a trivial stage.
        self.is_async = inspect.iscoroutinefunction(self.stage.process)


@dataclass(eq=False)
class SerialNode:
    children: list[GraphNode]
    location: Location


@dataclass(eq=False)
class ParallelNode:
    branches: list[GraphNode]
    merge_name: str
    merge: Callable[..., Any]
    location: Location


@dataclass(eq=False)
class RouteNode:
    branches: list[tuple[Expression, GraphNode]]
    default: GraphNode | None
    location: Location


@dataclass(eq=False)
class CascadeNode:
    steps: list[StageNode]
    budget: float | None
    order: str
    location: Location


GraphNode = Union[StageNode, SerialNode, ParallelNode, RouteNode, CascadeNode]  # noqa: UP007


@dataclass
class Graph:
    """A checked pipeline, ready to warm up and run."""

    name: str
    root: GraphNode
    spec: PipelineSpec
    plugins: Plugins
    produces: frozenset[str] = field(default_factory=frozenset)

    def stages(self) -> list[StageNode]:
        """Every stage node, fallbacks included, in declaration order."""
        return list(_walk_stages(self.root))

    def explain_plan(self) -> str:
        """A readable outline: order, parallel groups, route conditions, cascade thresholds."""
        from ._plan import render_plan

        return render_plan(self)

    def plan(self) -> dict[str, Any]:
        """The outline as JSON-ready data."""
        from ._plan import plan_data

        return plan_data(self)


def _walk_stages(node: GraphNode) -> Iterator[StageNode]:
    if isinstance(node, StageNode):
        yield node
        if node.fallback is not None:
            yield from _walk_stages(node.fallback)
    elif isinstance(node, SerialNode):
        for child in node.children:
            yield from _walk_stages(child)
    elif isinstance(node, ParallelNode):
        for branch in node.branches:
            yield from _walk_stages(branch)
    elif isinstance(node, RouteNode):
        for _, branch in node.branches:
            yield from _walk_stages(branch)
        if node.default is not None:
            yield from _walk_stages(node.default)
    else:
        yield from node.steps


class _Builder:
    def __init__(self, spec: PipelineSpec, plugins: Plugins) -> None:
        self.spec, self.plugins = spec, plugins
        self.problems: list[Problem] = []
        self.ids: dict[str, Location] = {}
        self.uses: dict[str, int] = {}
        self.prefix = ""
        self.functions = dict(plugins.rule_functions.items())

    def fail(self, message: str, where: Location, hint: str | None = None) -> None:
        self.problems.append(Problem(message, where, hint))

    def node(self, spec: Node, have: frozenset[str],
             uses: tuple[str, ...]) -> tuple[Any, frozenset[str]]:
        if isinstance(spec, StageSpec):
            return self.stage(spec, have)
        if isinstance(spec, SerialSpec):
            return self.serial(spec, have, uses)
        if isinstance(spec, ParallelSpec):
            return self.parallel(spec, have, uses)
        if isinstance(spec, RouteSpec):
            return self.route(spec, have, uses)
        if isinstance(spec, CascadeSpec):
            return self.cascade(spec, have)
        return self.use(spec, have, uses)

    def serial(self, spec: SerialSpec, have: frozenset[str],
             uses: tuple[str, ...]) -> tuple[Any, frozenset[str]]:
        children = []
        for child_spec in spec.serial:
            child, have = self.node(child_spec, have, uses)
            children.append(child)
        return SerialNode(children, spec.location), have

    def parallel(self, spec: ParallelSpec, have: frozenset[str],
             uses: tuple[str, ...]) -> tuple[Any, frozenset[str]]:
        body, produced = spec.parallel, set(have)
        branches = []
        for branch_spec in body.branches:
            branch, out = self.node(branch_spec, have, uses)
            branches.append(branch)
            produced |= out
        merge = self.merge_policy(body.merge, body.location)
        return ParallelNode(branches, body.merge or "", merge, body.location), frozenset(produced)

    def merge_policy(self, name: str | None, where: Location) -> Any:
        names = ", ".join(self.plugins.merge_policies.names())
        if name is None:
            self.fail("parallel node has no merge policy for its fan-in", where,
                      f"add `merge:` with one of: {names}")
            return None
        if name not in self.plugins.merge_policies:
            self.fail(f"unknown merge policy {name!r}", where, f"use one of: {names}")
            return None
        return self.plugins.merge_policies.get(name)

    def route(self, spec: RouteSpec, have: frozenset[str],
             uses: tuple[str, ...]) -> tuple[Any, frozenset[str]]:
        body, produced = spec.route, set(have)
        branches = []
        for branch in body.branches:
            condition = self.condition(branch.when, have, branch.when_location)
            node, out = self.node(branch.then, have, uses)
            branches.append((condition, node))
            produced |= out
        default = None
        if body.default is not None:
            default, out = self.node(body.default, have, uses)
            produced |= out
        return RouteNode(branches, default, body.location), frozenset(produced)

    def condition(self, text: str, have: frozenset[str], where: Location) -> Any:
        try:
            return compile_expression(text, functions=self.functions,
                                      names=ROUTE_NAMES | have, location=where)
        except ExpressionError as exc:
            self.fail(f"route condition: {exc.message}", exc.location, exc.hint)
            return None

    def cascade(self, spec: CascadeSpec,
                have: frozenset[str]) -> tuple[Any, frozenset[str]]:
        body, produced = spec.cascade, set(have)
        steps = []
        for step_spec in body.stages:
            step, out = self.stage(step_spec, have)
            steps.append(step)
            produced |= out
        if body.order == "cost":
            steps.sort(key=lambda s: s.cost if s is not None else 0.0)
        for step in steps[:-1]:
            if step is not None and step.threshold is None:
                self.fail(f"cascade stage {step.id!r} has no threshold, so the cascade can never "
                          "stop there", step.location, "set `threshold:` between 0 and 1")
        return CascadeNode(steps, body.budget, body.order, body.location), frozenset(produced)

    def use(self, spec: UseSpec, have: frozenset[str],
             uses: tuple[str, ...]) -> tuple[Any, frozenset[str]]:
        if spec.use in uses:
            cycle = " -> ".join((*uses[uses.index(spec.use):], spec.use))
            self.fail(f"cycle in `use`: {cycle}", spec.location, "a node cannot contain itself")
            return None, have
        if spec.use not in self.spec.define:
            names = ", ".join(sorted(self.spec.define)) or "none defined"
            self.fail(f"`use: {spec.use}` names nothing under `define:`", spec.location,
                      f"defined: {names}")
            return None, have
        count = self.uses[spec.use] = self.uses.get(spec.use, 0) + 1
        # A second use of one definition gets its own ids ("tail#2/decide"), so traces stay clear.
        outer, self.prefix = self.prefix, (f"{self.prefix}{spec.use}#{count}/" if count > 1
                                           else self.prefix)
        try:
            return self.node(self.spec.define[spec.use], have, (*uses, spec.use))
        finally:
            self.prefix = outer

    def unused(self, have: frozenset[str]) -> None:
        """Check definitions nothing uses, against every kind the pipeline produces."""
        for name, node_spec in self.spec.define.items():
            if name not in self.uses:
                self.prefix = f"{name}(unused)/"
                self.node(node_spec, have, (name,))
        self.prefix = ""

    def stage(self, spec: StageSpec, have: frozenset[str]) -> tuple[Any, frozenset[str]]:
        node_id = self.prefix + spec.node_id
        self.claim_id(node_id, spec.location)
        instance = spec._instance or self.instantiate(spec)
        if instance is None:
            return None, have
        self.check_requires(spec, instance, have)
        fallback = None
        if spec.fallback is not None:
            fallback, _ = self.stage(spec.fallback, have)
        elif spec.on_error == "fallback":
            self.fail(f"stage {spec.node_id!r} has on_error: fallback but no `fallback:` stage",
                      spec.location, "add `fallback: {stage: ...}` or use on_error: skip")
        node = StageNode(
            id=node_id, component=spec.stage, stage=instance, location=spec.location,
            timeout=spec.timeout, retries=spec.retries, backoff=spec.backoff,
            on_error=spec.on_error, fallback=fallback, cache=spec.cache,
            cost=spec.cost if spec.cost is not None else float(getattr(instance, "cost", 0.0)),
            threshold=spec.threshold,
        )
        return node, have | frozenset(instance.produces)

    def claim_id(self, node_id: str, where: Location) -> None:
        if node_id in self.ids:
            self.fail(f"duplicate stage id {node_id!r} (first used at {self.ids[node_id]})",
                      where, "give each stage a unique `id:`")
        self.ids.setdefault(node_id, where)

    def instantiate(self, spec: StageSpec) -> Stage | None:
        try:
            factory = self.plugins.stages.get(spec.stage)
        except UnknownComponentError as exc:
            self.fail(f"unknown stage component {spec.stage!r}", spec.location,
                      "available: " + ", ".join(exc.available))
            return None
        params = _resolve_paths(spec.with_, self.spec.base_dir)
        try:
            stage = factory(**params)
        except (TypeError, ValueError, ValidationError, HybridAIError) as exc:
            # A component's own message says most; Python's TypeErrors ("expected str, not
            # int") name no parameter, which the declared types can.
            why = (_mistyped(factory, params) if type(exc) is TypeError else None) or str(exc)
            self.fail(f"stage {spec.node_id!r} ({spec.stage}): invalid parameters: {why}",
                      spec.location, _signature_hint(factory))
            return None
        return self.check_contract(spec, stage)

    def check_contract(self, spec: StageSpec, stage: Any) -> Stage | None:
        wanted = ("requires", "produces", "process", "warm_up")
        missing = [a for a in wanted if not hasattr(stage, a)]
        if missing:
            self.fail(f"component {spec.stage!r} does not meet the stage contract: missing "
                      + ", ".join(missing), spec.location, "derive from hybrid_ai.BaseStage")
            return None
        return stage  # type: ignore[no-any-return]

    def check_requires(self, spec: StageSpec, stage: Stage, have: frozenset[str]) -> None:
        for kind in stage.requires:
            if kind not in have:
                self.fail(
                    f"stage {spec.node_id!r} requires fact {kind!r}, which no earlier stage "
                    "produces", spec.location,
                    f"add a stage producing {kind!r} before it; available: "
                    + ", ".join(sorted(have)))


def _mistyped(factory: Callable[..., Any], params: Mapping[str, Any]) -> str | None:
    """After a factory refused its parameters: the ones whose values do not fit their declared
    types, by name (the factory's own error often names no parameter: "expected str, not
    int"). None when the annotations cannot say."""
    import typing

    from pydantic import TypeAdapter

    target = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # annotations naming what is not importable here: no verdict
        return None
    wrong = []
    for name, value in params.items():
        if hints.get(name, Any) is Any:
            continue
        try:
            TypeAdapter(hints[name]).validate_python(value)
        except ValidationError:
            wrong.append(f"{name} must be {_type_name(hints[name])}, not "
                         f"{type(value).__name__} {value!r}")
        except Exception:  # a type pydantic cannot check
            continue
    return "; ".join(wrong) or None


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _signature_hint(factory: Callable[..., Any]) -> str:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return "see the component's documentation"
    names = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY or p.default is not p.empty]
    return "parameters: " + (", ".join(names) or "none")


def _resolve_paths(params: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Parameters named ``path`` or ``*_path`` are files relative to the pipeline's folder."""
    out = dict(params)
    for key, value in params.items():
        if (key == "path" or key.endswith("_path")) and isinstance(value, str):
            candidate = Path(value)
            out[key] = str(candidate if candidate.is_absolute() else base / candidate)
    return out


def build_graph(spec: PipelineSpec, plugins: Plugins) -> Graph:
    """Build and check the whole graph; raises PipelineError listing every problem."""
    builder = _Builder(spec, plugins)
    token = _ACTIVE.set(plugins)
    try:
        root, produced = builder.node(spec.pipeline, frozenset({INPUT_KIND}), ())
        builder.unused(produced)
    finally:
        _ACTIVE.reset(token)
    if builder.problems:
        file = spec._file or spec.name
        raise PipelineError(f"pipeline {file} has {len(builder.problems)} problem(s)",
                            builder.problems)
    return Graph(spec.name, root, spec, plugins, produced)
