"""What a run returns: the decision, its confidence and alternatives, every fact, the trace of
each stage, and one explanation that walks the provenance from the decision back to the input.

    result = engine.run("my card was stolen")
    result.decision, result.confidence, result.alternatives
    print(result.explain().text()); result.explain().to_mermaid()
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

from ._facts import Case, Fact

__all__ = ["Explanation", "Result", "StageTrace"]

# "failed"/"timeout" traces carry a note when on_error=skip or fallback let the case go on.
Status = Literal["ok", "cached", "failed", "timeout", "not_run"]


@dataclass
class StageTrace:
    """What happened to one stage for one case."""

    stage: str
    component: str
    status: Status = "ok"
    seconds: float = 0.0
    attempts: int = 0
    facts: tuple[int, ...] = ()
    confidence: float | None = None
    cost: float = 0.0
    error: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Result:
    """The outcome for one case; ``error`` is set (and ``ok`` False) when the case failed."""

    case: Case
    facts: tuple[Fact, ...]
    trace: tuple[StageTrace, ...]
    pipeline: str = ""
    version: str = ""
    error: str | None = None
    seconds: float = 0.0
    _final: Fact | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._final is None:
            self._final = _final_fact(self.facts)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def decision_fact(self) -> Fact | None:
        """The fact holding the final decision (a ``decision``, else the last ``prediction``)."""
        return self._final

    @property
    def decision(self) -> Any:
        """The decided label or value, or None when nothing decided."""
        fact = self._final
        if fact is None:
            return None
        return fact.data.get("label", fact.data.get("value"))

    @property
    def abstained(self) -> bool:
        return self._final is not None and bool(self._final.data.get("abstain"))

    @property
    def confidence(self) -> float | None:
        return self._final.confidence if self._final is not None else None

    @property
    def alternatives(self) -> list[tuple[Any, float]]:
        """Other labels with their scores, best first."""
        if self._final is None:
            return []
        alts = self._final.data.get("alternatives") or self._final.data.get("proba") or {}
        pairs = alts.items() if isinstance(alts, Mapping) else alts
        ranked = sorted(((k, float(v)) for k, v in pairs), key=lambda kv: -kv[1])
        return [(k, v) for k, v in ranked if k != self.decision]

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage id."""
        return {t.stage: t.seconds for t in self.trace}

    def of(self, kind: str) -> list[Fact]:
        """Every fact of one kind."""
        return [f for f in self.facts if f.kind == kind]

    def explain(self) -> Explanation:
        """The provenance of the decision as text, JSON, a networkx graph, DOT or Mermaid."""
        return Explanation(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (facts without large vectors)."""
        return {
            "case": self.case.id,
            "ok": self.ok,
            "error": self.error,
            "decision": self.decision,
            "confidence": self.confidence,
            "alternatives": self.alternatives[:5],
            "pipeline": self.pipeline,
            "version": self.version,
            "seconds": round(self.seconds, 6),
            "trace": [t.to_dict() for t in self.trace],
        }


def _final_fact(facts: Sequence[Fact]) -> Fact | None:
    decisions = [f for f in facts if f.kind == "decision"]
    finals = [f for f in decisions if f.data.get("final")]
    for group in (finals, decisions, [f for f in facts if f.kind == "prediction"]):
        if group:
            return group[-1]
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value] if len(value) <= 32 else f"<{len(value)} values>"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"<array {tuple(value.shape)} {value.dtype}>"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _summary(fact: Fact) -> str:
    data = fact.data
    for key in ("label", "value", "name", "node", "text"):
        if key in data and not isinstance(data[key], Mapping):
            text = str(data[key])
            return text if len(text) <= 60 else text[:57] + "..."
    return ", ".join(sorted(map(str, data)))[:60]


class Explanation:
    """One record of why: the decision's provenance, back to the input."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self._by_id = {f.id: f for f in result.facts}
        self.graph = self._build_graph()

    def _build_graph(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        for fact in self.result.facts:
            graph.add_node(fact.id, kind=fact.kind, stage=fact.provenance.stage,
                           source=fact.provenance.source, summary=_summary(fact),
                           confidence=fact.confidence)
            for parent in fact.provenance.inputs:
                graph.add_edge(parent, fact.id)
        return graph

    def support(self) -> list[Fact]:
        """The facts the decision rests on, input first."""
        final = self.result.decision_fact
        if final is None:
            return []
        ids = nx.ancestors(self.graph, final.id) | {final.id}
        return [self._by_id[i] for i in sorted(ids)]

    def text(self) -> str:
        """A readable account: the decision, its chain of evidence, and the stage trace."""
        res = self.result
        lines = [_headline(res)]
        for fact in reversed(self.support()):
            lines.append("  " + _fact_line(fact))
        lines.append("  stages: " + "; ".join(_trace_word(t) for t in res.trace))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.result.to_dict(),
            "support": [_fact_dict(f) for f in self.support()],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def to_dot(self) -> str:
        """Graphviz DOT of the decision's provenance."""
        keep = {f.id for f in self.support()}
        lines = ["digraph provenance {", "  rankdir=LR;"]
        for node in sorted(keep):
            attrs = self.graph.nodes[node]
            label = f"{attrs['kind']}: {attrs['summary']}\\n[{attrs['source']}]".replace('"', "'")
            lines.append(f'  f{node} [label="{label}"];')
        lines += [f"  f{a} -> f{b};" for a, b in self.graph.edges if a in keep and b in keep]
        return "\n".join([*lines, "}"])

    def to_mermaid(self) -> str:
        """Mermaid flowchart of the decision's provenance."""
        keep = {f.id for f in self.support()}
        lines = ["flowchart LR"]
        for node in sorted(keep):
            attrs = self.graph.nodes[node]
            label = f"{attrs['kind']}: {attrs['summary']}".replace('"', "'")
            lines.append(f'  f{node}["{label}"]')
        lines += [f"  f{a} --> f{b}" for a, b in self.graph.edges if a in keep and b in keep]
        return "\n".join(lines)


def _headline(res: Result) -> str:
    if not res.ok:
        return f"case {res.case.id}: FAILED: {res.error}"
    if res.decision_fact is None:
        return f"case {res.case.id}: no decision"
    conf = f" (confidence {res.confidence:.2f})" if res.confidence is not None else ""
    extra = {k: v for k, v in res.decision_fact.data.items() if k in ("priority", "strength")}
    if extra:
        conf += " [" + ", ".join(f"{k}: {v}" for k, v in extra.items()) + "]"
    reason = res.decision_fact.data.get("reason")
    because = f" because {reason}" if reason else ""
    return f"case {res.case.id}: decision {res.decision!r}{conf}{because}"


def _fact_line(fact: Fact) -> str:
    conf = f" p={fact.confidence:.2f}" if fact.confidence is not None else ""
    prov = fact.provenance
    origin = f"{prov.stage}" + (f"/{prov.source}" if prov.source != prov.stage else "")
    return f"#{fact.id} {fact.kind}: {_summary(fact)}{conf}  <- {origin}"


def _trace_word(trace: StageTrace) -> str:
    return f"{trace.stage} {trace.status} {trace.seconds * 1000:.1f}ms"


def _fact_dict(fact: Fact) -> dict[str, Any]:
    prov = fact.provenance
    return {
        "id": fact.id, "kind": fact.kind, "data": _jsonable(fact.data),
        "confidence": fact.confidence,
        "provenance": {"stage": prov.stage, "source": prov.source, "inputs": list(prov.inputs),
                       "detail": _jsonable(prov.detail)},
    }
