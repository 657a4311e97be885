"""``hybrid-ai tune-encoder``: adapt the sentence encoder to labelled data and save it.

Usage: ``hybrid-ai tune-encoder --data train.csv --label-column category --val val.csv
--output models/encoder --method setfit --epochs 4 --per-class 8``; then point ``embed`` or
``few_shot`` at it with ``model_path: models/encoder``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from .._errors import HybridAIError

__all__ = ["tune_encoder_command"]


def tune_encoder_command(
    data: Path = typer.Option(..., "--data", help="training CSV with a header row"),
    output: Path = typer.Option(..., "--output", "-o", help="folder for the tuned model"),
    text_column: str = typer.Option("text", "--text-column", help="CSV column with the text"),
    label_column: str = typer.Option("label", "--label-column", help="CSV column with labels"),
    val: Path | None = typer.Option(None, "--val", help="validation CSV for early stopping"),
    method: str = typer.Option("setfit", "--method", help="setfit (contrastive) or classify"),
    epochs: int | None = typer.Option(None, "--epochs", help="most passes (default: 1 for "
                                      "setfit, over its pairs; 4 for classify)"),
    num_iterations: int = typer.Option(20, "--num-iterations", help="setfit: pair rounds per "
                                       "example (SetFit's 20; fewer trains faster)"),
    evals_per_epoch: int = typer.Option(4, "--evals-per-epoch",
                                        help="validation checks per epoch"),
    train_layers: int | None = typer.Option(None, "--train-layers",
                                            help="tune only the top N transformer layers "
                                            "(default: all weights)"),
    per_class: int | None = typer.Option(None, "--per-class",
                                         help="use N random examples per label"),
    patience: int = typer.Option(2, "--patience", help="checks without gain before stopping"),
    learning_rate: float = typer.Option(2e-5, "--learning-rate", help="encoder learning rate"),
    batch_size: int = typer.Option(16, "--batch-size", help="pairs (setfit) or texts per step"),
    base_model: Path | None = typer.Option(None, "--base-model",
                                           help="model directory to start from (default: "
                                           "the bundled all-MiniLM-L6-v2)"),
    threads: int | None = typer.Option(None, "--threads", help="torch threads (default: cores)"),
    seed: int = typer.Option(0, "--seed", help="random seed for sampling and batching"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines on stderr"),
) -> None:
    """Fine-tune the sentence encoder on labelled texts; save it as a model directory."""
    from .._tabular import read_labelled_csv
    from ._finetune import tune_encoder

    try:
        with progress_on_stderr(not quiet):
            texts, labels = read_labelled_csv(data, text_column=text_column,
                                              label_column=label_column)
            val_x, val_y = (None, None) if val is None else read_labelled_csv(
                val, text_column=text_column, label_column=label_column)
            report = tune_encoder(texts, labels, output,
                                  method=method,  # type: ignore[arg-type]
                                  val_texts=val_x, val_labels=val_y, epochs=epochs,
                                  patience=patience, per_class=per_class, batch_size=batch_size,
                                  learning_rate=learning_rate, base_model=base_model,
                                  num_threads=threads, seed=seed, num_iterations=num_iterations,
                                  evals_per_epoch=evals_per_epoch, train_layers=train_layers)
    except HybridAIError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    scores = ", ".join(f"{v:.3f}" for v in report.val_accuracy) or "no validation data"
    typer.echo(f"saved {report.output} ({report.method}, {report.examples} examples, "
               f"{report.classes} labels, {report.epochs_run} epoch(s), best epoch "
               f"{report.best_epoch}, {report.seconds:.0f} s)\nvalidation accuracy by epoch "
               f"(0 = base): {scores}")


@contextlib.contextmanager
def progress_on_stderr(enabled: bool = True) -> Iterator[None]:
    """Show the tuning progress (each validation check, each epoch) on stderr while the command
    runs: CPU runs take minutes to hours, and stdout stays the report (``--json``)."""
    log = logging.getLogger("hybrid_ai.llm._finetune")
    handler, level = _StderrLines(), log.level
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    if enabled:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


class _StderrLines(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (a test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")
