"""``hybrid-ai train`` and ``hybrid-ai eval``: fit, save and score text classifiers.

Usage: ``hybrid-ai train --dataset banking77 --fusion stacking --output models/b77``, then
``hybrid-ai eval --model models/b77 --dataset banking77 --ablation --cascade --json``.

``train`` and ``evaluate`` are plain typer command functions (registered through the
``hybrid_ai_cli_commands`` hook); :data:`app` bundles both for standalone use.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from .._errors import ConfigError, HybridAIError

__all__ = ["app", "evaluate", "train"]

F = TypeVar("F", bound=Callable[..., Any])
app = typer.Typer(name="ml", no_args_is_help=True, add_completion=False,
                  help="Train and evaluate text classifiers.")

DatasetOpt = typer.Option(None, "--dataset", help="a bundled dataset: sst2, trec, banking77, "
                          "financial_phrasebank, sms_spam, ag_news")
TextOpt = typer.Option("text", "--text-column", help="CSV column with the text")
LabelOpt = typer.Option("label", "--label-column", help="CSV column with the label")
FeaturesOpt = typer.Option("fused", "--features",
                           help="tfidf, embedding, fused, or groups like word,char")
ModelOpt = typer.Option("logistic_regression", "--model-type", help="classifier name")
FusionOpt = typer.Option("concat", "--fusion", help="concat, stacking or oof_vote")
ParamOpt = typer.Option([], "--param", help="model parameter NAME=VALUE (repeatable)")
JsonOpt = typer.Option(False, "--json", help="print JSON")


def _guarded(func: F) -> F:
    """hybrid-ai errors become one line on stderr and exit status 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HybridAIError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _params(pairs: list[str]) -> dict[str, Any]:
    """``["C=10", "penalty=l2"]`` -> ``{"C": 10, "penalty": "l2"}`` (JSON values)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, eq, raw = pair.partition("=")
        if not eq or not name:
            raise ConfigError(f"--param expects NAME=VALUE, got {pair!r}")
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def _split(dataset: str | None, data: Path | None, test_data: Path | None, text_column: str,
           label_column: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train texts, train labels, test texts, test labels); absent parts are empty lists."""
    from .._tabular import read_labelled_csv
    from ._datasets import load_dataset

    if (dataset is None) == (data is None):
        raise ConfigError("give exactly one of --dataset NAME or --data train.csv")
    if dataset is not None:
        return tuple(load_dataset(dataset))  # type: ignore[return-value]
    assert data is not None  # checked above; mypy cannot follow the == test
    train_x, train_y = read_labelled_csv(data, text_column=text_column, label_column=label_column)
    test_x, test_y = ([], []) if test_data is None else read_labelled_csv(
        test_data, text_column=text_column, label_column=label_column)
    return train_x, train_y, test_x, test_y


def _emit(report: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    typer.echo(json.dumps(report, indent=2, default=str) if as_json else "\n".join(lines))


@app.command("train")
@_guarded
def train(
    output: Path = typer.Option(..., "--output", "-o", help="folder for model + card"),
    dataset: str | None = DatasetOpt,
    data: Path | None = typer.Option(None, "--data", help="training CSV with a header row"),
    test_data: Path | None = typer.Option(None, "--test-data", help="test CSV for metrics"),
    text_column: str = TextOpt,
    label_column: str = LabelOpt,
    features: str = FeaturesOpt,
    model_type: str = ModelOpt,
    fusion: str = FusionOpt,
    param: list[str] = ParamOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fit a classifier and save it (skops) with a JSON model card."""
    from ._eval import evaluate as score
    from ._train import save_model
    from ._train import train as fit

    train_x, train_y, test_x, test_y = _split(dataset, data, test_data, text_column, label_column)
    trained = fit(train_x, train_y, features=features, model=model_type, params=_params(param),
                  fusion=fusion, dataset=dataset or str(data))
    if test_x:
        found = score(trained, test_x, test_y)
        trained.card["metrics"] = {k: found[k] for k in ("n_test", "accuracy", "macro_f1")}
    path = save_model(trained, output)
    metrics = trained.card.get("metrics", {})
    _emit(trained.card | {"model_file": str(path)}, as_json,
          [f"saved {path}"] + [f"{k}: {v}" for k, v in metrics.items()])


def _table(report: dict[str, Any]) -> list[str]:
    lines = [f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}"]
    for row in report.get("ablation", []):
        lines.append(f"without {row['dropped'] or '(none)':>10}: accuracy {row['accuracy']:.4f}"
                     f" ({100 * row['delta_accuracy']:+.1f} points)")
    for row in report.get("cascade", []):
        lines.append(f"cascade at {row['threshold']:.1f}: {100 * row['share_to_transformer']:.1f}"
                     f" % to transformer, accuracy {row['accuracy']:.4f}")
    return lines


@app.command("eval")
@_guarded
def evaluate(
    model: Path | None = typer.Option(None, "--model", help="folder written by train; omit to "
                                      "fit one from the training data"),
    dataset: str | None = DatasetOpt,
    data: Path | None = typer.Option(None, "--data", help="training CSV with a header row"),
    test_data: Path | None = typer.Option(None, "--test-data", help="test CSV"),
    text_column: str = TextOpt,
    label_column: str = LabelOpt,
    features: str = FeaturesOpt,
    model_type: str = ModelOpt,
    fusion: str = FusionOpt,
    ablation: bool = typer.Option(False, "--ablation", help="refit without each group"),
    cascade: bool = typer.Option(False, "--cascade", help="TF-IDF-first cascade curve"),
    output: Path | None = typer.Option(None, "--output", "-o", help="folder for eval.json"),
    as_json: bool = JsonOpt,
) -> None:
    """Score a model on a test split: accuracy, macro-F1, per class, ablation, cascade."""
    report = _evaluation(model, _split(dataset, data, test_data, text_column, label_column),
                         features, model_type, fusion, ablation, cascade)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "eval.json").write_text(json.dumps(report, indent=2, default=str) + "\n",
                                          encoding="utf-8")
    _emit(report, as_json, _table(report))


def _evaluation(model: Path | None, split: tuple[list[str], list[str], list[str], list[str]],
                features: str, model_type: str, fusion: str, with_ablation: bool,
                with_cascade: bool) -> dict[str, Any]:
    from ._eval import ablation, cascade_curve, evaluate
    from ._train import load_model, train

    train_x, train_y, test_x, test_y = split
    if not test_x:
        raise ConfigError("no test data: use --dataset NAME or --test-data test.csv")
    if (model is None or with_ablation or with_cascade) and not train_x:
        raise ConfigError("fitting needs training data: use --dataset or --data train.csv")
    fitted = load_model(model) if model is not None else train(
        train_x, train_y, features=features, model=model_type, fusion=fusion)
    report: dict[str, Any] = {"card": fitted.card} | evaluate(fitted, test_x, test_y)
    if with_ablation:
        report["ablation"] = ablation(split, features=features, model=model_type, fusion=fusion)
    if with_cascade:
        first = train(train_x, train_y, features="tfidf", model=model_type)
        report["cascade"] = cascade_curve(first, fitted, test_x, test_y)
    return report
