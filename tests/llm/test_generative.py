"""The generative backend and its stages: zero-shot by label likelihood, validated extraction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from hybrid_ai import Blackboard, Case, StageError
from hybrid_ai._errors import ConfigError
from hybrid_ai.llm._generative import Generator
from hybrid_ai.llm._tasks import ExtractStage, ZeroShotStage
from hybrid_ai.testing import check_stage


class ScriptedGenerator(Generator):
    """Answers from a script and scores options by a table, so stage logic is tested exactly."""

    def __init__(self, answers: Sequence[str] = (), scores: dict[str, float] | None = None):
        super().__init__()
        self.answers, self.scores, self.prompts = list(answers), scores or {}, []

    @property
    def name(self) -> str:
        return "scripted"

    def warm_up(self) -> Generator:
        return self

    def generate(self, prompt: str, *, max_new_tokens: int | None = None) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)

    def score_options(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        self.prompts.append(prompt)
        return np.array([self.scores[o] for o in options])


def board(text: str) -> Blackboard:
    return Blackboard(Case(text=text))


def test_extract_validates_and_converts_types() -> None:
    gen = ScriptedGenerator(['Sure: {"amount": "12.5", "currency": "EUR"} done'])
    stage = ExtractStage(fields={"amount": "float", "currency": "str"}, generator=gen)
    (fact,) = stage.process(board("I paid 12.50 euros"))
    assert fact.data == {"values": {"amount": 12.5, "currency": "EUR"}, "attempts": 1}
    assert "I paid 12.50 euros" in gen.prompts[0]


def test_extract_repairs_with_the_error_shown() -> None:
    gen = ScriptedGenerator(['{"amount": "lots"}', '{"amount": 3}'])
    stage = ExtractStage(fields={"amount": "int"}, generator=gen)
    (fact,) = stage.process(board("three pounds"))
    assert fact.data["values"] == {"amount": 3}
    assert fact.data["attempts"] == 2
    assert "That answer is wrong (field amount" in gen.prompts[1]


def test_extract_reports_failure_instead_of_guessing() -> None:
    gen = ScriptedGenerator(["no idea", "{bad json", '{"amount": "many"}'])
    stage = ExtractStage(fields={"amount": "int"}, retries=2, generator=gen)
    with pytest.raises(StageError) as info:
        stage.process(board("?"))
    message = str(info.value)
    assert "after 3 attempt(s)" in message
    assert "holds no JSON object" in message and "invalid JSON" in message
    assert "field amount" in message


def test_extract_rejects_unknown_field_types() -> None:
    with pytest.raises(ConfigError, match="use one of: str, int"):
        ExtractStage(fields={"x": "decimal"})


def test_zero_shot_turns_label_likelihoods_into_probabilities() -> None:
    gen = ScriptedGenerator(scores={"good news": -1.0, "bad news": -3.0})
    stage = ZeroShotStage(labels={"positive": "good news", "negative": "bad news"},
                          generator=gen, calibrate=False)
    (fact,) = stage.process(board("profits doubled"))
    assert fact.data["label"] == "positive"
    assert fact.data["proba"]["positive"] > 0.99
    assert sum(fact.data["proba"].values()) == pytest.approx(1.0)
    assert "profits doubled" in gen.prompts[0] and "positive, negative" in gen.prompts[0]


def test_zero_shot_needs_two_labels_and_a_text_slot() -> None:
    with pytest.raises(ConfigError, match="two labels"):
        ZeroShotStage(labels=["only"])
    with pytest.raises(ConfigError, match=r"\{text\}"):
        ZeroShotStage(labels=["a", "b"], prompt="no slot")


def test_the_real_model_scores_obvious_sentiment(generator: Generator) -> None:
    prompt = ("Is the sentiment of this text positive or negative?\nText: {}\n"
              "Answer with one word.")
    love = generator.score_options(prompt.format("I love it, wonderful!"), ["positive", "negative"])
    hate = generator.score_options(prompt.format("Worst service ever, I hate it."),
                                   ["positive", "negative"])
    assert love[0] > love[1]
    assert hate[1] > hate[0]


def test_the_real_model_generates_text(generator: Generator) -> None:
    answer = generator.generate("What is the capital of France? One word.", max_new_tokens=8)
    assert "Paris" in answer


def test_zero_shot_passes_the_conformance_kit(generator: Generator) -> None:
    report = check_stage(ZeroShotStage, params={"labels": ["positive", "negative"],
                                                "generator": generator},
                         text="I love this bank, great service!", run_engine=False)
    assert report.output[0].data["label"] in {"positive", "negative"}


def test_loading_the_gguf_model_draws_no_progress_bar() -> None:
    # transformers' GGUF reader has a tqdm bar of its own that its progress switch ignores;
    # a library must not draw on its users' terminals. A fresh process: the model is loaded
    # once per process.
    import subprocess
    import sys

    code = "from hybrid_ai.llm._generative import Generator; Generator().warm_up()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    assert "de-quantizing" not in done.stderr and "it/s" not in done.stderr
