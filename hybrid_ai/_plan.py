"""Renders a graph's plan: run order, parallel groups, route conditions, cascade thresholds.

    print(graph.explain_plan())      # the outline `hybrid-ai plan` prints
    graph.plan()                     # the same as JSON-ready data
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._graph import CascadeNode, GraphNode, ParallelNode, RouteNode, SerialNode, StageNode

if TYPE_CHECKING:
    from ._graph import Graph

__all__ = ["plan_data", "render_plan"]


def plan_data(graph: Graph) -> dict[str, Any]:
    """The graph as nested dicts."""
    return {"name": graph.name, "stages": len(graph.stages()), "root": _data(graph.root),
            "produces": sorted(graph.produces)}


def _data(node: GraphNode) -> dict[str, Any]:
    if isinstance(node, StageNode):
        return _stage_data(node)
    if isinstance(node, SerialNode):
        return {"serial": [_data(c) for c in node.children]}
    if isinstance(node, ParallelNode):
        return {"parallel": {"merge": node.merge_name,
                             "branches": [_data(b) for b in node.branches]}}
    if isinstance(node, RouteNode):
        branches = [{"when": cond.source, "then": _data(b)} for cond, b in node.branches]
        default = _data(node.default) if node.default is not None else None
        return {"route": {"branches": branches, "default": default}}
    return {"cascade": {"budget": node.budget, "order": node.order,
                        "stages": [_stage_data(s) for s in node.steps]}}


def _stage_data(node: StageNode) -> dict[str, Any]:
    stage = node.stage
    data: dict[str, Any] = {
        "id": node.id, "component": node.component, "requires": list(stage.requires),
        "produces": list(stage.produces), "blocking": bool(stage.blocking), "cost": node.cost,
        "on_error": node.on_error, "retries": node.retries, "timeout": node.timeout,
        "cache": node.cache, "threshold": node.threshold, "line": node.location.line,
    }
    if node.fallback is not None:
        data["fallback"] = _stage_data(node.fallback)
    return data


def render_plan(graph: Graph) -> str:
    """An indented outline, numbered in run order."""
    lines = [f"pipeline {graph.name!r}: {len(graph.stages())} stage(s)"]
    _render(graph.root, lines, "", "")
    lines.append("produces: " + ", ".join(sorted(graph.produces)))
    return "\n".join(lines)


def _render(node: GraphNode, lines: list[str], number: str, indent: str) -> None:
    if isinstance(node, StageNode):
        lines.append(f"{indent}{number} {_stage_line(node)}".rstrip())
    elif isinstance(node, SerialNode):
        if number:
            lines.append(f"{indent}{number} serial")
        _children(node.children, lines, number, indent + ("   " if number else ""))
    elif isinstance(node, ParallelNode):
        lines.append(f"{indent}{number} parallel group (concurrent; merge: {node.merge_name})")
        _children(node.branches, lines, number, indent + " | ")
    elif isinstance(node, RouteNode):
        lines.append(f"{indent}{number} route (first true condition)")
        for i, (cond, branch) in enumerate(node.branches, 1):
            lines.append(f"{indent}   when {cond.source}:")
            _render(branch, lines, f"{number}.{i}".lstrip("."), indent + "      ")
        if node.default is not None:
            lines.append(f"{indent}   otherwise:")
            _render(node.default, lines, f"{number}.d".lstrip("."), indent + "      ")
    else:
        _render_cascade(node, lines, number, indent)


def _children(nodes: list[GraphNode], lines: list[str], number: str, indent: str) -> None:
    for i, child in enumerate(nodes, 1):
        _render(child, lines, f"{number}.{i}".lstrip("."), indent)


def _render_cascade(node: CascadeNode, lines: list[str], number: str, indent: str) -> None:
    budget = f"budget {node.budget:g}" if node.budget is not None else "no budget"
    lines.append(f"{indent}{number} cascade ({node.order} order, {budget})")
    for i, step in enumerate(node.steps, 1):
        stop = f"stop if confidence >= {step.threshold:g}" if step.threshold is not None else "last"
        lines.append(f"{indent}   {number}.{i} {_stage_line(step)} -> {stop}".replace(" .", " "))


def _stage_line(node: StageNode) -> str:
    stage = node.stage
    parts = [node.id if node.id == node.component else f"{node.id} [{node.component}]"]
    if stage.requires:
        parts.append("needs " + ",".join(stage.requires))
    if stage.produces:
        parts.append("-> " + ",".join(stage.produces))
    flags = [f for f, on in (("blocking", stage.blocking), ("cached", node.cache)) if on]
    if node.cost:
        flags.append(f"cost {node.cost:g}")
    if node.timeout is not None:
        flags.append(f"timeout {node.timeout:g}s")
    if node.retries:
        flags.append(f"retries {node.retries}")
    if node.on_error != "fail":
        target = f" {node.fallback.id}" if node.fallback is not None else ""
        flags.append(f"on_error {node.on_error}{target}")
    return "  ".join(parts) + (f"  ({', '.join(flags)})" if flags else "")
