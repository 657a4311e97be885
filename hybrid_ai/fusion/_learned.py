"""Fusion strategies that learn from labelled cases: weighted averaging, stacking, gating.

Each is a callable like the fixed strategies, ``strategy(predictions, params) -> scores``, plus
``fit(samples, labels) -> params``: ``samples`` holds, per case, the ``prediction`` facts'
``(model, proba)`` pairs. ``params`` is plain JSON (weights, coefficients), so a fitted fusion is
saved as ``fusion.json`` and never needs pickle. ``hybrid-ai train`` fits them on validation
cases, whose member predictions are out of sample.

    weighted_average  one weight per model, chosen on a 0.1 grid for the best accuracy
    stacking          a logistic regression over all members' probabilities
    gating            per-input weights: per member, a logistic regression over every
                      member's confidence and margin estimates its chance of being right
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import InputError
from .._facts import Fact

__all__ = ["LEARNED", "Gating", "LearnedStrategy", "Stacking", "WeightedAverage", "samples_of"]

Sample = list[tuple[str, dict[str, float]]]
Scores = dict[str, float]


def samples_of(predictions: Sequence[Fact]) -> Sample:
    """``(model, proba)`` per prediction fact; a fact without proba counts as its label at 1."""
    out = []
    for fact in predictions:
        proba = fact.data.get("proba")
        if not isinstance(proba, Mapping) or not proba:
            label = fact.data.get("label")
            proba = {str(label): float(fact.confidence or 1.0)} if label is not None else {}
        out.append((str(fact.data.get("model") or fact.provenance.stage),
                    {str(k): float(v) for k, v in proba.items()}))
    return out


def _normalise(scores: Scores) -> Scores:
    total = sum(scores.values())
    if total <= 0:
        return scores
    return dict(sorted(((k, v / total) for k, v in scores.items()), key=lambda kv: -kv[1]))


def _softmax(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    out: NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


class LearnedStrategy:
    """Base: ``needs_fit`` says whether the strategy can run before it is fitted."""

    needs_fit = True

    def fit(self, samples: Sequence[Sample], labels: Sequence[str]) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(self, predictions: Sequence[Fact], params: Mapping[str, Any]) -> Scores:
        if not predictions:
            return {}
        return self.scores(samples_of(predictions), params)

    def scores(self, sample: Sample, params: Mapping[str, Any]) -> Scores:
        raise NotImplementedError


def _members(samples: Sequence[Sample]) -> list[str]:
    return sorted({model for sample in samples for model, _ in sample})


def _labels(samples: Sequence[Sample], labels: Sequence[str]) -> list[str]:
    return sorted({k for s in samples for _, p in s for k in p} | set(labels))


def _tensor(samples: Sequence[Sample], members: list[str],
            labels: list[str]) -> NDArray[np.float64]:
    """(cases, members, labels) probabilities; a missing member or label is 0."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(samples), len(members), len(labels)))
    for n, sample in enumerate(samples):
        for model, proba in sample:
            if model in members:
                m = members.index(model)
                for label, p in proba.items():
                    if label in index:
                        out[n, m, index[label]] = p
    return out


def _check(samples: Sequence[Sample], labels: Sequence[str]) -> None:
    if len(samples) != len(labels) or not samples:
        raise InputError(f"fusion needs one label per case, got {len(samples)} cases and "
                         f"{len(labels)} labels")


class WeightedAverage(LearnedStrategy):
    """Weights per model chosen out of sample; before fitting, the given weights (soft vote)."""

    needs_fit = False

    def fit(self, samples: Sequence[Sample], labels: Sequence[str]) -> dict[str, Any]:
        _check(samples, labels)
        members, names = _members(samples), _labels(samples, labels)
        probs = _tensor(samples, members, names)
        target = np.asarray([names.index(str(y)) for y in labels])
        best, chosen = (-1.0, 0.0), np.full(len(members), 1 / len(members))
        steps = 10 if len(members) <= 4 else 4  # the grid grows as steps^members
        for combo in itertools.product(range(steps + 1), repeat=len(members)):
            if sum(combo) != steps:
                continue
            w = np.asarray(combo, dtype=np.float64) / steps
            mixed = np.einsum("m,nml->nl", w, probs)
            picked = np.clip(mixed[np.arange(len(target)), target], 1e-12, None)
            score = (float(np.mean(mixed.argmax(axis=1) == target)), float(np.log(picked).mean()))
            if score > best:
                best, chosen = score, w
        return {"weights": dict(zip(members, chosen.tolist(), strict=True)),
                "validation_accuracy": best[0]}

    def scores(self, sample: Sample, params: Mapping[str, Any]) -> Scores:
        weights = params.get("weights", params)
        out: Scores = {}
        for model, proba in sample:
            w = float(weights.get(model, 1.0)) if isinstance(weights, Mapping) else 1.0
            for label, p in proba.items():
                out[label] = out.get(label, 0.0) + w * p
        return _normalise(out)


def _fit_lr(x: NDArray[np.float64], y: NDArray[Any]) -> tuple[list[Any], Any, Any]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    coef, intercept = lr.coef_, lr.intercept_
    if len(lr.classes_) == 2:  # binary LR keeps one row: expand to the softmax form
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.asarray([-intercept[0] / 2,
                                                                        intercept[0] / 2])
    return lr.classes_.tolist(), coef.tolist(), intercept.tolist()


class Stacking(LearnedStrategy):
    """A logistic regression over every member's probabilities for every label."""

    def fit(self, samples: Sequence[Sample], labels: Sequence[str]) -> dict[str, Any]:
        _check(samples, labels)
        members, names = _members(samples), _labels(samples, labels)
        x = _tensor(samples, members, names).reshape(len(samples), -1)
        classes, coef, intercept = _fit_lr(x, np.asarray([str(y) for y in labels]))
        return {"members": members, "labels": names, "classes": classes, "coef": coef,
                "intercept": intercept}

    def scores(self, sample: Sample, params: Mapping[str, Any]) -> Scores:
        x = _tensor([sample], list(params["members"]), list(params["labels"])).reshape(1, -1)
        z = x @ np.asarray(params["coef"]).T + np.asarray(params["intercept"])
        return _normalise(dict(zip(params["classes"], _softmax(z)[0].tolist(), strict=True)))


def _meta(probs: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per case and member: top probability and margin over the runner-up."""
    top2 = np.sort(probs, axis=2)[:, :, -2:]
    return np.concatenate([top2[:, :, 1], top2[:, :, 1] - top2[:, :, 0]], axis=1)


def _fit_binary(x: NDArray[np.float64], hit: NDArray[np.bool_]) -> dict[str, Any]:
    """P(member right | meta features) as coefficients; a constant rate if it never varies."""
    from sklearn.linear_model import LogisticRegression

    if hit.all() or not hit.any():
        return {"rate": float(hit.mean())}
    lr = LogisticRegression(C=1.0, max_iter=2000).fit(x, hit)
    return {"coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0])}


class Gating(LearnedStrategy):
    """Per-input member weights: for each member a logistic gate over every member's confidence
    and margin estimates the chance that this member is right on this input; the weights are
    those chances, normalised."""

    def fit(self, samples: Sequence[Sample], labels: Sequence[str]) -> dict[str, Any]:
        _check(samples, labels)
        members, names = _members(samples), _labels(samples, labels)
        probs = _tensor(samples, members, names)
        target = np.asarray([names.index(str(y)) for y in labels])
        x = _meta(probs)
        gates = [_fit_binary(x, probs[:, m, :].argmax(axis=1) == target)
                 for m in range(len(members))]
        return {"members": members, "labels": names, "gates": gates}

    def weights(self, sample: Sample, params: Mapping[str, Any]) -> NDArray[np.float64]:
        """One weight per member (in ``params["members"]`` order) for this input."""
        probs = _tensor([sample], list(params["members"]), list(params["labels"]))
        x = _meta(probs)[0]
        chances = []
        for gate in params["gates"]:
            if "rate" in gate:
                chances.append(float(gate["rate"]))
            else:
                z = float(x @ np.asarray(gate["coef"]) + gate["intercept"])
                chances.append(1.0 / (1.0 + np.exp(-z)))
        w = np.asarray(chances) + 1e-9
        out: NDArray[np.float64] = w / w.sum()
        return out

    def scores(self, sample: Sample, params: Mapping[str, Any]) -> Scores:
        w = self.weights(sample, params)
        probs = _tensor([sample], list(params["members"]), list(params["labels"]))[0]
        mixed = w @ probs
        return _normalise(dict(zip(params["labels"], mixed.tolist(), strict=True)))


LEARNED: dict[str, LearnedStrategy] = {
    "gating": Gating(),
    "stacking": Stacking(),
    "weighted_average": WeightedAverage(),
}
