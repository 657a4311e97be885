"""Fusion stages: ``fuse`` combines model predictions; ``decide`` applies rule decisions by
precedence (veto > override > the model's answer > advise) and writes the final decision.

    - stage: fuse
      with: {strategy: soft_vote, weights: {tfidf-lr: 1.0, few-shot: 0.5}, output: intent,
             min_confidence: 0.4, abstain_on_disagreement: false}
    - stage: decide
      with: {base: intent}

Learned strategies (``weighted_average``, ``stacking``, ``gating``) are trained by
``hybrid-ai train`` on validation cases and loaded with ``model: DIR`` (``DIR/fusion.json``).
``fuse`` abstains, with the reason, when the fused confidence is below ``min_confidence`` or,
with ``abstain_on_disagreement``, when the models' top labels differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._errors import ConfigError, InputError, UnknownComponentError
from .._facts import Fact, FactView, NewFact
from .._files import read_text
from .._plugins import active_plugins
from .._stage import BaseStage

__all__ = ["DecideStage", "FuseStage"]

STRENGTHS = ("veto", "override", "advise")
FUSION_FILE = "fusion.json"


class FuseStage(BaseStage):
    """Fuses ``prediction`` facts into one fact of kind ``output`` (label, proba, models)."""

    requires = ("prediction",)
    fit_on = "validation"  # learned fusions fit on out-of-sample member predictions

    def __init__(self, *, strategy: str = "soft_vote", weights: Mapping[str, float] | None = None,
                 output: str = "intent", top_k: int = 5, model: str | None = None,
                 min_confidence: float = 0.0, abstain_on_disagreement: bool = False) -> None:
        # The pipeline's plugins may register strategies of their own (hybrid_ai_fusion_strategies).
        strategies = active_plugins().fusion_strategies
        if strategy not in strategies:
            raise UnknownComponentError("fusion strategy", strategy, strategies.names())
        super().__init__(strategy=strategy, weights=dict(weights or {}), output=output,
                         top_k=top_k, model=model, min_confidence=min_confidence,
                         abstain_on_disagreement=abstain_on_disagreement)
        self.strategy, self.weights = strategies.get(strategy), dict(weights or {})
        self.output, self.top_k = output, top_k
        self.produces = (output,)
        self.fitted: dict[str, Any] | None = None

    @property
    def trainable(self) -> bool:
        """Whether ``hybrid-ai train`` fits this stage (only learned strategies are fitted)."""
        return callable(getattr(self.strategy, "fit", None))

    def record(self, view: FactView) -> Any:
        from ._learned import samples_of

        return samples_of(view.of("prediction"))

    def fit_records(self, records: Sequence[Any], labels: Sequence[Any], **_: Any) -> Any:
        """Fit the learned strategy on per-case member predictions; returns its parameters."""
        if not self.trainable:
            raise ConfigError(f"fusion strategy {self.params['strategy']!r} learns nothing")
        self.fitted = dict(self.strategy.fit(list(records), [str(y) for y in labels]))  # type: ignore[attr-defined]
        return {"strategy": self.params["strategy"], "params": self.fitted,
                "n_fit": len(records)}

    def save(self, directory: str | Path) -> Path:
        """Write ``fusion.json`` (plain JSON: weights and coefficients)."""
        if self.fitted is None:
            raise ConfigError("fuse: nothing to save, the strategy is not fitted")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FUSION_FILE
        body = {"strategy": self.params["strategy"], "params": self.fitted}
        path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        return path

    def warm_up(self) -> None:
        if self.fitted is not None or not self.trainable:
            return
        if self.params["model"]:
            self.fitted = _read_fusion(self.params["model"], self.params["strategy"])
        elif getattr(self.strategy, "needs_fit", True):
            raise ConfigError(f"fusion strategy {self.params['strategy']!r} must be trained: run "
                              "`hybrid-ai train PIPELINE --data train.csv` and set `model:` to "
                              "the folder it writes for this stage")

    def process(self, view: FactView) -> list[NewFact]:
        predictions = view.of("prediction")
        if self.trainable and self.fitted is None:
            self.warm_up()
        scores = self.strategy(predictions, self.fitted or self.weights) if predictions else {}
        if not scores:
            return [self._abstain("no prediction to fuse", predictions)]
        label, score = next(iter(scores.items()))
        why = self._doubt(predictions, score)
        if why:
            return [self._abstain(why, predictions, scores)]
        data: dict[str, Any] = {
            "label": label,
            "proba": dict(list(scores.items())[: self.top_k]),
            "models": [p.data.get("model") for p in predictions],
            "strategy": self.params["strategy"],
        }
        return [NewFact(self.output, data, confidence=score, derived_from=predictions,
                        source=f"fusion:{self.params['strategy']}")]

    def _doubt(self, predictions: Sequence[Fact], score: float) -> str | None:
        if score < self.params["min_confidence"]:
            return f"fused confidence {score:.2f} is below {self.params['min_confidence']:g}"
        if self.params["abstain_on_disagreement"]:
            tops = {str(p.data.get("model")): p.data.get("label") for p in predictions}
            if len(set(tops.values())) > 1:
                said = ", ".join(f"{m} says {label}" for m, label in sorted(tops.items()))
                return f"the models disagree: {said}"
        return None

    def _abstain(self, reason: str, predictions: Sequence[Fact],
                 scores: Mapping[str, float] | None = None) -> NewFact:
        data = {"label": None, "abstain": True, "reason": reason,
                "proba": dict(list((scores or {}).items())[: self.top_k]),
                "strategy": self.params["strategy"]}
        return NewFact(self.output, data, derived_from=predictions,
                       source=f"fusion:{self.params['strategy']}")


_RETRAIN = "train it again with `hybrid-ai train PIPELINE --data train.csv`"


def _read_fusion(directory: str, strategy: str) -> dict[str, Any]:
    path = Path(directory) / FUSION_FILE
    try:
        body = json.loads(read_text(path, "fitted fusion", InputError))
    except InputError as exc:
        raise InputError(f"{exc}; or {_RETRAIN}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: the fitted fusion is not valid "
                         f"JSON ({exc.msg}); {_RETRAIN}") from None
    if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
        raise InputError(f"{path} is not a fitted fusion (expected an object with 'strategy' "
                         f"and 'params'); {_RETRAIN}")
    if body.get("strategy") != strategy:
        raise ConfigError(f"{path} holds strategy {body.get('strategy')!r}, but the stage asks "
                          f"for {strategy!r}; retrain or change `strategy:`")
    return dict(body["params"])


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
        if base is not None and base.data.get("abstain"):  # keep the fusion's own reason
            return [_abstain(f"{self.base}: {base.data.get('reason')}", [base, *proposals])]
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
