"""``train`` and ``eval`` on a tiny CSV (TF-IDF only, so no encoder loads)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

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
    card = json.loads(trained.output)
    assert card["encoder_path"] == str(out / "encoder")
    assert (out / "encoder" / "config.json").is_file()
    wrong = runner.invoke(app, ["train", "--data", str(data), "--text-column", "body",
                                "--label-column", "intent", "--tune-encoder", "magic",
                                "--output", str(tmp_path / "x")])
    assert wrong.exit_code == 1 and "setfit or classify" in wrong.output
