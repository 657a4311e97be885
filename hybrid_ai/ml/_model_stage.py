"""The ``ml_model`` stage: any scikit-learn estimator over features gathered from facts.

    - stage: ml_model
      id: risk
      with:
        train_path: data/credit_train.csv    # fit at warm-up (or `model: models/risk`, saved)
        label_column: risk
        features: [numeric, categorical]     # or word, char, embedding, facts
        numeric: [amount, duration]
        categorical: [purpose, housing]
        estimator: HistGradientBoostingClassifier
        class_weight: balanced
        costs: {bad: {good: 5}}              # predicting good for a bad case costs 5

Each case becomes a record: the case text, its fields, the vector of an upstream ``embed`` stage
(if any; else the encoder runs here), and tokens of facts of the kinds named in ``fact_kinds``
(``flag:high_risk``, ``rule:<id>``). The stage writes a ``prediction`` fact: label, class
probabilities (calibrated) and, with ``costs``, the label of least expected cost; for
``task: regression`` a ``value``. It is *trainable*: ``hybrid-ai train PIPELINE`` gathers its
records by running the stages before it, fits it and saves it to a folder that ``model:`` loads.
"""

from __future__ import annotations

import csv
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, Location, Problem, UnknownComponentError
from .._facts import FactView, NewFact
from .._stage import BaseStage
from .._tabular import EXTRA, bad_rows, open_data, ragged_row

__all__ = ["TASKS", "MLModelStage", "records_from_csv"]

TASKS = ("classification", "regression")


def records_from_csv(path: str | Path, *, label_column: str, text_column: str = "text",
                     require_text: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """Records (text + every other column as a field) and labels from a CSV with a header.

    The text column must be there unless ``require_text`` is False (tabular data) or
    ``text_column`` is empty; every ragged row and empty label is reported at once.
    """
    path = Path(path)
    with open_data(path) as handle:
        reader = csv.DictReader(handle, restkey=EXTRA)
        columns = list(reader.fieldnames or [])
        _check_columns(path, columns, label_column, text_column if require_text else "")
        records, labels, problems = [], [], []
        for row in reader:
            where = Location(str(path), reader.line_num)
            problem = ragged_row(row, len(columns), where)
            label = (row.pop(label_column) or "").strip()
            if problem is None and not label:
                problem = Problem(f"empty {label_column!r}", where, "fill it in or delete the row")
            if problem is not None:
                problems.append(problem)
                continue
            text = (row.pop(text_column, None) or "") if text_column else ""
            records.append({"text": text, "fields": row})
            labels.append(label)
    if problems:
        raise bad_rows(path, problems)
    if not records:
        raise ConfigError(f"{path}:2: holds no examples; add rows under the header")
    return records, labels


def _check_columns(path: Path, columns: list[str], label_column: str, text_column: str) -> None:
    """The label column (and the text column, when named) are in the header, else a
    ConfigError listing the columns there are."""
    missing = [c for c in (label_column, text_column) if c and c not in columns]
    if not missing:
        return
    listed = ", ".join(repr(c) for c in columns) or "none"
    raise ConfigError(f"{path}:1: no column {' or '.join(map(repr, missing))}; columns: "
                      f"{listed}; set label_column/text_column (--label-column/--text-column;"
                      " --text-column '' for data without text)")


class MLModelStage(BaseStage):
    """A trained estimator over features from facts -> ``prediction`` (see the module doc)."""

    requires: tuple[str, ...] = ("input",)
    blocking = True
    cost = 1.0

    def __init__(self, *, model: str | None = None, train_path: str | None = None,
                 task: str = "classification", label_column: str = "label",
                 text_column: str = "text", features: str | Sequence[str] | None = None,
                 numeric: Sequence[str] = (), categorical: Sequence[str] = (),
                 fact_kinds: Sequence[str] = (), estimator: str | None = None,
                 params: Mapping[str, Any] | None = None, fusion: str = "concat",
                 calibration: str = "auto", class_weight: str | Mapping[str, float] | None = None,
                 costs: Mapping[str, Mapping[str, float]] | None = None,
                 encoder_path: str | None = None, name: str = "ml-model",
                 output: str = "prediction", top_k: int = 5, cv: int = 5,
                 search: bool = False) -> None:
        if task not in TASKS:
            raise UnknownComponentError("task", task, TASKS)
        groups = features if features is not None else _default_groups(numeric, categorical,
                                                                         fact_kinds)
        super().__init__(model=model, train_path=train_path, task=task,
                         label_column=label_column, text_column=text_column,
                         features=groups if isinstance(groups, str) else list(groups),
                         numeric=list(numeric), categorical=list(categorical),
                         fact_kinds=list(fact_kinds),
                         estimator=estimator or _default_estimator(task),
                         params=dict(params or {}), fusion=fusion, calibration=calibration,
                         class_weight=class_weight, costs=costs, encoder_path=encoder_path,
                         name=name, output=output, top_k=top_k, cv=cv, search=search)
        self.produces = (output,)
        self.requires = ("input", *fact_kinds)
        self.cost = _cost_of(groups)
        self.fitted: Any = None  # a TrainedModel once fitted or loaded
        self._lock = threading.Lock()

    # -- the trainable protocol -------------------------------------------------------------

    def record(self, view: FactView) -> dict[str, Any]:
        """The features of one case, read from its facts."""
        record: dict[str, Any] = {"text": view.case.text, "fields": dict(view.case.fields)}
        embedding = view.last("embedding")
        if embedding is not None and "vector" in embedding.data:
            record["embedding"] = np.asarray(embedding.data["vector"], dtype=np.float32)
        tokens = []
        for kind in self.params["fact_kinds"]:
            for fact in view.of(kind):
                label = fact.data.get("label", fact.data.get("name"))
                tokens += [kind, f"{kind}:{label}", f"source:{fact.provenance.source}"]
        record["facts"] = tokens
        return record

    def fit_records(self, records: Sequence[Mapping[str, Any]], labels: Sequence[Any],
                    *, search: bool | None = None, source: str | None = None) -> Any:
        """Fit on records and labels; returns (and keeps) the :class:`TrainedModel`."""
        from ._train import train_records

        p = self.params
        fitted = train_records(
            list(records), list(labels), task=p["task"], features=p["features"],
            model=p["estimator"], params=self._estimator_params(), fusion=p["fusion"],
            calibration=p["calibration"], fields={"numeric": p["numeric"],
                                                  "categorical": p["categorical"]},
            store=self._store(), cv=p["cv"], search=p["search"] if search is None else search,
            dataset=source)
        fitted.card |= {"stage": "ml_model", "costs": p["costs"], "fact_kinds": p["fact_kinds"],
                        "class_weight": p["class_weight"], "encoder_path": p["encoder_path"]}
        self.fitted = fitted
        return fitted

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model (skops) and its card to ``directory``."""
        from ._train import save_model

        if self.fitted is None:
            raise ConfigError("ml_model: nothing to save, the stage is not fitted yet")
        return save_model(self.fitted, directory)

    def _estimator_params(self) -> dict[str, Any]:
        params = dict(self.params["params"])
        weight = self.params["class_weight"]
        if weight is not None and self.params["task"] == "classification":
            params.setdefault("class_weight", weight if isinstance(weight, str) else dict(weight))
        return params

    def _reads_text(self) -> bool:
        from ._features import FEATURE_GROUPS
        from ._models import feature_groups

        return bool(set(feature_groups(self.params["features"])) & set(FEATURE_GROUPS))

    def _store(self) -> Any:
        from ._features import EmbeddingStore, default_store

        path = self.params["encoder_path"]
        return EmbeddingStore(model_path=path) if path else default_store()

    # -- the stage contract -------------------------------------------------------------------

    def warm_up(self) -> None:
        with self._lock:
            if self.fitted is not None:
                return
            if self.params["model"]:
                # A tuned encoder named on the stage wins; else the one in the model card.
                store = self._store() if self.params["encoder_path"] else None
                self.fitted = _load(self.params["model"], store)
            elif self.params["train_path"]:
                records, labels = records_from_csv(self.params["train_path"],
                                                   label_column=self.params["label_column"],
                                                   text_column=self.params["text_column"],
                                                   require_text=self._reads_text())
                self.fit_records(records, labels, source=self.params["train_path"])
            else:
                raise ConfigError("ml_model has neither `model:` (a folder written by "
                                  "`hybrid-ai train`) nor `train_path:` (a CSV); set one")

    def process(self, view: FactView) -> list[NewFact]:
        return self.process_many([view])[0]

    def process_many(self, views: Sequence[FactView]) -> list[list[NewFact]]:
        """``process`` for many cases with one model call (training and evaluation walks)."""
        if self.fitted is None:
            self.warm_up()
        records = [self.record(view) for view in views]
        if self.params["task"] == "regression":
            values = self.fitted.classifier.predict(records)
            return [[self._fact(view, {"model": self.params["name"], "value": float(v)}, None)]
                    for view, v in zip(views, values, strict=True)]
        probas = np.asarray(self.fitted.classifier.predict_proba(records), dtype=np.float64)
        out = []
        for view, proba in zip(views, probas, strict=True):
            data = self._classify(proba)
            out.append([self._fact(view, data, data["proba"][data["label"]])])
        return out

    def _fact(self, view: FactView, data: dict[str, Any], confidence: float | None) -> NewFact:
        source = view.last("input")
        derived = [source] if source else []
        derived += [f for kind in self.params["fact_kinds"] for f in view.of(kind)]
        return NewFact(self.params["output"], data, confidence=confidence, derived_from=derived,
                       source=f"model:{self.params['name']}@{self.version}")

    def _classify(self, proba: Any) -> dict[str, Any]:
        classes = [str(c) for c in self.fitted.classifier.classes_]
        order = proba.argsort()[::-1]
        label = classes[order[0]]
        costs = self.params["costs"] or self.fitted.card.get("costs")
        data: dict[str, Any] = {"model": self.params["name"], "label": label}
        if costs:
            label = _least_cost(classes, proba, costs)
            data |= {"label": label, "most_probable": classes[order[0]]}
        top = {classes[i]: float(proba[i]) for i in order[: self.params["top_k"]]}
        top.setdefault(label, float(proba[classes.index(label)]))
        data["proba"] = top
        return data


def _cost_of(groups: str | Sequence[str]) -> float:
    """An embedding group runs the sentence encoder on every input: the stage costs what
    ``embed`` costs on top of its own, so cost reports and ``order: cost`` cascades see it."""
    from ..llm._stages import EmbedStage
    from ._models import feature_groups

    own = MLModelStage.cost
    return own + EmbedStage.cost if "embedding" in feature_groups(groups) else own


def _least_cost(classes: list[str], proba: Any,
                costs: Mapping[str, Mapping[str, float]]) -> str:
    """The label whose expected cost is least; ``costs[truth][predicted]``, default 0/1."""
    def cost(truth: str, predicted: str) -> float:
        if truth == predicted:
            return 0.0
        return float(costs.get(truth, {}).get(predicted, 1.0))

    expected = [sum(float(proba[t]) * cost(classes[t], p) for t in range(len(classes)))
                for p in classes]
    return classes[int(np.argmin(expected))]


def _default_groups(numeric: Sequence[str], categorical: Sequence[str],
                    fact_kinds: Sequence[str]) -> list[str]:
    groups = [g for g, on in (("numeric", numeric), ("categorical", categorical),
                              ("facts", fact_kinds)) if on]
    return groups or ["word", "char", "embedding"]


def _default_estimator(task: str) -> str:
    return "logistic_regression" if task == "classification" else "ridge"


def _load(directory: str, store: Any) -> Any:
    from ._train import load_model

    fitted = load_model(directory)
    if store is not None:
        _attach_store(fitted.classifier, store)
    return fitted


def _attach_store(estimator: Any, store: Any) -> None:
    """Loaded models hold no store (files never hold an encoder): give them this stage's."""
    from ._features import EmbeddingFeatures, FusedFeatures

    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 8:
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            children = list(obj)
        else:
            if isinstance(obj, (EmbeddingFeatures, FusedFeatures)):
                obj.store = store
            children = list(getattr(obj, "__dict__", {}).values())
        for child in children:
            if isinstance(child, (list, tuple)) or hasattr(child, "__dict__"):
                walk(child, depth + 1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        walk(estimator, 0)

