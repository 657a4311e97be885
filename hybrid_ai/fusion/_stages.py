"""Fusion stages: ``fuse`` combines model predictions; ``decide`` applies rule decisions by
precedence (veto > override > the model's answer > advise) and writes the final decision.

    - stage: fuse
      with: {strategy: soft_vote, weights: {tfidf-lr: 1.0, few-shot: 0.5}, output: intent}
    - stage: decide
      with: {base: intent}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import UnknownComponentError
from .._facts import Fact, FactView, NewFact
from .._plugins import active_plugins
from .._stage import BaseStage

__all__ = ["DecideStage", "FuseStage"]

STRENGTHS = ("veto", "override", "advise")


class FuseStage(BaseStage):
    """Fuses ``prediction`` facts into one fact of kind ``output`` (label, proba, models)."""

    requires = ("prediction",)

    def __init__(self, *, strategy: str = "soft_vote", weights: Mapping[str, float] | None = None,
                 output: str = "intent", top_k: int = 5) -> None:
        # The pipeline's plugins may register strategies of their own (hybrid_ai_fusion_strategies).
        strategies = active_plugins().fusion_strategies
        if strategy not in strategies:
            raise UnknownComponentError("fusion strategy", strategy, strategies.names())
        super().__init__(strategy=strategy, weights=dict(weights or {}), output=output,
                         top_k=top_k)
        self.strategy, self.weights = strategies.get(strategy), dict(weights or {})
        self.output, self.top_k = output, top_k
        self.produces = (output,)

    def process(self, view: FactView) -> list[NewFact]:
        predictions = view.of("prediction")
        scores = self.strategy(predictions, self.weights)
        if not scores:
            empty = {"label": None, "abstain": True, "reason": "no prediction to fuse"}
            return [NewFact(self.output, empty, derived_from=predictions)]
        label, score = next(iter(scores.items()))
        data: dict[str, Any] = {
            "label": label,
            "proba": dict(list(scores.items())[: self.top_k]),
            "models": [p.data.get("model") for p in predictions],
            "strategy": self.params["strategy"],
        }
        return [NewFact(self.output, data, confidence=score, derived_from=predictions,
                        source=f"fusion:{self.params['strategy']}")]


class DecideStage(BaseStage):
    """Writes the final ``decision``: the strongest rule decision, else the ``base`` fact's label.

    A veto can never be overruled; an override replaces the model's answer; advice counts only
    when there is no model answer. With nothing to go on, the decision is an abstention with a
    reason. ``min_confidence`` makes a low-confidence model answer abstain too.
    """

    produces = ("decision",)

    def __init__(self, *, base: str | None = None, min_confidence: float = 0.0) -> None:
        super().__init__(base=base, min_confidence=min_confidence)
        self.base, self.min_confidence = base, min_confidence

    def process(self, view: FactView) -> list[NewFact]:
        proposals = [f for f in view.of("decision") if not f.data.get("final")]
        by_strength = {s: [f for f in proposals if f.data.get("strength") == s] for s in STRENGTHS}
        base = view.last(self.base) if self.base else None
        for strength in ("veto", "override"):
            if by_strength[strength]:
                return [self._final(_strongest(by_strength[strength]), proposals, base)]
        if base is not None and base.data.get("label") is not None:
            return [self._from_base(base, proposals)]
        if by_strength["advise"]:
            return [self._final(_strongest(by_strength["advise"]), proposals, base)]
        return [_abstain("no rule decided and no model answered", proposals)]

    def _final(self, chosen: Fact, proposals: Sequence[Fact], base: Fact | None) -> NewFact:
        overruled = [f for f in proposals if f is not chosen]
        if base is not None:
            overruled.append(base)
        data = {k: v for k, v in chosen.data.items() if k != "final"}
        data.update(final=True, overruled=[f.id for f in overruled],
                    alternatives=_alternatives(base, chosen))
        # A model's confidence belongs to its own label: a rule choosing another label gets none.
        agrees = base is not None and base.data.get("label") == chosen.data.get("label")
        confidence = chosen.confidence if chosen.confidence is not None else (
            base.confidence if base is not None and agrees else None)
        return NewFact("decision", data, confidence=confidence, derived_from=[chosen, *overruled],
                       source=chosen.provenance.source,
                       detail={"precedence": chosen.data.get("strength")})

    def _from_base(self, base: Fact, proposals: Sequence[Fact]) -> NewFact:
        if base.confidence is not None and base.confidence < self.min_confidence:
            return _abstain(f"{self.base} confidence {base.confidence:.2f} is below "
                            f"{self.min_confidence:g}", [base, *proposals])
        data = {"label": base.data["label"], "final": True, "strength": "model",
                "reason": f"{self.base} from {base.provenance.source}",
                "alternatives": dict(base.data.get("proba") or {})}
        return NewFact("decision", data, confidence=base.confidence,
                       derived_from=[base, *proposals], source=base.provenance.source)


def _strongest(facts: Sequence[Fact]) -> Fact:
    return max(facts, key=lambda f: (float(f.data.get("salience", 0)), f.confidence or 0.0))


def _alternatives(base: Fact | None, chosen: Fact) -> dict[str, Any]:
    if base is None:
        return {}
    proba = dict(base.data.get("proba") or {})
    proba.pop(chosen.data.get("label"), None)
    return proba


def _abstain(reason: str, facts: Sequence[Fact]) -> NewFact:
    data = {"label": None, "abstain": True, "final": True, "reason": reason}
    return NewFact("decision", data, derived_from=list(facts), source="decide")
