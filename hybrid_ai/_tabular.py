"""Reading labelled examples from CSV files, with errors that name the file and line.

    texts, labels = read_labelled_csv("train.csv", text_column="text", label_column="category")
    texts, labels = read_examples(None, dataset="financial_phrasebank", split="train")
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from ._errors import ConfigError, Location, Problem
from ._files import read_text

__all__ = ["EXTRA", "bad_rows", "open_data", "ragged_row", "read_examples", "read_labelled_csv"]

# DictReader's restkey: the cells of a row beyond the header land under it.
EXTRA = "\x00extra cells"
_QUOTE = 'quote text that holds commas: "hello, world"'

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
    """A training-data CSV decoded for ``csv`` (a leading BOM dropped); an unreadable or
    non-UTF-8 file is a ConfigError naming it (and the line and column of a bad byte)."""
    return io.StringIO(read_text(path, "training data"), newline="")


def ragged_row(row: Mapping[str | None, object], header: int, where: Location) -> Problem | None:
    """A Problem when a ``DictReader(restkey=EXTRA)`` row has more or fewer cells than the
    header (an unquoted comma, a missing cell), else None."""
    extra = row.get(EXTRA)
    cells = header + len(extra) if isinstance(extra, list) else \
        sum(value is not None for key, value in row.items() if key != EXTRA)
    if cells == header:
        return None
    hint = _QUOTE if cells > header else "fill in the missing cells or delete the row"
    return Problem(f"row has {cells} cell(s), the header {header}", where, hint)


def bad_rows(path: Path, problems: list[Problem], shown: int = 20) -> ConfigError:
    """One error for every bad row of a CSV (the first ``shown`` listed)."""
    more = f"; the first {shown}:" if len(problems) > shown else ""
    return ConfigError(f"{path} has {len(problems)} bad row(s){more}", problems[:shown])


def read_labelled_csv(path: str | Path, *, text_column: str = "text",
                      label_column: str = "label") -> tuple[list[str], list[str]]:
    """Texts and labels from a CSV with a header row; empty texts or labels are errors."""
    path = Path(path)
    with open_data(path) as handle:
        reader = csv.DictReader(handle, restkey=EXTRA)
        missing = [c for c in (text_column, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            columns = ", ".join(reader.fieldnames or [])
            raise ConfigError(f"{path} lacks column(s) {', '.join(missing)}",
                              [Problem("header", Location(str(path), 1),
                                       f"columns: {columns}; rename the header or name the "
                                       "columns (--text-column/--label-column)")])
        return _rows(reader, path, text_column, label_column)


def _rows(reader: csv.DictReader[str], path: Path, text_column: str,
          label_column: str) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    problems = []
    header = len(reader.fieldnames or [])
    for row in reader:
        where = Location(str(path), reader.line_num)
        text, label = (row.get(text_column) or "").strip(), (row.get(label_column) or "").strip()
        ragged = ragged_row(row, header, where)
        if ragged is not None or not text or not label:
            problems.append(ragged or Problem("empty text or label", where,
                                              "fill it in or delete the row"))
            continue
        texts.append(text)
        labels.append(label)
    if problems:
        raise bad_rows(path, problems)
    if not texts:
        raise ConfigError(f"{path} holds no examples", [Problem("no rows", Location(str(path), 2))])
    return texts, labels
