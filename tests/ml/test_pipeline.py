"""``train`` / ``eval`` of whole pipelines on a real slice of TREC (TF-IDF only: no encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybrid_ai import Case, Engine
from hybrid_ai._config import read_pipeline
from hybrid_ai._errors import ConfigError
from hybrid_ai.ml import cascade_pick, load_dataset
from hybrid_ai.ml._cli import app
from hybrid_ai.ml._pipeline import LabelledCases, train_pipeline, write_cases_csv

PIPELINE = """\
name: trec-cascade
pipeline:
  serial:
    - cascade:
        stages:
          - stage: ml_model
            id: words
            threshold: 0.7
            with: {features: [word], name: word-lr}
          - stage: ml_model
            id: chars
            cost: 5
            with: {features: [word, char], name: char-lr}
    - stage: fuse
      with: {strategy: gating, output: intent, min_confidence: 0.2}
    - stage: decide
      with: {base: intent}
"""


@pytest.fixture(scope="module")
def trec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.csv (400), val.csv (120), test.csv (120) and pipeline.yaml in one folder."""
    data = load_dataset("trec")
    folder = tmp_path_factory.mktemp("trec")
    for name, texts, labels in (("train", data.train_texts[:400], data.train_labels[:400]),
                                ("val", data.train_texts[400:520], data.train_labels[400:520]),
                                ("test", data.test_texts[:120], data.test_labels[:120])):
        cases = LabelledCases([Case(text=t) for t in texts], list(labels))
        write_cases_csv(folder / f"{name}.csv", cases)
    (folder / "pipeline.yaml").write_text(PIPELINE)
    return folder


@pytest.fixture(scope="module")
def trained(trec: Path) -> Path:
    runner = CliRunner()
    out = trec / "models"
    result = runner.invoke(app, ["train", str(trec / "pipeline.yaml"), "--data",
                                 str(trec / "train.csv"), "--val", str(trec / "val.csv"),
                                 "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out


def test_train_fits_every_trainable_stage(trained: Path) -> None:
    report = json.loads((trained / "training.json").read_text())
    assert sorted(report["saved"]) == ["chars", "fuse", "words"]
    assert report["stages"]["fuse"]["fitted_on"].endswith("val.csv")  # out-of-sample members
    assert report["stages"]["words"]["n"] == 400
    card = json.loads((trained / "words" / "model_card.json").read_text())
    assert {"data_sha256", "features", "versions", "model_sha256"} <= set(card)
    assert report["validation_metrics"]["accuracy"] > 0.6


def test_the_trained_pipeline_runs_and_records_costs(trained: Path) -> None:
    with Engine.from_yaml(trained / "pipeline.yaml") as engine:
        result = engine.run("What is the capital of France ?")
    assert result.decision in {"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}
    assert result.decision_fact is not None
    assert result.decision_fact.provenance.source == "fusion:gating"
    ran = {t.stage: t.status for t in result.trace}
    assert ran["words"] == "ok" and ran["chars"] in ("ok", "not_run")
    assert all(t.cost == 0 for t in result.trace if t.status == "not_run")


def test_eval_reports_ablation_cascade_and_plots(trained: Path, trec: Path) -> None:
    pytest.importorskip("matplotlib")
    runner = CliRunner()
    plots, out = trec / "plots", trec / "report"
    result = runner.invoke(app, ["eval", str(trained / "pipeline.yaml"), "--data",
                                 str(trec / "test.csv"), "--ablation", "--plots", str(plots),
                                 "--train-data", str(trec / "train.csv"), "-o", str(out),
                                 "--budget", "0.3"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert 0.6 < report["accuracy"] <= 1 and 0 <= report["calibration"]["ece"] < 0.5
    assert len(report["confusion"]["labels"]) >= 5
    removed = {row["removed"] for row in report["ablation"]}
    assert {"words", "chars", "fuse", "decide", "chars:char"} <= removed
    curve = report["cascades"][0]["curve"]
    shares = [row["share_to_last"] for row in curve]
    assert shares == sorted(shares) and shares[-1] > shares[0]  # higher threshold, more reach
    picked = report["cascades"][0]["pick_budget"]
    assert picked is None or picked["share_to_last"] <= 0.3
    assert {p.name for p in plots.iterdir()} == {"confusion.png", "reliability.png",
                                                 "ablation.png", "cascade.png"}
    assert (plots / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert "accuracy" in result.output


def test_cascade_pick_meets_a_target_or_a_budget() -> None:
    curve = [{"threshold": 0.5, "share_to_transformer": 0.1, "accuracy": 0.90},
             {"threshold": 0.7, "share_to_transformer": 0.3, "accuracy": 0.93},
             {"threshold": 0.9, "share_to_transformer": 0.6, "accuracy": 0.94}]
    assert cascade_pick(curve, target_accuracy=0.93)["threshold"] == 0.7  # type: ignore[index]
    assert cascade_pick(curve, budget=0.25)["threshold"] == 0.5  # type: ignore[index]
    assert cascade_pick(curve, 0.94)["threshold"] == 0.9  # type: ignore[index]
    assert cascade_pick(curve, target_accuracy=0.99) is None


def test_training_without_validation_holds_out_a_fifth(trec: Path, tmp_path: Path) -> None:
    from hybrid_ai.ml._pipeline import read_cases

    spec = read_pipeline(trec / "pipeline.yaml")
    cases = read_cases(trec / "train.csv")
    cases.cases, cases.labels = cases.cases[:200], cases.labels[:200]
    report = train_pipeline(spec, cases, output=tmp_path)
    assert report["stages"]["fuse"]["n"] == 40  # the held-out 20 % of 200
    assert report["refit_on_all"] == ["words", "chars"]


def test_a_pipeline_with_nothing_to_train_is_refused(tmp_path: Path, trec: Path) -> None:
    from hybrid_ai.ml._pipeline import read_cases

    spec = read_pipeline("p.yaml", text="pipeline:\n  stage: decide\n")
    with pytest.raises(ConfigError, match="no trainable stage"):
        train_pipeline(spec, read_cases(trec / "test.csv"), output=tmp_path)


RULES = """\
rules:
  - id: prize
    when: "match('free|prize|win|claim', lower(text))"
    then: {flag: prize_words}
  - id: number
    when: "match('[0-9]{5}', text)"
    then: {flag: long_number}
"""

RULE_PIPELINE = """\
name: sms-rules-as-features
pipeline:
  serial:
    - stage: rules
      with: {path: flags.yaml}
    - stage: ml_model
      id: spam
      with: {features: [word, facts], fact_kinds: [flag], name: spam-lr}
"""


def test_rule_firings_become_features(tmp_path: Path) -> None:
    from hybrid_ai.ml._pipeline import read_cases

    data = load_dataset("sms_spam")
    cases = LabelledCases([Case(text=t) for t in data.train_texts[:300]],
                          list(data.train_labels[:300]))
    write_cases_csv(tmp_path / "train.csv", cases)
    (tmp_path / "flags.yaml").write_text(RULES)
    (tmp_path / "p.yaml").write_text(RULE_PIPELINE)
    report = train_pipeline(read_pipeline(tmp_path / "p.yaml"), read_cases(tmp_path / "train.csv"),
                            output=tmp_path / "models")
    assert report["stages"]["spam"]["card"]["features"] == ["word", "facts"]
    with Engine.from_yaml(tmp_path / "models" / "pipeline.yaml") as engine:
        result = engine.run("WINNER! Claim your free prize: call 09061701461")
        stage = engine.graph.stages()[1].stage
    assert result.decision == "spam"
    prediction = result.of("prediction")[0]
    flags = {f.id for f in result.of("flag")}
    assert flags and flags <= set(prediction.provenance.inputs)  # the firings it read
    vocabulary = stage.fitted.classifier[0].parts_[1][1].vocabulary_  # type: ignore[attr-defined]
    assert "flag:prize_words" in vocabulary


def test_text_classifier_is_trained_saved_and_loaded_back(trec: Path) -> None:
    (trec / "tc.yaml").write_text(
        "name: tc\npipeline:\n  serial:\n    - stage: text_classifier\n"
        "      id: tfidf\n      with: {train_path: nowhere.csv, model: trec-lr}\n"
        "    - stage: fuse\n      with: {output: intent}\n"
        "    - stage: decide\n      with: {base: intent}\n")
    out = trec / "tc-models"
    result = CliRunner().invoke(app, ["train", str(trec / "tc.yaml"), "--data",
                                      str(trec / "train.csv"), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "tfidf" / "model_card.json").read_text())
    assert card["stage"] == "text_classifier" and card["n_train"] == 400
    written = read_pipeline(out / "pipeline.yaml")
    params = written.pipeline.serial[0].with_  # type: ignore[union-attr]
    assert "train_path" not in params and params["model_path"] == str((out / "tfidf").resolve())
    data = load_dataset("trec")
    with Engine.from_yaml(out / "pipeline.yaml") as engine:
        results = engine.run_batch(data.test_texts[:60])
    right = sum(r.decision == y for r, y in zip(results, data.test_labels[:60], strict=True))
    assert right >= 40  # 400 TF-IDF examples: well above the 1-in-6 of chance


def test_stages_after_the_last_trainable_one_do_not_run_in_training(trec: Path) -> None:
    (trec / "late.yaml").write_text(
        "name: late\npipeline:\n  serial:\n    - stage: text_classifier\n"
        "      id: tfidf\n      with: {train_path: nowhere.csv}\n"
        "    - stage: few_shot\n      with: {examples_path: missing.csv}\n"
        "    - stage: fuse\n      with: {output: intent}\n")
    result = CliRunner().invoke(app, ["train", str(trec / "late.yaml"), "--data",
                                      str(trec / "train.csv"), "-o", str(trec / "late"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((trec / "late" / "training.json").read_text())
    # few_shot would fail on every case (its examples file is missing) had it run
    assert report["failures"] == {} and list(report["saved"]) == ["tfidf"]
