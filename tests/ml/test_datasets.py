"""Dataset loaders keep the documented splits and name the file and line of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_ai._errors import ConfigError, UnknownComponentError
from hybrid_ai.ml import load_dataset
from hybrid_ai.ml._datasets import data_root

SIZES = {
    "sst2": (6_920, 1_821),
    "trec": (5_452, 500),
    "banking77": (10_003, 3_080),
    "financial_phrasebank": (3_876, 970),
    "sms_spam": (4_136, 1_035),
    "ag_news": (2_000, 2_000),
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_split_sizes(name: str) -> None:
    if not data_root().is_dir():
        pytest.skip(f"text datasets not found at {data_root()}")
    data = load_dataset(name)
    assert (len(data.train_texts), len(data.test_texts)) == SIZES[name]
    assert len(data.train_labels) == len(data.train_texts)
    assert set(data.test_labels) <= set(data.train_labels)


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "sst2"
    folder.mkdir()
    (folder / "stsa.binary.train").write_text("1 good film\nno label here\n")
    (folder / "stsa.binary.test").write_text("0 bad film\n")
    with pytest.raises(ConfigError, match=r"stsa\.binary\.train:2"):
        load_dataset("sst2", tmp_path)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HYBRID_AI_TEXT_DATA"):
        load_dataset("trec", tmp_path)
    with pytest.raises(UnknownComponentError, match="banking77"):
        load_dataset("imdb")
