"""Reading labelled examples from CSV files, with errors that name the file and line.

    texts, labels = read_labelled_csv("train.csv", text_column="text", label_column="category")
    texts, labels = read_examples(None, dataset="financial_phrasebank", split="train")
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TextIO

from ._errors import ConfigError, Location, Problem

__all__ = ["open_data", "read_examples", "read_labelled_csv"]

SPLITS = ("train", "test")


def read_examples(path: str | Path | None, *, dataset: str | None = None, split: str = "train",
                  text_column: str = "text", label_column: str = "label",
                  stage: str = "stage") -> tuple[list[str], list[str]]:
    """Examples from a CSV file, or from a bundled dataset's documented split, read in place.

    A dataset (``hybrid_ai.ml.DATASETS``) saves copying data whose licence or size should stay
    out of an application's folder.
    """
    if (path is None) == (dataset is None):
        raise ConfigError(f"{stage}: give exactly one of a CSV path or `dataset:` "
                          "(sst2, trec, banking77, financial_phrasebank, sms_spam, ag_news)")
    if dataset is None:
        assert path is not None  # checked above; mypy cannot follow the == test
        return read_labelled_csv(path, text_column=text_column, label_column=label_column)
    if split not in SPLITS:
        raise ConfigError(f"{stage}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    from .ml._datasets import load_dataset

    data = load_dataset(dataset)
    if split == "train":
        return list(data.train_texts), list(data.train_labels)
    return list(data.test_texts), list(data.test_labels)


def open_data(path: Path) -> TextIO:
    """A training-data CSV opened for ``csv``; an unreadable file is a ConfigError naming it."""
    try:
        return path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read training data {path}: {exc.strerror}") from None


def read_labelled_csv(path: str | Path, *, text_column: str = "text",
                      label_column: str = "label") -> tuple[list[str], list[str]]:
    """Texts and labels from a CSV with a header row; empty texts or labels are errors."""
    path = Path(path)
    with open_data(path) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in (text_column, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            columns = ", ".join(reader.fieldnames or [])
            raise ConfigError(f"{path} lacks column(s) {', '.join(missing)}",
                              [Problem("header", Location(str(path), 1), f"columns: {columns}")])
        return _rows(reader, path, text_column, label_column)


def _rows(reader: csv.DictReader[str], path: Path, text_column: str,
          label_column: str) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    problems = []
    for row in reader:
        text, label = (row.get(text_column) or "").strip(), (row.get(label_column) or "").strip()
        if not text or not label:
            problems.append(Problem("empty text or label", Location(str(path), reader.line_num),
                                    "fill it in or delete the row"))
            continue
        texts.append(text)
        labels.append(label)
    if problems:
        raise ConfigError(f"{path} has {len(problems)} bad row(s)", problems[:20])
    if not texts:
        raise ConfigError(f"{path} holds no examples", [Problem("no rows", Location(str(path), 2))])
    return texts, labels
