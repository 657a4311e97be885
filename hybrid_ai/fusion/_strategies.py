"""Fusion strategies: combine several ``prediction`` facts into one score per label.

Each strategy takes the predictions (facts with ``data["proba"]``: label -> probability and
``data["model"]``) and per-model weights, and returns normalised scores:

    soft_vote       weighted mean of the probabilities (weights default to 1)
    hard_vote       each model votes for its top label with its weight; ties by summed proba
    max_confidence  the single prediction whose top probability is highest

and the learned ones of :mod:`hybrid_ai.fusion._learned` (``weighted_average``, ``stacking``,
``gating``), whose second argument is their fitted parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .._facts import Fact

__all__ = ["FUSION_STRATEGIES", "FusionStrategy"]

Scores = dict[str, float]
FusionStrategy = Callable[[Sequence[Fact], Mapping[str, float]], Scores]


def _proba(fact: Fact) -> Mapping[str, float]:
    proba = fact.data.get("proba")
    if isinstance(proba, Mapping) and proba:
        return proba
    label = fact.data.get("label")
    return {str(label): float(fact.confidence or 1.0)} if label is not None else {}


def _weight(fact: Fact, weights: Mapping[str, float]) -> float:
    return float(weights.get(str(fact.data.get("model")), weights.get(fact.provenance.stage, 1.0)))


def _normalise(scores: Scores) -> Scores:
    total = sum(scores.values())
    if total <= 0:
        return scores
    return dict(sorted(((k, v / total) for k, v in scores.items()), key=lambda kv: -kv[1]))


def soft_vote(predictions: Sequence[Fact], weights: Mapping[str, float]) -> Scores:
    """Weighted mean of the probability vectors."""
    scores: Scores = {}
    for fact in predictions:
        w = _weight(fact, weights)
        for label, p in _proba(fact).items():
            scores[label] = scores.get(label, 0.0) + w * float(p)
    return _normalise(scores)


def hard_vote(predictions: Sequence[Fact], weights: Mapping[str, float]) -> Scores:
    """Weighted majority of top labels; the summed probabilities break ties."""
    votes: Scores = {}
    soft = soft_vote(predictions, weights)
    for fact in predictions:
        proba = _proba(fact)
        if proba:
            top = max(proba, key=lambda k: proba[k])
            votes[top] = votes.get(top, 0.0) + _weight(fact, weights)
    return _normalise({k: v + 1e-6 * soft.get(k, 0.0) for k, v in votes.items()})


def max_confidence(predictions: Sequence[Fact], weights: Mapping[str, float]) -> Scores:
    """The probabilities of the most confident prediction."""
    best = max(predictions, key=lambda f: max(_proba(f).values(), default=0.0), default=None)
    return _normalise(dict(_proba(best))) if best is not None else {}


def _registry() -> dict[str, FusionStrategy]:
    from ._learned import LEARNED

    fixed: dict[str, FusionStrategy] = {"hard_vote": hard_vote, "max_confidence": max_confidence,
                                        "soft_vote": soft_vote}
    return dict(sorted((fixed | dict(LEARNED)).items()))


FUSION_STRATEGIES: dict[str, FusionStrategy] = _registry()
