"""The ``ml_model`` stage on real tabular data (German credit) and any estimator by name."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hybrid_ai import Blackboard, Case
from hybrid_ai._errors import ConfigError, UnknownComponentError
from hybrid_ai.ml import MLModelStage, make_model
from hybrid_ai.ml._datasets import data_root

NUMERIC = ["DURATION_MONTHS", "AMOUNT", "AGE", "INSTALLMENT_RATE"]
CATEGORICAL = ["STATUS_ACCOUNT", "CREDIT_HISTORY", "PURPOSE", "SAVINGS_PLACEHOLDER"]


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """The first 700 applicants as a training CSV, the last 300 as held-out field dicts."""
    source = data_root().parent / "german_credit" / "german.data"
    if not source.is_file():
        pytest.skip(f"no German credit data at {source}")
    rows = [line.split() for line in source.read_text().splitlines() if line.strip()]
    head, body = rows[0], rows[1:]
    path = tmp_path_factory.mktemp("credit") / "train.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([head, *body[:700]])
    return path, [dict(zip(head, row, strict=True)) for row in body[700:]]


def _stage(path: Path, **params: object) -> MLModelStage:
    columns = {"numeric": NUMERIC, "categorical": CATEGORICAL[:3]}
    return MLModelStage(train_path=str(path), label_column="CLASSIFICATION",
                        **(columns | params))  # type: ignore[arg-type]


def _accuracy(stage: MLModelStage, held: list[dict[str, str]]) -> float:
    hits = 0
    for fields in held:
        label = fields["CLASSIFICATION"]
        case = Case(fields={k: v for k, v in fields.items() if k != "CLASSIFICATION"})
        hits += stage.process(Blackboard(case))[0].data["label"] == label
    return hits / len(held)


def test_tabular_classifier_beats_the_majority_class(credit: tuple[Path, list[dict[str, str]]]
                                                      ) -> None:
    path, held = credit
    stage = _stage(path)
    stage.warm_up()
    majority = max(("0", "1"), key=[r["CLASSIFICATION"] for r in held].count)
    base = sum(r["CLASSIFICATION"] == majority for r in held) / len(held)
    assert _accuracy(stage, held) > base
    fact = stage.process(Blackboard(Case(fields=held[0])))[0]
    assert sum(fact.data["proba"].values()) == pytest.approx(1.0)
    assert fact.confidence == max(fact.data["proba"].values())
    assert stage.fitted.card["features"] == ["numeric", "categorical"]


def test_costs_and_class_weight_move_decisions_to_the_costly_class(
        credit: tuple[Path, list[dict[str, str]]]) -> None:
    path, held = credit
    plain, costly = _stage(path), _stage(path, costs={"0": {"1": 5}}, class_weight="balanced")

    def zeros(stage: MLModelStage) -> int:
        return sum(stage.process(Blackboard(Case(fields=f)))[0].data["label"] == "0"
                   for f in held)

    assert zeros(costly) > zeros(plain)
    fact = costly.process(Blackboard(Case(fields=held[0])))[0]
    assert "most_probable" in fact.data


def test_save_and_load_any_estimator(credit: tuple[Path, list[dict[str, str]]],
                                     tmp_path: Path) -> None:
    path, held = credit
    stage = _stage(path, estimator="LinearSVC")  # no predict_proba: calibrated automatically
    stage.warm_up()
    stage.save(tmp_path / "svc")
    loaded = MLModelStage(model=str(tmp_path / "svc"))
    case = Blackboard(Case(fields=held[0]))
    assert loaded.process(case)[0].data == stage.process(case)[0].data
    assert "CalibratedClassifierCV" in type(stage.fitted.classifier[-1]).__name__


def test_regression_predicts_a_value(credit: tuple[Path, list[dict[str, str]]]) -> None:
    path, _held = credit
    stage = MLModelStage(train_path=str(path), task="regression", label_column="AMOUNT",
                         numeric=["DURATION_MONTHS", "INSTALLMENT_RATE"])
    fact = stage.process(Blackboard(Case(fields={"DURATION_MONTHS": "48",
                                                 "INSTALLMENT_RATE": "2"})))[0]
    short = stage.process(Blackboard(Case(fields={"DURATION_MONTHS": "6",
                                                  "INSTALLMENT_RATE": "2"})))[0]
    assert fact.data["value"] > short.data["value"]  # longer loans are larger


def test_bad_configuration_is_reported() -> None:
    with pytest.raises(UnknownComponentError, match="scikit-learn"):
        make_model("NoSuchClassifier")
    with pytest.raises(ConfigError, match="bad parameters"):
        make_model("LogisticRegression", {"no_such_parameter": 1})
    with pytest.raises(ConfigError, match="neither"):
        MLModelStage().warm_up()
