"""The credit-decision example's risk model: a plugin stage kept beside its pipeline.

    plugins: [credit_model]          # in pipeline.yaml; imported from this folder
    - stage: credit_risk
      with: {data_path: ../../../shared/data/german_credit/german.data}

``credit_risk`` trains a logistic regression on the German Credit training split when it warms
up (one-hot categories, scaled numbers), picks the probability threshold of least expected cost
under the documented cost matrix (a bad applicant accepted costs 5, a good one declined 1) from
5-fold out-of-fold probabilities on the training split, and writes one ``risk`` fact per
applicant: ``label`` (approve | decline), ``p_bad``, the threshold, the expected cost of each
choice, and the features that pushed the score most (coefficient x standardised value, summed
over a category's one-hot columns, relative to the average training applicant), also rendered
as ``summary`` text for rule reasons.

The split is the example's held-out protocol: stratified 80/20, ``random_state=0`` (800 / 200).
``personal_status_sex`` and ``foreign_worker`` are read but never used as features.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_ai import BaseStage, FactView, NewFact, hookimpl

COLUMNS = [
    "checking_account", "duration_months", "credit_history", "purpose", "amount", "savings",
    "employment_since", "installment_rate", "personal_status_sex", "other_debtors",
    "residence_since", "property", "age", "other_installment_plans", "housing",
    "existing_credits", "job", "dependents", "telephone", "foreign_worker",
]
NUMERIC = ["duration_months", "amount", "installment_rate", "residence_since", "age",
           "existing_credits", "dependents"]
EXCLUDED = ["personal_status_sex", "foreign_worker"]  # protected traits: never model inputs
CATEGORICAL = [c for c in COLUMNS if c not in NUMERIC and c not in EXCLUDED]
# german.doc, section 7: the attribute codes in words.
CODES = {
    "A11": "< 0 DM", "A12": "0-200 DM", "A13": ">= 200 DM", "A14": "no checking account",
    "A30": "no credits / all paid back", "A31": "all paid back at this bank",
    "A32": "existing paid back duly", "A33": "delay in paying off in the past",
    "A34": "critical account / credits elsewhere",
    "A40": "car (new)", "A41": "car (used)", "A42": "furniture/equipment",
    "A43": "radio/television", "A44": "domestic appliances", "A45": "repairs",
    "A46": "education", "A47": "vacation", "A48": "retraining", "A49": "business",
    "A410": "others",
    "A61": "< 100 DM", "A62": "100-500 DM", "A63": "500-1000 DM", "A64": ">= 1000 DM",
    "A65": "unknown / no savings",
    "A71": "unemployed", "A72": "< 1 year", "A73": "1-4 years", "A74": "4-7 years",
    "A75": ">= 7 years",
    "A91": "male, divorced/separated", "A92": "female, divorced/separated/married",
    "A93": "male, single", "A94": "male, married/widowed", "A95": "female, single",
    "A101": "none", "A102": "co-applicant", "A103": "guarantor",
    "A121": "real estate", "A122": "savings agreement / life insurance",
    "A123": "car or other", "A124": "unknown / no property",
    "A141": "bank", "A142": "stores", "A143": "none",
    "A151": "rent", "A152": "own", "A153": "for free",
    "A171": "unemployed / unskilled non-resident", "A172": "unskilled resident",
    "A173": "skilled employee / official", "A174": "management / self-employed",
    "A191": "none", "A192": "yes", "A201": "yes", "A202": "no",
}
COST_BAD_ACCEPTED = 5.0
COST_GOOD_DECLINED = 1.0


def read_german(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Applicants (fields in words) and labels (good | bad) from ``german.data``.

    This mirror has a header line and codes the class as 1 = good, 0 = bad.
    """
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    records, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(COLUMNS) + 1 or parts[-1] not in ("0", "1"):
            raise ValueError(f"{path}:{number}: expected {len(COLUMNS) + 1} values ending in "
                             f"0 or 1, got {line!r}")
        values = parts[:-1]
        records.append({c: int(v) if c in NUMERIC else CODES.get(v, v)
                        for c, v in zip(COLUMNS, values, strict=True)})
        labels.append("good" if parts[-1] == "1" else "bad")
    return records, labels


def split(records: Sequence[dict[str, Any]], labels: Sequence[str]) -> tuple[
        list[dict[str, Any]], list[str], list[dict[str, Any]], list[str]]:
    """The example's held-out protocol: stratified 80/20 with ``random_state=0``."""
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(
        list(records), list(labels), test_size=0.2, random_state=0, stratify=list(labels))
    return train_x, train_y, test_x, test_y


def expected_cost(labels: Sequence[str], decisions: Sequence[str]) -> float:
    """Mean cost per applicant: 5 per bad applicant approved, 1 per good one declined."""
    total = sum(COST_BAD_ACCEPTED if (y == "bad" and d == "approve") else
                COST_GOOD_DECLINED if (y == "good" and d == "decline") else 0.0
                for y, d in zip(labels, decisions, strict=True))
    return total / len(labels)


def best_threshold(p_bad: np.ndarray[Any, Any], labels: Sequence[str]) -> float:
    """The threshold on P(bad) (decline at or above it) with the least mean cost."""
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2)
    costs = [expected_cost(labels, ["decline" if p >= t else "approve" for p in p_bad])
             for t in grid]
    return float(grid[int(np.argmin(costs))])


class CreditRiskStage(BaseStage):
    """Logistic-regression risk with a cost-chosen threshold and feature contributions."""

    requires = ("input",)
    produces = ("risk",)
    blocking = True
    cost = 1.0

    def __init__(self, *, data_path: str, C: float = 0.3, top: int = 4) -> None:
        if C <= 0 or top < 1:
            raise ValueError("credit_risk: C must be > 0 and top >= 1")
        super().__init__(data_path=data_path, C=C, top=top)
        self._lock = threading.Lock()
        self.features: _Features | None = None
        self.model: Any = None
        self.threshold = 0.5
        self._mean: Any = None

    def warm_up(self) -> None:
        with self._lock:
            if self.model is not None:
                return
            train_x, train_y, _, _ = split(*read_german(self.params["data_path"]))
            c = float(self.params["C"])
            self.threshold = best_threshold(_out_of_fold(train_x, train_y, c), train_y)
            self.features, self.model = _fit(train_x, train_y, c)
            self._mean = self.features.transform(train_x).mean(0)

    def process(self, view: FactView) -> list[NewFact]:
        self.warm_up()
        assert self.features is not None
        record = _record(view.case.fields)
        x = self.features.transform([record])
        classes = list(self.model.classes_)
        p_bad = float(self.model.predict_proba(x)[0][classes.index("bad")])
        label = "decline" if p_bad >= self.threshold else "approve"
        drivers = self._contributions(x[0], record)
        data = {"label": label, "p_bad": round(p_bad, 4), "threshold": self.threshold,
                "cost_if_approved": round(p_bad * COST_BAD_ACCEPTED, 4),
                "cost_if_declined": round((1 - p_bad) * COST_GOOD_DECLINED, 4),
                "drivers": drivers, "summary": _summary(drivers), "model": "credit-lr"}
        source = view.last("input")
        return [NewFact("risk", data, confidence=p_bad if label == "decline" else 1 - p_bad,
                        derived_from=[source] if source else [],
                        source=f"model:credit-lr@{self.version}",
                        detail={"threshold": self.threshold, "cost_matrix": "bad->good 5, "
                                "good->bad 1"})]

    def _contributions(self, x: Any, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        assert self.features is not None
        # Relative to the average training applicant, so the effects sum to the score's
        # distance from the average score. Positive means "towards bad": the coefficient row
        # is for classes_[1] when binary.
        sign = 1.0 if list(self.model.classes_)[1] == "bad" else -1.0
        parts = sign * self.model.coef_[0] * (x - self._mean)
        totals: dict[str, float] = {}
        for feature, value in zip(self.features.owners(), parts, strict=True):
            totals[feature] = totals.get(feature, 0.0) + float(value)
        ranked = sorted(totals.items(), key=lambda kv: -abs(kv[1]))[: int(self.params["top"])]
        return [{"feature": f, "value": record[f], "effect": round(v, 3),
                 "towards": "decline" if v > 0 else "approve"} for f, v in ranked]


class _Features:
    """Scaled numbers, then one-hot categories; ``owners()`` names each column's attribute."""

    def __init__(self) -> None:
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self.scaler = StandardScaler()
        self.onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)

    def fit(self, records: Sequence[Mapping[str, Any]]) -> _Features:
        self.scaler.fit(_numbers(records))
        self.onehot.fit(_categories(records))
        return self

    def transform(self, records: Sequence[Mapping[str, Any]]) -> Any:
        return np.hstack([self.scaler.transform(_numbers(records)),
                          self.onehot.transform(_categories(records))])

    def owners(self) -> list[str]:
        return NUMERIC + [c for c, cats in zip(CATEGORICAL, self.onehot.categories_, strict=True)
                          for _ in cats]


def _numbers(records: Sequence[Mapping[str, Any]]) -> Any:
    return np.array([[float(r[c]) for c in NUMERIC] for r in records])


def _categories(records: Sequence[Mapping[str, Any]]) -> Any:
    return np.array([[str(r[c]) for c in CATEGORICAL] for r in records], dtype=object)


def _fit(records: Sequence[Mapping[str, Any]], labels: Sequence[str], c: float) -> tuple[
        _Features, Any]:
    from sklearn.linear_model import LogisticRegression

    features = _Features().fit(records)
    model = LogisticRegression(C=c, max_iter=2000).fit(features.transform(records), labels)
    return features, model


def _out_of_fold(records: Sequence[Mapping[str, Any]], labels: Sequence[str],
                 c: float) -> Any:
    """P(bad) of each training applicant from a model that did not see it (5 folds)."""
    from sklearn.model_selection import StratifiedKFold

    p_bad = np.zeros(len(records))
    for train, test in StratifiedKFold(5).split(np.zeros(len(labels)), labels):
        features, model = _fit([records[i] for i in train], [labels[i] for i in train], c)
        proba = model.predict_proba(features.transform([records[i] for i in test]))
        p_bad[test] = proba[:, list(model.classes_).index("bad")]
    return p_bad


def _record(fields: Mapping[str, Any]) -> dict[str, Any]:
    missing = [c for c in NUMERIC + CATEGORICAL if c not in fields]
    if missing:
        raise ValueError(f"credit_risk: the case lacks field(s) {', '.join(missing)}; "
                         f"every applicant needs: {', '.join(NUMERIC + CATEGORICAL)}")
    return {c: fields[c] for c in NUMERIC + CATEGORICAL}


def _summary(drivers: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{d['feature']}={d['value']} ({d['effect']:+.2f} towards {d['towards']})"
                     for d in drivers)


@hookimpl
def hybrid_ai_stages() -> dict[str, Any]:
    """Registers ``credit_risk`` for pipelines that list this module under ``plugins:``."""
    return {"credit_risk": CreditRiskStage}
