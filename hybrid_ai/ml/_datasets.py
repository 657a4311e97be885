"""The six text-classification datasets with the exact splits of ``shared/data/README.md``.

Usage: ``data = load_dataset("banking77"); len(data.train_texts) == 10_003``.

The splits are fixed so that figures stay comparable with ``shared/PEERS.md``; every malformed
line is reported with its file and line number.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from .._errors import ConfigError, Location, Problem, UnknownComponentError

__all__ = ["DATASETS", "TextDataset", "data_root", "load_dataset"]

_ENV = "HYBRID_AI_TEXT_DATA"


class TextDataset(NamedTuple):
    """Train and test texts with their labels: ``train_texts, train_labels, *_ = data``."""

    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]


def data_root() -> Path:
    """``$HYBRID_AI_TEXT_DATA`` or ``../shared/data/text`` next to the checkout."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "text"


def _lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Non-empty lines with 1-based numbers; a missing file says where the data is looked for."""
    try:
        text = path.read_text(encoding=encoding)
    except OSError as exc:
        raise ConfigError(
            f"cannot read dataset file {path}: {exc.strerror}; set {_ENV} to the folder that "
            "holds the text datasets"
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def _bad(path: Path, number: int, what: str) -> ConfigError:
    return ConfigError(f"{path}:{number}: {what}", [Problem(what, Location(str(path), number))])


def _stratified(
    texts: list[str], labels: list[str], **split: int | float
) -> tuple[list[str], list[str], list[str], list[str]]:
    from sklearn.model_selection import train_test_split

    a, b, la, lb = train_test_split(texts, labels, random_state=0, stratify=labels, **split)
    return list(a), list(la), list(b), list(lb)


# -- one reader per format ------------------------------------------------------------------------


def _sst2_file(path: Path) -> tuple[list[str], list[str]]:
    names = {"0": "negative", "1": "positive"}
    texts, labels = [], []
    for number, line in _lines(path):
        label, _, text = line.partition(" ")
        if label not in names or not text.strip():
            raise _bad(path, number, "expected '0' or '1', a space, then the sentence")
        texts.append(text.strip())
        labels.append(names[label])
    return texts, labels


def _trec_file(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for number, line in _lines(path, "latin-1"):
        head, _, text = line.partition(" ")
        coarse, colon, _fine = head.partition(":")
        if not colon or not coarse.isupper() or not text.strip():
            raise _bad(path, number, "expected 'COARSE:fine question text'")
        texts.append(text.strip())
        labels.append(coarse)
    return texts, labels


def _banking_file(path: Path) -> tuple[list[str], list[str]]:
    from .._tabular import read_labelled_csv

    return read_labelled_csv(path, text_column="text", label_column="category")


def _phrasebank_file(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for number, line in _lines(path, "latin-1"):  # the corpus is latin-1, not utf-8
        text, at, label = line.rpartition("@")
        if not at or label.strip() not in {"negative", "neutral", "positive"}:
            raise _bad(path, number, "expected 'sentence@negative|neutral|positive'")
        texts.append(text)
        labels.append(label.strip())
    return texts, labels


def _sms_file(path: Path) -> tuple[list[str], list[str]]:
    seen: dict[str, str] = {}
    for number, line in _lines(path):
        label, tab, text = line.partition("\t")
        if number == 1 and (label, text) == ("Label", "SMS"):
            continue  # the mirror's header line
        if not tab or label not in {"ham", "spam"}:
            raise _bad(path, number, "expected 'ham' or 'spam', a tab, then the message")
        seen.setdefault(text, label)  # keep the first occurrence of each exact text
    return list(seen), list(seen.values())


def _ag_news_file(path: Path) -> tuple[list[str], list[str]]:
    names = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if len(row) != 3 or row[0] not in names:
                raise _bad(path, reader.line_num, "expected class index 1-4, title, description")
            text = f"{row[1]}. {row[2]}".replace("\\n", " ").replace("\\", " ")
            texts.append(text)
            labels.append(names[row[0]])
    return texts, labels


# -- the datasets ---------------------------------------------------------------------------------


def _sst2(root: Path) -> TextDataset:
    return TextDataset(*_sst2_file(root / "sst2/stsa.binary.train"),
                       *_sst2_file(root / "sst2/stsa.binary.test"))


def _trec(root: Path) -> TextDataset:
    return TextDataset(*_trec_file(root / "trec/TREC.train"), *_trec_file(root / "trec/TREC.test"))


def _banking77(root: Path) -> TextDataset:
    return TextDataset(*_banking_file(root / "banking77/train.csv"),
                       *_banking_file(root / "banking77/test.csv"))


def _phrasebank(root: Path) -> TextDataset:
    texts, labels = _phrasebank_file(root / "financial_phrasebank/Sentences_50Agree.txt")
    return TextDataset(*_stratified(texts, labels, test_size=0.2))


def _sms(root: Path) -> TextDataset:
    texts, labels = _sms_file(root / "sms_spam/SMSSpamCollection")
    return TextDataset(*_stratified(texts, labels, test_size=0.2))


def _ag_news(root: Path) -> TextDataset:
    texts, labels = _ag_news_file(root / "ag_news/test.csv")
    rest, rest_labels, test, test_labels = _stratified(texts, labels, test_size=2000)
    train, train_labels, _, _ = _stratified(rest, rest_labels, train_size=2000)
    return TextDataset(train, train_labels, test, test_labels)


DATASETS: dict[str, Callable[[Path], TextDataset]] = {
    "sst2": _sst2,
    "trec": _trec,
    "banking77": _banking77,
    "financial_phrasebank": _phrasebank,
    "sms_spam": _sms,
    "ag_news": _ag_news,
}


def load_dataset(name: str, root: str | Path | None = None) -> TextDataset:
    """Load one dataset by name with its documented split: ``load_dataset("sms_spam")``."""
    loader = DATASETS.get(name)
    if loader is None:
        raise UnknownComponentError("dataset", name, sorted(DATASETS))
    return loader(Path(root) if root is not None else data_root())
