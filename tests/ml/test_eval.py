"""Metrics and the TF-IDF-first cascade."""

from __future__ import annotations

from hybrid_ai.ml import cascade_curve, cascade_pick, evaluate, metrics, train

from . import corpus


def test_metrics_report_per_class() -> None:
    found = metrics(["a", "a", "b"], ["a", "b", "b"])
    assert round(found["accuracy"], 3) == 0.667
    assert set(found["per_class"]) >= {"a", "b", "macro avg"}


def test_cascade_curve_shares_grow_with_threshold() -> None:
    texts, labels = corpus()
    cheap = train(texts, labels, features="word")
    costly = train(texts, labels, features="tfidf")
    curve = cascade_curve(cheap, costly, texts, labels, thresholds=(0.0, 0.5, 1.01))
    assert [row["share_to_transformer"] for row in curve] == [0.0, curve[1]["share_to_transformer"],
                                                              1.0]
    assert curve[-1]["accuracy"] == evaluate(costly, texts, labels)["accuracy"]


def test_cascade_pick_takes_the_cheapest_within_tolerance() -> None:
    curve = [{"threshold": 0.5, "share_to_transformer": 0.1, "accuracy": 0.90},
             {"threshold": 0.7, "share_to_transformer": 0.3, "accuracy": 0.937},
             {"threshold": 0.9, "share_to_transformer": 0.6, "accuracy": 0.941}]
    assert cascade_pick(curve, 0.940) == curve[1]
    assert cascade_pick(curve, 0.99) is None
