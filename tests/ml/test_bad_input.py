"""Bad training data, damaged model folders and bad options: clear errors, nothing lost."""

from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hybrid_ai._config import read_pipeline
from hybrid_ai._errors import ConfigError, InputError
from hybrid_ai.ml._cli import app
from hybrid_ai.ml._eval import evaluate
from hybrid_ai.ml._model_stage import records_from_csv
from hybrid_ai.ml._models import make_model
from hybrid_ai.ml._pipeline import read_cases
from hybrid_ai.ml._pipeline_eval import eval_pipeline
from hybrid_ai.ml._train import load_model, save_model, train

from . import corpus

runner = CliRunner()

PIPELINE = """\
pipeline:
  serial:
    - stage: ml_model
      id: clf
      with: {features: [word]}
    - stage: decide
"""


def _csv(path: Path, rows: list[list[str]], header: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([list(header), *rows])
    return path


def _good(path: Path, n: int = 12) -> Path:
    texts, labels = corpus(n)
    return _csv(path, [[t, y] for t, y in zip(texts, labels, strict=True)])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good one-model folder (TF-IDF, two classes)."""
    folder = tmp_path_factory.mktemp("model")
    save_model(train(*corpus(12), features="tfidf"), folder)
    return folder


# -- #4: ragged rows ---------------------------------------------------------------------------

RAGGED = "text,label\nmy card is lost,card\nhello, world,refund\nwhere is my money\nfine,refund\n"


def test_ragged_rows_in_a_training_csv_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(RAGGED, encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(path), "--features", "tfidf",
                                 "-o", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert f"{path}:3: row has 3 cell(s), the header 2" in result.output
    assert 'quote text that holds commas: "hello, world"' in result.output
    assert f"{path}:4: row has 1 cell(s), the header 2" in result.output
    assert not (tmp_path / "m" / "model.skops").exists()


def test_ragged_rows_in_pipeline_cases_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(RAGGED + ",\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_cases(path)
    lines = {p.location.line for p in caught.value.problems}
    assert lines == {3, 4, 6}  # two ragged rows and an empty label, one error
    assert "quote text that holds commas" in str(caught.value)


# -- #5 / #7: encoding, BOM, missing text column -----------------------------------------------

def test_training_data_that_is_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"text,label\ngood,a\ncaf\xe9 time,b\n")
    with pytest.raises(ConfigError, match=r"not UTF-8") as caught:
        read_cases(path)
    assert f"{path}:3:4: byte 0xe9 is not UTF-8" in str(caught.value)
    result = runner.invoke(app, ["train", "--data", str(path), "--features", "tfidf",
                                 "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and f"{path}:3:4" in result.output


def test_a_byte_order_mark_in_the_header_is_accepted_everywhere(tmp_path: Path) -> None:
    path = _good(tmp_path / "bom.csv")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    records, labels = records_from_csv(path, label_column="label")
    assert records[0]["text"].startswith("refund 0") and records[0]["fields"] == {}
    assert len(labels) == 12
    result = runner.invoke(app, ["train", "--data", str(path), "--features", "tfidf",
                                 "-o", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output


def test_a_missing_text_column_lists_the_columns(tmp_path: Path) -> None:
    path = _good(tmp_path / "t.csv")
    with pytest.raises(ConfigError, match=r"no column 'txt'; columns: 'text', 'label'"):
        read_cases(path, text_column="txt")
    result = runner.invoke(app, ["train", str(_pipeline(tmp_path)), "--data", str(path),
                                 "--text-column", "txt", "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "--text-column" in result.output


def test_tabular_data_needs_no_text_column(tmp_path: Path) -> None:
    path = _csv(tmp_path / "t.csv", [["1", "a"], ["2", "b"]], header=("amount", "label"))
    records, _ = records_from_csv(path, label_column="label", require_text=False)
    assert records[0] == {"text": "", "fields": {"amount": "1"}}
    assert read_cases(path, text_column="").cases[1].fields == {"amount": "2"}


# -- #8: damaged model folders, --models, failed cases -----------------------------------------

def _damaged(tmp_path: Path, model_dir: Path, model: bytes | None = None,
             card: str | None = None) -> Path:
    folder = tmp_path / "damaged"
    folder.mkdir()
    good = (model_dir / "model.skops").read_bytes()
    (folder / "model.skops").write_bytes(good if model is None else model)
    (folder / "model_card.json").write_text(
        card if card is not None else (model_dir / "model_card.json").read_text())
    return folder


@pytest.mark.parametrize(("damage", "message"), [
    ({"model": "truncated"}, r"is not a model file written by `hybrid-ai train`"),
    ({"model": b"garbage, not a zip file"}, r"is not a model file written by `hybrid-ai train`"),
    ({"card": "{bad json"}, r"model_card.json:1:2: the model card is not valid JSON"),
    ({"card": "[1, 2]"}, r"the model card must be a JSON object"),
])
def test_a_damaged_model_folder_is_an_input_error(tmp_path: Path, model_dir: Path,
                                                  damage: dict[str, Any], message: str) -> None:
    if damage.get("model") == "truncated":
        damage["model"] = (model_dir / "model.skops").read_bytes()[:300]
    folder = _damaged(tmp_path, model_dir, **damage)
    with pytest.raises(InputError, match=message):
        load_model(folder)


def test_a_model_file_holding_no_estimator_is_refused(tmp_path: Path, model_dir: Path) -> None:
    skops = importlib.import_module("skops.io")
    skops.dump([1, 2, 3], tmp_path / "list.skops")
    folder = _damaged(tmp_path, model_dir, model=(tmp_path / "list.skops").read_bytes())
    with pytest.raises(InputError, match=r"holds a list, not a fitted model"):
        load_model(folder)
    test = _good(tmp_path / "test.csv")
    result = runner.invoke(app, ["eval", "--model", str(folder), "--data", str(test),
                                 "--test-data", str(test)])
    assert result.exit_code == 1 and "retrain it" in result.output


def _pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE)
    return path


def test_models_must_be_a_folder_holding_every_trainable_stage(tmp_path: Path,
                                                               model_dir: Path) -> None:
    spec = read_pipeline(_pipeline(tmp_path))
    test = read_cases(_good(tmp_path / "test.csv", 4))
    with pytest.raises(ConfigError, match=r"--models .*nowhere: no such folder"):
        eval_pipeline(spec, test, models=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"no model for stage\(s\) 'clf' .*found: no stage "
                                          r"folders.*use `hybrid-ai eval --model`"):
        eval_pipeline(spec, test, models=model_dir)
    other = tmp_path / "models" / "other"
    other.mkdir(parents=True)
    (other / "model_card.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"'clf' there \(found: other\)"):
        eval_pipeline(spec, test, models=tmp_path / "models")


def test_eval_reports_failed_cases_and_fails_when_all_did(tmp_path: Path) -> None:
    test = _good(tmp_path / "test.csv", 4)
    result = runner.invoke(app, ["eval", str(_pipeline(tmp_path)), "--data", str(test)])
    assert result.exit_code == 1
    assert "errors 4 of 4 case(s) failed (first: " in result.output
    assert "ml_model has neither `model:`" in result.output
    assert "every case failed" in result.output


# -- #15: options ------------------------------------------------------------------------------

def test_a_bad_parameter_value_fails_before_training_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"The 'C' parameter of LogisticRegression"):
        make_model("logistic_regression", {"C": "abc"})
    with pytest.raises(ConfigError, match=r"The 'C' parameter of LinearSVC"):
        make_model("linear_svc", {"C": "abc"})  # wrapped in a calibrator
    result = runner.invoke(app, ["train", "--data", str(_good(tmp_path / "t.csv")),
                                 "--features", "tfidf", "--param", "C=abc",
                                 "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "'C' parameter" in result.output


def test_an_output_folder_that_cannot_be_made_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(app, ["train", "--data", str(_good(tmp_path / "t.csv")),
                                 "--features", "tfidf", "-o", str(blocker / "m")])
    assert result.exit_code == 1
    assert f"--output {blocker / 'm'}: cannot write there" in result.output


def test_one_class_is_refused_on_the_one_model_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"need at least two classes to train, got \['a'\]"):
        train(["x", "y"], ["a", "a"], features="tfidf")
    path = _csv(tmp_path / "t.csv", [["x y", "a"], ["y z", "a"]])
    result = runner.invoke(app, ["train", "--data", str(path), "--features", "tfidf",
                                 "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "need at least two classes" in result.output


# -- L17: warnings on labels -------------------------------------------------------------------

def test_single_example_and_unseen_labels_are_warned_about(tmp_path: Path,
                                                           model_dir: Path) -> None:
    texts, labels = corpus(12)
    fitted = train([*texts, "a lonely text"], [*labels, "lonely"], features="tfidf")
    assert fitted.card["warnings"] == ["1 label(s) have a single training example: 'lonely'; "
                                       "add examples or merge them"]
    assert "warnings" not in train(texts, labels, features="tfidf").card
    report = evaluate(load_model(model_dir), texts[:2], ["card", "sarcastic"])
    assert "never seen in training: 'sarcastic'" in report["warnings"][0]
    test = _csv(tmp_path / "test.csv", [[texts[0], "sarcastic"], [texts[1], labels[1]]])
    result = runner.invoke(app, ["eval", "--model", str(model_dir), "--data", str(test),
                                 "--test-data", str(test), "--json"])
    assert result.exit_code == 0
    assert "warning: 1 test label(s) never seen in training: 'sarcastic'" in result.output
    assert json.loads(result.stdout)["warnings"]
