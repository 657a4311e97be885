"""``train`` and ``eval`` on a tiny CSV (TF-IDF only, so no encoder loads)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybrid_ai.ml._cli import app

from . import corpus

runner = CliRunner()


def _csv(path: Path) -> Path:
    texts, labels = corpus(30)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["body", "intent"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def test_train_then_eval(tmp_path: Path) -> None:
    data = _csv(tmp_path / "train.csv")
    columns = ["--text-column", "body", "--label-column", "intent"]
    out = tmp_path / "model"
    trained = runner.invoke(app, ["train", "--data", str(data), "--test-data", str(data),
                                  *columns, "--features", "tfidf", "--param", "C=5",
                                  "--output", str(out), "--json"])
    assert trained.exit_code == 0, trained.output
    card = json.loads(trained.output)
    assert card["params"] == {"C": 5} and card["metrics"]["accuracy"] == 1.0
    scored = runner.invoke(app, ["eval", "--model", str(out), "--data", str(data),
                                 "--test-data", str(data), *columns, "--features", "tfidf",
                                 "--ablation", "--cascade", "--output", str(out), "--json"])
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.output)
    assert report["accuracy"] == 1.0 and "card" in report["per_class"]
    assert [row["dropped"] for row in report["ablation"]] == [None, "word", "char"]
    assert [row["threshold"] for row in report["cascade"]] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert (out / "eval.json").is_file()
    # A saved model needs no training data to be scored; ablation would (it refits).
    alone = runner.invoke(app, ["eval", "--model", str(out), "--test-data", str(data),
                                *columns, "--json"])
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.output)["accuracy"] == 1.0
    nothing = runner.invoke(app, ["eval", "--model", str(out), *columns])
    assert nothing.exit_code == 1 and "only --test-data" in nothing.output


def test_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--output", str(tmp_path)])
    assert result.exit_code == 1
    assert "exactly one of --dataset" in result.output
    data = _csv(tmp_path / "t.csv")
    bad = runner.invoke(app, ["train", "--data", str(data), "--text-column", "body",
                              "--label-column", "intent", "--param", "C", "-o", str(tmp_path)])
    assert bad.exit_code == 1 and "NAME=VALUE" in bad.output


def test_train_can_tune_the_encoder_first(tmp_path: Path) -> None:
    data = _csv(tmp_path / "train.csv")
    out = tmp_path / "model"
    trained = runner.invoke(app, ["train", "--data", str(data), "--text-column", "body",
                                  "--label-column", "intent", "--features", "embedding",
                                  "--tune-encoder", "classify", "--output", str(out), "--json"])
    assert trained.exit_code == 0, trained.output
    card = json.loads(trained.stdout)  # tuning progress goes to stderr
    assert "tuning: epoch 1 done" in trained.stderr
    assert card["encoder_path"] == str(out / "encoder")
    assert (out / "encoder" / "config.json").is_file()
    assert "warnings" not in card  # concat: no stacker to mislead
    stacked = runner.invoke(app, ["train", "--data", str(data), "--text-column", "body",
                                  "--label-column", "intent", "--fusion", "stacking",
                                  "--tune-encoder", "classify", "--output",
                                  str(tmp_path / "stacked"), "--json"])
    assert stacked.exit_code == 0, stacked.output
    assert "cross-fit the encoder" in json.loads(stacked.stdout)["warnings"][-1]
    wrong = runner.invoke(app, ["train", "--data", str(data), "--text-column", "body",
                                "--label-column", "intent", "--tune-encoder", "magic",
                                "--output", str(tmp_path / "x")])
    assert wrong.exit_code == 1 and "setfit or classify" in wrong.output


def _trec_csv(path: Path, start: int, stop: int) -> Path:
    from hybrid_ai.ml import load_dataset

    data = load_dataset("trec")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(data.train_texts[start:stop], data.train_labels[start:stop],
                             strict=True))
    return path


def test_text_cascade_preset_trains_its_threshold_then_evaluates(tmp_path: Path) -> None:
    train_csv, val_csv = _trec_csv(tmp_path / "t.csv", 0, 300), _trec_csv(tmp_path / "v.csv",
                                                                           300, 400)
    out = tmp_path / "models"
    trained = runner.invoke(app, ["train", "--preset", "text-cascade", "--data", str(train_csv),
                                  "--val", str(val_csv), "--cascade-budget", "0.5",
                                  "-o", str(out)])
    assert trained.exit_code == 0, trained.output
    line = next(x for x in trained.output.splitlines() if x.startswith("cascade cheap > text"))
    assert "% to the last stage" in line
    chosen = json.loads((out / "training.json").read_text())["cascades"][0]["pick"]
    assert chosen["share_to_last"] <= 0.5
    saved = json.loads((out / "pipeline.yaml").read_text())["pipeline"]["cascade"]["stages"]
    assert saved[0]["threshold"] == pytest.approx(chosen["threshold"])
    scored = runner.invoke(app, ["eval", str(out / "pipeline.yaml"), "--data", str(val_csv),
                                 "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["accuracy"] == pytest.approx(chosen["accuracy"])
    # The same goal in eval's text output picks the same threshold on the same cases.
    text = runner.invoke(app, ["eval", str(out / "pipeline.yaml"), "--data", str(val_csv),
                               "--budget", "0.5"])
    assert text.exit_code == 0, text.output
    assert f"cascade cheap>text, the budget: threshold {chosen['threshold']:.4f}" in text.output


def test_cascade_goal_errors(tmp_path: Path) -> None:
    data = _trec_csv(tmp_path / "t.csv", 0, 50)
    for extra, message in ((["--keep-thresholds", "--cascade-budget", "0.2"], "keeps the file"),
                           (["--cascade-budget", "0.2", "--cascade-target", "0.9"], "one cascade"),
                           (["--cascade-budget", "2"], "between 0 and 1"),
                           (["--cascade-folds", "0"], "--cascade-folds")):
        result = runner.invoke(app, ["train", "--preset", "text-cascade", "--data", str(data),
                                     "-o", str(tmp_path / "m"), *extra])
        assert result.exit_code == 1 and message in result.output, result.output
