"""Scores for a text classifier: metrics, a feature-group ablation and the cascade curve.

Usage: ``report = evaluate(model, test_texts, test_labels); report["accuracy"]``.

The cascade lets a cheap model answer when its top probability clears a threshold and sends
the rest to the fused (transformer-backed) model; the curve gives, per threshold, the share of
inputs that reached the transformer and the accuracy of the whole cascade. Choose the threshold
on validation predictions (:func:`choose_threshold`, every distinct confidence a candidate),
then report it on the test split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._features import EmbeddingStore
from ._models import feature_groups
from ._train import TrainedModel, train

__all__ = [
    "THRESHOLDS",
    "ablation",
    "calibration",
    "cascade_curve",
    "cascade_pick",
    "choose_threshold",
    "confusion",
    "deferral_curve",
    "evaluate",
    "fine_thresholds",
    "metrics",
    "unseen_labels",
]

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and the per-class report: ``metrics(["a"], ["a"])["accuracy"] == 1``."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    return {
        "n_test": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "per_class": classification_report(truth, predicted, output_dict=True, zero_division=0),
    }


def evaluate(model: TrainedModel, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Metrics of a fitted model on labelled texts; ``warnings`` names test labels the model
    never saw in training (it cannot predict them: each such case counts as wrong)."""
    report = metrics([str(label) for label in labels], model.predict(texts))
    unseen = unseen_labels(model, labels)
    if unseen:
        report["warnings"] = [f"{len(unseen)} test label(s) never seen in training: "
                              f"{', '.join(map(repr, unseen[:20]))}; every such case counts "
                              "as wrong (check the label spelling, or train on them)"]
    return report


def unseen_labels(model: TrainedModel, labels: Sequence[str]) -> list[str]:
    """The labels among ``labels`` that the model cannot predict, sorted."""
    known = getattr(model.classifier, "classes_", None)
    if known is None:
        known = model.card.get("classes", [])
    return sorted({str(label) for label in labels} - {str(c) for c in known})


def ablation(data: Sequence[Sequence[str]], *, features: str = "fused",
             model: str = "logistic_regression", params: Mapping[str, Any] | None = None,
             fusion: str = "concat", store: EmbeddingStore | None = None) -> list[dict[str, Any]]:
    """Refit with each feature group removed; rows give the metric change against all groups.

    ``data`` is (train_texts, train_labels, test_texts, test_labels). The first row is the
    model with every group (``dropped: None``).
    """
    train_x, train_y, test_x, test_y = data
    groups = feature_groups(features)
    rows: list[dict[str, Any]] = []
    for dropped in [None, *groups] if len(groups) > 1 else [None]:
        kept = ",".join(g for g in groups if g != dropped)
        fitted = train(train_x, train_y, features=kept, model=model, params=params,
                       fusion=fusion, store=store)
        scores = evaluate(fitted, test_x, test_y)
        rows.append({"dropped": dropped, "accuracy": scores["accuracy"],
                     "macro_f1": scores["macro_f1"]})
    for row in rows:
        row["delta_accuracy"] = row["accuracy"] - rows[0]["accuracy"]
        row["delta_macro_f1"] = row["macro_f1"] - rows[0]["macro_f1"]
    return rows


def deferral_curve(confidence: Sequence[float], first: Sequence[str], second: Sequence[str],
                   truth: Sequence[str], thresholds: Sequence[float] | None = None,
                   ) -> list[dict[str, float]]:
    """Share deferred to ``second`` and cascade accuracy per threshold, from predictions.

    The first stage answers where its ``confidence`` reaches the threshold (as the engine's
    cascade does), ``second`` elsewhere. ``thresholds=None`` is the finest grid: every distinct
    confidence, plus one above them all (everything deferred). Usage:
    ``cascade_pick(deferral_curve(conf, cheap, fused, labels), reference=fused_accuracy)``.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    cheap_ok = np.asarray(first).astype(str) == np.asarray(truth).astype(str)
    costly_ok = np.asarray(second).astype(str) == np.asarray(truth).astype(str)
    grid = fine_thresholds(conf) if thresholds is None else np.asarray(thresholds, np.float64)
    order = np.argsort(conf, kind="stable")
    ranked = conf[order]
    # Deferring the k least confident: fused right on those + cheap right on the rest.
    fused = np.concatenate([[0], np.cumsum(costly_ok[order])])
    cheap = np.concatenate([[0], np.cumsum(cheap_ok[order][::-1])])[::-1]
    deferred = np.searchsorted(ranked, grid, side="left")  # how many lie below each threshold
    n = max(1, len(conf))
    return [{"threshold": float(t), "share_to_transformer": float(k / n),
             "accuracy": float((fused[k] + cheap[k]) / n)} for t, k in zip(grid, deferred,
                                                                          strict=True)]


def fine_thresholds(confidence: Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
    """Every distinct confidence, ascending, then one above the largest (defer everything)."""
    values = np.unique(np.asarray(confidence, dtype=np.float64))
    top = float(values[-1]) if len(values) else 1.0
    return np.append(values, np.nextafter(max(top, 1.0), np.inf))


def cascade_curve(first: TrainedModel, second: TrainedModel, texts: Sequence[str],
                  labels: Sequence[str],
                  thresholds: Sequence[float] | None = THRESHOLDS) -> list[dict[str, float]]:
    """Share sent to ``second`` and cascade accuracy per threshold on ``first``'s confidence
    (``thresholds=None``: every distinct confidence, see :func:`deferral_curve`)."""
    proba = np.asarray(first.predict_proba(texts))
    classes = np.asarray(first.classifier.classes_).astype(str)
    return deferral_curve(proba.max(axis=1), classes[proba.argmax(axis=1)],
                          second.predict(texts), labels, thresholds)


def cascade_pick(curve: Sequence[Mapping[str, float]], reference: float | None = None,
                 tolerance: float = 0.003, *, target_accuracy: float | None = None,
                 budget: float | None = None,
                 share_key: str = "share_to_transformer") -> dict[str, float] | None:
    """Choose a cascade threshold on validation data, or None when no row qualifies.

    By default the lowest share whose accuracy stays within ``tolerance`` of ``reference`` (the
    full model's accuracy); ``target_accuracy`` asks for the lowest share reaching it instead;
    ``budget`` (a share, 0-1) for the most accurate row that sends at most that share on (the
    lower share among equals).
    """
    rows = list(curve)
    if budget is not None:
        affordable = [r for r in rows if r[share_key] <= budget + 1e-9]
        return dict(max(affordable, key=lambda r: (r["accuracy"], -r[share_key]))) \
            if affordable else None
    if target_accuracy is None:
        if reference is None:
            raise ValueError("cascade_pick needs reference, target_accuracy or budget")
        target_accuracy = reference - tolerance
    # 1e-9: 0.3 points below must count as within despite float rounding.
    within = [r for r in rows if r["accuracy"] >= target_accuracy - 1e-9]
    return dict(min(within, key=lambda r: r[share_key])) if within else None


def choose_threshold(confidence: Sequence[float], first: Sequence[str], second: Sequence[str],
                     truth: Sequence[str], *, tolerance: float = 0.003,
                     target_accuracy: float | None = None,
                     budget: float | None = None) -> dict[str, float] | None:
    """The threshold for a goal, chosen on validation predictions over the finest grid.

    Give out-of-sample predictions of both stages (out-of-fold on the training split, or a
    held-out split): ``choose_threshold(conf, cheap, fused, labels, budget=0.25)``. The goal is
    as in :func:`cascade_pick`; by default, within ``tolerance`` of ``second``'s accuracy.
    """
    curve = deferral_curve(confidence, first, second, truth)
    reference = float(np.mean(np.asarray(second).astype(str) == np.asarray(truth).astype(str)))
    return cascade_pick(curve, reference, tolerance, target_accuracy=target_accuracy,
                        budget=budget)


def calibration(confidences: Sequence[float], correct: Sequence[bool],
                bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability table: ``calibration([0.9], [True])``.

    ECE is the mean gap between confidence and accuracy over equal-width confidence bins,
    weighted by how many predictions fall in each.
    """
    conf = np.clip(np.asarray(confidences, dtype=np.float64), 0.0, 1.0)
    hits = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        if not mask.any():
            continue
        acc, mean_conf = float(hits[mask].mean()), float(conf[mask].mean())
        ece += abs(acc - mean_conf) * int(mask.sum()) / max(1, len(conf))
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(mask.sum()),
                      "confidence": mean_conf, "accuracy": acc})
    return {"ece": ece, "bins": bins, "reliability": table}


def confusion(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """The confusion matrix with its label order: ``confusion(t, p)["matrix"][i][j]``."""
    from sklearn.metrics import confusion_matrix

    labels = sorted(set(truth) | set(predicted))
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return {"labels": labels, "matrix": matrix.tolist()}
