"""Reading labelled examples: CSV files, bundled datasets read in place, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_ai import ConfigError
from hybrid_ai._tabular import read_examples
from hybrid_ai.ml._datasets import data_root


def test_a_csv_file_gives_its_texts_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("body,intent\nmy card is lost,lost_card\nwhere is my money,transfer\n")
    texts, labels = read_examples(path, text_column="body", label_column="intent")
    assert texts == ["my card is lost", "where is my money"]
    assert labels == ["lost_card", "transfer"]


@pytest.mark.skipif(not (data_root() / "financial_phrasebank").exists(), reason="no shared data")
def test_a_dataset_is_read_in_place_with_its_documented_split() -> None:
    train = read_examples(None, dataset="financial_phrasebank")
    test = read_examples(None, dataset="financial_phrasebank", split="test")
    assert (len(train[0]), len(test[0])) == (3876, 970)
    assert set(test[1]) == {"negative", "neutral", "positive"}


@pytest.mark.parametrize(("path", "dataset", "split", "message"), [
    (None, None, "train", "give exactly one of"),
    ("x.csv", "sst2", "train", "give exactly one of"),
    (None, "sst2", "dev", "split must be one of train, test"),
])
def test_a_wrong_source_says_what_to_give(path: str | None, dataset: str | None, split: str,
                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_examples(path, dataset=dataset, split=split, stage="few_shot")


def test_text_classifier_without_examples_or_a_model_says_what_to_give() -> None:
    from hybrid_ai.ml import TextClassifierStage

    with pytest.raises(ConfigError, match=r"give train_path .* dataset .* or model_path"):
        TextClassifierStage().warm_up()


def test_ragged_rows_are_each_reported_with_the_quoting_hint(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"\xef\xbb\xbfbody,intent\nhello, world,greet\nbye\nok,fine\n")
    with pytest.raises(ConfigError, match=r"has 2 bad row\(s\)") as caught:
        read_examples(path, text_column="body", label_column="intent")  # the BOM is dropped
    assert [(p.location.line, p.message) for p in caught.value.problems] == [
        (2, "row has 3 cell(s), the header 2"), (3, "row has 1 cell(s), the header 2")]
    assert caught.value.problems[0].hint == 'quote text that holds commas: "hello, world"'


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes(b"body,intent\ncaf\xe9,drink\n")
    with pytest.raises(ConfigError, match=r"train.csv:2:4: byte 0xe9 is not UTF-8"):
        read_examples(path, text_column="body", label_column="intent")
