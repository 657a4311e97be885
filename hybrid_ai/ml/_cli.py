"""``hybrid-ai train`` and ``hybrid-ai eval``: fit, save and score models and pipelines.

Usage: ``hybrid-ai train PIPELINE --data train.csv [--val val.csv] -o models/`` (or
``--preset text``), then ``hybrid-ai eval models/pipeline.yaml --data test.csv --ablation
--plots plots/``. Without a pipeline both work on one text classifier:
``hybrid-ai train --dataset banking77 --fusion stacking -o models/b77``,
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
PresetOpt = typer.Option(None, "--preset", help="a built-in pipeline: text, text-cascade")
TrustOpt = typer.Option(False, "--trust-code", help="let the pipeline's `plugins:` import "
                        "modules kept beside it (only for code you trust)")
FeaturesOpt = typer.Option("fused", "--features",
                           help="tfidf, embedding, fused, or groups like word,char")
ModelOpt = typer.Option("logistic_regression", "--model-type", help="classifier name")
FusionOpt = typer.Option("concat", "--fusion", help="concat, stacking or oof_vote")
ParamOpt = typer.Option([], "--param", help="model parameter NAME=VALUE (repeatable)")
JsonOpt = typer.Option(False, "--json", help="print JSON")
CascadeTargetOpt = typer.Option(None, "--cascade-target", help="cascades: the lowest share to "
                                "the last stage whose validation accuracy reaches this")
CascadeBudgetOpt = typer.Option(None, "--cascade-budget", help="cascades: the most accurate "
                                "threshold sending at most this share of validation cases on")
CascadeToleranceOpt = typer.Option(0.003, "--cascade-tolerance", help="cascades (default goal):"
                                   " the lowest share within this much of every stage's accuracy")
CascadeFoldsOpt = typer.Option(1, "--cascade-folds", help="cascades without --val: 1 picks "
                               "on a held-out fifth; K > 1 cross-fits K pipelines (steadier)")
KeepThresholdsOpt = typer.Option(False, "--keep-thresholds",
                                 help="cascades: keep the pipeline file's thresholds")


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
           label_column: str, *, saved_model: bool = False
           ) -> tuple[list[str], list[str], list[str], list[str]]:
    """(train texts, train labels, test texts, test labels); absent parts are empty lists.

    ``saved_model``: a model is given, so test data alone will do.
    """
    from .._tabular import read_labelled_csv
    from ._datasets import load_dataset

    if saved_model and dataset is None and data is None and test_data is not None:
        return [], [], *read_labelled_csv(test_data, text_column=text_column,
                                          label_column=label_column)
    if (dataset is None) == (data is None):
        raise ConfigError("give exactly one of --dataset NAME or --data train.csv" + (
            " (or, with --model, only --test-data test.csv)" if saved_model else ""))
    if dataset is not None:
        return tuple(load_dataset(dataset))  # type: ignore[return-value]
    assert data is not None  # checked above; mypy cannot follow the == test
    train_x, train_y = read_labelled_csv(data, text_column=text_column, label_column=label_column)
    test_x, test_y = ([], []) if test_data is None else read_labelled_csv(
        test_data, text_column=text_column, label_column=label_column)
    return train_x, train_y, test_x, test_y


def _emit(report: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    """The report on stdout; its warnings (also in the JSON) as lines on stderr."""
    for warning in report.get("warnings") or []:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(json.dumps(report, indent=2, default=str) if as_json else "\n".join(lines))


def _writable(output: Path) -> Path:
    """Create the output folder before any training, so a bad ``-o`` fails at once."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".hybrid-ai-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write there ({exc.strerror}); choose a "
                          "folder you can write to") from None
    return output


PipelineArg = typer.Argument(None, help="pipeline YAML whose trainable stages to fit / run")


def _pipeline_spec(pipeline: Path | None, preset: str | None, trust_code: bool = False) -> Any:
    from .._config import read_pipeline
    from ._pipeline import preset_pipeline

    if pipeline is not None and preset is not None:
        raise ConfigError("give a PIPELINE file or --preset, not both")
    if preset is not None:
        return preset_pipeline(preset)
    return read_pipeline(pipeline or "", trust_code=trust_code)


def _cascade_goal(keep: bool, tolerance: float, target: float | None,
                  budget: float | None, folds: int = 1) -> Any:
    from ._pipeline import CascadeGoal

    if keep and (target is not None or budget is not None):
        raise ConfigError("--keep-thresholds keeps the file's thresholds; drop --cascade-target "
                          "and --cascade-budget, or drop --keep-thresholds")
    goal = CascadeGoal(tolerance, target, budget, folds)  # checks the values
    return None if keep else goal


def _train_pipeline(spec: Any, data: Path | None, val: Path | None, output: Path,
                    columns: tuple[str, str], search: bool, goal: Any) -> dict[str, Any]:
    from ._pipeline import read_cases, train_pipeline

    if data is None:
        raise ConfigError("training a pipeline needs --data train.csv")
    text_column, label_column = columns
    train_set = read_cases(data, text_column=text_column, label_column=label_column)
    val_set = None if val is None else read_cases(val, text_column=text_column,
                                                  label_column=label_column)
    return train_pipeline(spec, train_set, val_set, output=output, search=search, cascades=goal)


@app.command("train")
@_guarded
def train(
    pipeline: Path | None = PipelineArg,
    output: Path = typer.Option(..., "--output", "-o", help="folder for models + cards"),
    dataset: str | None = DatasetOpt,
    data: Path | None = typer.Option(None, "--data", help="training CSV with a header row"),
    val: Path | None = typer.Option(None, "--val", help="validation CSV (pipelines: fusions "
                                    "fit on it, metrics are reported on it)"),
    preset: str | None = PresetOpt,
    trust_code: bool = TrustOpt,
    search: bool = typer.Option(False, "--search", help="cross-validated grid search"),
    cascade_target: float | None = CascadeTargetOpt,
    cascade_budget: float | None = CascadeBudgetOpt,
    cascade_tolerance: float = CascadeToleranceOpt,
    cascade_folds: int = CascadeFoldsOpt,
    keep_thresholds: bool = KeepThresholdsOpt,
    test_data: Path | None = typer.Option(None, "--test-data", help="test CSV for metrics"),
    text_column: str = TextOpt,
    label_column: str = LabelOpt,
    features: str = FeaturesOpt,
    model_type: str = ModelOpt,
    fusion: str = FusionOpt,
    param: list[str] = ParamOpt,
    encoder_path: Path | None = typer.Option(None, "--encoder-path", help="one model: a tuned "
                                             "encoder folder for the embedding group"),
    tune_encoder: str | None = typer.Option(None, "--tune-encoder", help="one model: first "
                                            "fine-tune the encoder (setfit or classify) on the "
                                            "training data into OUTPUT/encoder, then use it"),
    as_json: bool = JsonOpt,
) -> None:
    """Fit every trainable stage of a pipeline (or one classifier) and save it with skops."""
    if tune_encoder is not None and (pipeline is not None or preset is not None):
        raise ConfigError("--tune-encoder works with --dataset/--data; for a pipeline, run "
                          "`hybrid-ai tune-encoder` and set the stage's encoder_path")
    if pipeline is not None or preset is not None:
        goal = _cascade_goal(keep_thresholds, cascade_tolerance, cascade_target, cascade_budget,
                             cascade_folds)
        spec = _pipeline_spec(pipeline, preset, trust_code)
        report = _train_pipeline(spec, data, val, _writable(output),
                                 (text_column, label_column), search, goal)
        _emit(report, as_json, _pipeline_lines(report, output))
        return
    split = _split(dataset, data, test_data, text_column, label_column)
    options = {"features": features, "model": model_type, "params": _params(param),
               "fusion": fusion, "dataset": dataset or str(data)}
    card = _train_model(split, _writable(output), options, encoder_path, tune_encoder)
    _emit(card, as_json, [f"saved {card['model_file']}"] + [
        f"{k}: {v}" for k, v in card.get("metrics", {}).items()])


def _train_model(split: tuple[list[str], list[str], list[str], list[str]], output: Path,
                 options: dict[str, Any], encoder_path: Path | None,
                 tune_encoder: str | None) -> dict[str, Any]:
    """Fit one classifier (the encoder tuned first if asked), score it, save it; its card."""
    from ._eval import evaluate as score
    from ._features import EmbeddingStore
    from ._train import save_model
    from ._train import train as fit

    train_x, train_y, test_x, test_y = split
    if tune_encoder is not None:
        encoder_path = _tuned_encoder(train_x, train_y, output / "encoder", tune_encoder)
    store = EmbeddingStore(model_path=encoder_path) if encoder_path else None
    trained = fit(train_x, train_y, store=store, **options)
    if tune_encoder is not None and options["fusion"] != "concat":
        trained.card.setdefault("warnings", []).append(
            f"--fusion {options['fusion']} learns from out-of-fold predictions, but the encoder "
            "was tuned on these same texts, so its member looks better than it is; use --fusion "
            "concat, or cross-fit the encoder (docs/llm.md, benchmarks/tuned_crossfit.py)")
    if test_x:
        found = score(trained, test_x, test_y)
        trained.card["metrics"] = {k: found[k] for k in ("n_test", "accuracy", "macro_f1")}
        warnings = trained.card.get("warnings", []) + found.get("warnings", [])
        if warnings:
            trained.card["warnings"] = warnings
    path = save_model(trained, output)
    return trained.card | {"model_file": str(path)}


def _pipeline_lines(report: dict[str, Any], output: Path) -> list[str]:
    lines = [f"trained {sid} -> {path}" for sid, path in report["saved"].items()]
    lines += [_threshold_line(found) for found in report.get("cascades", [])]
    lines.append(f"pipeline with the trained models: {output / 'pipeline.yaml'}")
    return lines + [f"validation {k}: {v}" for k, v in report.get("validation_metrics",
                                                                   {}).items()]


def _threshold_line(found: dict[str, Any]) -> str:
    stages, pick = " > ".join(found["stages"]), found["pick"]
    if found.get("scored", "decision") is None:
        return (f"cascade {stages}: the labels match neither the pipeline's decisions nor the "
                f"cascade's predictions (wrong --label-column?); kept the file's threshold")
    if pick is None:
        return f"cascade {stages}: no threshold meets the goal on validation; kept the file's"
    return (f"cascade {stages}: threshold {pick['threshold']:.4f} (validation: "
            f"{100 * pick['share_to_last']:.1f} % to the last stage, accuracy "
            f"{pick['accuracy']:.4f}; every stage: {found['validation_all_stages']:.4f})")


def _tuned_encoder(texts: list[str], labels: list[str], folder: Path, method: str) -> Path:
    """Fine-tune the encoder on the training texts; returns the folder it was saved in."""
    from ..llm._finetune import tune_encoder

    if method not in ("setfit", "classify"):
        raise ConfigError(f"--tune-encoder must be setfit or classify, got {method!r}")
    from ..llm._cli import progress_on_stderr

    with progress_on_stderr():
        tune_encoder(texts, labels, folder, method=method)  # type: ignore[arg-type]
    return folder


def _table(report: dict[str, Any]) -> list[str]:
    lines = [f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}"]
    for row in report.get("ablation", []):
        lines.append(f"without {row['dropped'] or '(none)':>10}: accuracy {row['accuracy']:.4f}"
                     f" ({100 * row['delta_accuracy']:+.1f} points)")
    for row in report.get("cascade", []):
        lines.append(f"cascade at {row['threshold']:.1f}: {100 * row['share_to_transformer']:.1f}"
                     f" % to transformer, accuracy {row['accuracy']:.4f}")
    return lines


def _pipeline_table(report: dict[str, Any]) -> list[str]:
    cal = report["calibration"]
    lines = [f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
             f"ECE {cal['ece']:.4f}  abstained {100 * report['abstained']:.1f} %  "
             f"mean cost {report['cost']['mean_cost']:.2f}"]
    for row in report.get("ablation", []):
        lines.append(f"without {row['removed']:>24} ({row['kind']}): accuracy "
                     f"{row['accuracy']:.4f} ({100 * row['delta_accuracy']:+.1f} points)")
    for found in report.get("cascades", []):
        lines += _cascade_lines(found)
    lines += [f"plot: {p}" for p in report.get("plots", [])]
    if report.get("errors"):
        lines.append(f"errors {report['errors']} of {report['n_test']} case(s) failed (first: "
                     f"{report.get('first_error')})")
    return lines


_PICKS = {"pick_within_0.3": "within 0.3 points of every stage", "pick_target": "the target",
          "pick_budget": "the budget"}


def _cascade_lines(found: dict[str, Any]) -> list[str]:
    name = ">".join(found["stages"])
    if found.get("scored", "decision") == "cascade output":
        name += " (scored on its own predictions)"
    lines = [f"cascade {name} at {row['threshold']:.2f}: {100 * row['share_to_last']:.1f} % "
             f"to the last stage, accuracy {row['accuracy']:.4f}" for row in found["curve"]]
    for key, goal in _PICKS.items():
        if key in found:
            pick = found[key]
            lines.append(f"cascade {name}, {goal}: " + (
                "no threshold reaches it" if pick is None else
                f"threshold {pick['threshold']:.4f}, {100 * pick['share_to_last']:.1f} % to the "
                f"last stage, accuracy {pick['accuracy']:.4f}"))
    return lines


def _eval_pipeline(spec: Any, data: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    from ._pipeline import read_cases
    from ._pipeline_eval import eval_pipeline

    if data is None:
        raise ConfigError("evaluating a pipeline needs --data test.csv")
    columns = {"text_column": options["text_column"], "label_column": options["label_column"]}
    train_data = options["train_data"]
    return eval_pipeline(spec, read_cases(data, **columns), models=options["models"],
                         train=read_cases(train_data, **columns) if train_data else None,
                         ablation=options["ablation"], plots=options["plots"],
                         target_accuracy=options["target_accuracy"], budget=options["budget"])


@app.command("eval")
@_guarded
def evaluate(
    pipeline: Path | None = PipelineArg,
    model: Path | None = typer.Option(None, "--model", help="folder written by train; omit to "
                                      "fit one from the training data"),
    models: Path | None = typer.Option(None, "--models", help="pipelines: the folder `train` "
                                       "wrote; each stage loads its model from it"),
    train_data: Path | None = typer.Option(None, "--train-data", help="pipelines: training "
                                           "CSV, to refit without each feature group"),
    plots: Path | None = typer.Option(None, "--plots", help="folder for PNG plots"),
    preset: str | None = PresetOpt,
    trust_code: bool = TrustOpt,
    target_accuracy: float | None = typer.Option(None, "--target-accuracy", help="pipelines: "
                                                 "pick each cascade's threshold to reach it"),
    budget: float | None = typer.Option(None, "--budget", help="pipelines: pick each cascade's "
                                        "threshold sending at most this share (0-1) on"),
    dataset: str | None = DatasetOpt,
    data: Path | None = typer.Option(None, "--data", help="pipelines: the test CSV; one "
                                     "model: the training CSV"),
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
    """Score a pipeline (or one model) on test data: metrics, calibration, ablation, cascade."""
    if pipeline is not None or preset is not None:
        options = {"text_column": text_column, "label_column": label_column, "models": models,
                   "train_data": train_data, "ablation": ablation, "plots": plots,
                   "target_accuracy": target_accuracy, "budget": budget}
        report = _eval_pipeline(_pipeline_spec(pipeline, preset, trust_code), data, options)
        _write_report(report, output)
        _emit(report, as_json, _pipeline_table(report))
        if report["errors"] and report["errors"] == report["n_test"]:
            raise ConfigError(f"every case failed ({report['errors']}); the first: "
                              f"{report['first_error']}")
        return
    report = _evaluation(model, _split(dataset, data, test_data, text_column, label_column,
                                       saved_model=model is not None),
                         features, model_type, fusion, ablation, cascade)
    if plots is not None:
        from ._plots import write_plots

        report["plots"] = write_plots(report, plots)
    _write_report(report, output)
    _emit(report, as_json, _table(report))


def _calibration_and_confusion(fitted: Any, texts: list[str],
                               labels: list[str]) -> dict[str, Any]:
    from ._eval import calibration, confusion

    proba = fitted.predict_proba(texts)
    classes = [str(c) for c in fitted.classifier.classes_]
    predicted = [classes[i] for i in proba.argmax(axis=1)]
    correct = [p == str(t) for p, t in zip(predicted, labels, strict=True)]
    return {"calibration": calibration(proba.max(axis=1).tolist(), correct),
            "confusion": confusion([str(t) for t in labels], predicted)}


def _write_report(report: dict[str, Any], output: Path | None) -> None:
    if output is not None:
        text = json.dumps(report, indent=2, default=str) + "\n"
        try:
            output.mkdir(parents=True, exist_ok=True)
            (output / "eval.json").write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--output {output}: cannot write eval.json there "
                              f"({exc.strerror}); choose a folder you can write to") from None


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
    report |= _calibration_and_confusion(fitted, test_x, test_y)
    if with_ablation:
        report["ablation"] = ablation(split, features=features, model=model_type, fusion=fusion)
    if with_cascade:
        first = train(train_x, train_y, features="tfidf", model=model_type)
        report["cascade"] = cascade_curve(first, fitted, test_x, test_y)
    return report
