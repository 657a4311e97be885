"""The task stages (zero-shot by descriptions, entities, sentiment) and bad input everywhere:
empty, whitespace, very long, missing and non-text input give a clear outcome, never a crash."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hybrid_ai import Blackboard, Case, NewFact
from hybrid_ai._errors import ConfigError
from hybrid_ai.llm import Encoder, default_model_path
from hybrid_ai.llm._entities import EntitiesStage
from hybrid_ai.llm._generative import Generator
from hybrid_ai.llm._sentiment import SentimentStage
from hybrid_ai.llm._stages import EmbedStage, FewShotStage
from hybrid_ai.llm._tasks import ExtractStage, ZeroShotStage, repair_json
from hybrid_ai.testing import check_stage

from .test_encoder import CARD, EXCHANGE, TOP_UP
from .test_generative import ScriptedGenerator

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge" / "banking.json"
LONG = " ".join(["my card payment was declined at the shop again"] * 400)  # ~19k characters
INTENTS = {"card_arrival": "my new card has not arrived yet",
           "exchange_rate": "the exchange rate between currencies",
           "top_up": "adding money to my account by top up"}


def board(text: str = "", **fields: object) -> Blackboard:
    return Blackboard(Case(text=text, fields=dict(fields)))


BAD = [("", "the case text is empty"), ("   \n\t", "the case text is empty")]


# -- zero-shot from label descriptions ------------------------------------------------------------


def test_zero_shot_by_descriptions_picks_the_nearest(encoder: Encoder) -> None:
    stage = ZeroShotStage(labels=INTENTS, method="embedding", encoder=encoder)
    for text, expected in [(CARD[0], "card_arrival"), (EXCHANGE[1], "exchange_rate"),
                           (TOP_UP[0], "top_up")]:
        (fact,) = stage.process(board(text))
        assert fact.data["label"] == expected
        assert abs(sum(fact.data["proba"].values()) - 1.0) < 1e-6
    assert fact.source == "llm:all-MiniLM-L6-v2/descriptions"


def test_zero_shot_bare_labels_describe_themselves(encoder: Encoder) -> None:
    stage = ZeroShotStage(labels=["exchange_rate", "card_arrival"], method="embedding",
                          encoder=encoder)
    assert stage.labels == {"exchange_rate": "exchange rate", "card_arrival": "card arrival"}
    (fact,) = stage.process(board("what is today's exchange rate for dollars?"))
    assert fact.data["label"] == "exchange_rate"


@pytest.mark.parametrize(("text", "reason"), BAD)
@pytest.mark.parametrize("method", ["embedding", "generative"])
def test_zero_shot_abstains_on_empty_text(encoder: Encoder, method: str, text: str,
                                          reason: str) -> None:
    gen = ScriptedGenerator()  # would fail if called: it has no scores
    stage = ZeroShotStage(labels=INTENTS, method=method, encoder=encoder, generator=gen)
    (fact,) = stage.process(board(text))
    assert fact.data["label"] is None and fact.data["abstain"] is True
    assert reason in fact.data["reason"] and fact.confidence == 0.0
    assert gen.prompts == []


def test_zero_shot_cuts_long_text_and_says_so() -> None:
    gen = ScriptedGenerator(scores={"a": -1.0, "b": -2.0})
    stage = ZeroShotStage(labels={"x": "a", "y": "b"}, generator=gen, max_text_chars=100,
                          calibrate=False)
    (fact,) = stage.process(board(LONG))
    assert fact.data["label"] == "x"
    assert fact.data["warnings"] == [f"the case text truncated from {len(LONG)} to 96 characters"]
    assert fact.detail["warnings"] == fact.data["warnings"]
    assert len(gen.prompts[0]) < 400


def test_zero_shot_reads_a_field_and_reports_wrong_types() -> None:
    gen = ScriptedGenerator(scores={"a": -1.0, "b": -2.0})
    stage = ZeroShotStage(labels={"x": "a", "y": "b"}, generator=gen, field="subject",
                          calibrate=False)
    (fact,) = stage.process(board("ignored", subject="hello"))
    assert fact.data["label"] == "x" and "Text: hello" in gen.prompts[0]
    (fact,) = stage.process(board("ignored", subject=42))
    assert fact.data["reason"] == "case field 'subject' is int, not text; nothing to read"
    (fact,) = stage.process(board("ignored", other=1))
    assert fact.data["reason"] == "case field 'subject' is missing (fields present: other)"


class BiasedGenerator(ScriptedGenerator):
    """Prefers option "a" whatever the text; the text itself favours "b" slightly."""

    def score_options(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        self.prompts.append(prompt)
        bias = {"a": -0.5, "b": -3.0}
        lift = 0.0 if "Text: N/A" in prompt else 1.0
        return np.array([bias[o] + (lift if o == "b" else 0.0) for o in options])


def test_zero_shot_calibration_removes_the_label_prior() -> None:
    labels = {"x": "a", "y": "b"}
    (raw,) = ZeroShotStage(labels=labels, generator=BiasedGenerator(),
                           calibrate=False).process(board("some text"))
    gen = BiasedGenerator()
    stage = ZeroShotStage(labels=labels, generator=gen)
    (fact,) = stage.process(board("some text"))
    stage.process(board("more text"))
    assert (raw.data["label"], fact.data["label"]) == ("x", "y")
    assert sum("Text: N/A" in p for p in gen.prompts) == 1  # the prior is computed once


def test_zero_shot_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="use one of: embedding, generative"):
        ZeroShotStage(labels=["a", "b"], method="nli")
    with pytest.raises(ConfigError, match="at least two labels"):
        ZeroShotStage(labels=["a"])
    with pytest.raises(ConfigError, match="list or a mapping"):
        ZeroShotStage(labels="a,b")  # type: ignore[arg-type]


# -- embed and few_shot on bad input --------------------------------------------------------------


@pytest.mark.parametrize(("text", "reason"), BAD)
def test_embed_marks_empty_text(encoder: Encoder, text: str, reason: str) -> None:
    (fact,) = EmbedStage(num_threads=2).process(board(text))
    assert fact.data["empty"] is True and not np.asarray(fact.data["vector"]).any()
    assert reason in fact.data["warnings"][0] and fact.data["dim"] == 384


def test_embed_records_truncation(encoder: Encoder) -> None:
    (fact,) = EmbedStage(num_threads=2).process(board(LONG))
    (warning,) = fact.data["warnings"]
    assert warning.startswith("the text truncated from ") and warning.endswith("to 256 tokens")
    assert fact.detail["warnings"] == [warning]


def test_few_shot_abstains_on_empty_text_and_keeps_warnings(encoder: Encoder,
                                                            tmp_path: Path) -> None:
    examples = tmp_path / "ex.csv"
    examples.write_text("text,label\n" + "".join(f'"{t}",card\n' for t in CARD)
                        + "".join(f'"{t}",exchange\n' for t in EXCHANGE))
    stage = FewShotStage(examples_path=str(examples), per_class=3)
    (fact,) = stage.process(board("  "))
    assert fact.kind == "prediction" and fact.data["abstain"] is True
    _, prediction = stage.process(board(LONG))
    assert prediction.data["label"] == "card"
    assert "truncated" in prediction.data["warnings"][0]


def test_few_shot_ignores_an_embedding_from_another_model(encoder: Encoder,
                                                          tmp_path: Path) -> None:
    examples = tmp_path / "ex.csv"
    examples.write_text("text,label\n" + "".join(f'"{t}",card\n' for t in CARD)
                        + "".join(f'"{t}",exchange\n' for t in EXCHANGE))
    view = board(EXCHANGE[0])
    view.add(NewFact("embedding", {"vector": np.ones(384, dtype=np.float32),
                                   "model": "other-model"}), stage="elsewhere")
    facts = FewShotStage(examples_path=str(examples), per_class=3).process(view)
    assert [f.kind for f in facts] == ["embedding", "prediction"]  # it embedded for itself
    assert facts[1].data["label"] == "exchange"


# -- extract ----------------------------------------------------------------------------------


def test_extract_on_empty_text_gives_nulls_without_calling_the_model() -> None:
    gen = ScriptedGenerator()
    (fact,) = ExtractStage(fields={"amount": "float"}, generator=gen).process(board(" "))
    assert fact.data["values"] == {"amount": None} and fact.data["attempts"] == 0
    assert fact.data["warnings"] == ["the case text is empty; nothing to read"]
    assert gen.prompts == []


def test_extract_mends_small_json_slips_locally() -> None:
    gen = ScriptedGenerator(["{'amount': 12.5, 'currency': 'EUR',"])
    (fact,) = ExtractStage(fields={"amount": "float", "currency": "str"},
                           generator=gen).process(board("12.50 euros"))
    assert fact.data["values"] == {"amount": 12.5, "currency": "EUR"}
    assert fact.data["attempts"] == 1 and fact.data["repaired"] is True


def test_extract_cuts_long_text() -> None:
    gen = ScriptedGenerator(['{"amount": 1}'])
    (fact,) = ExtractStage(fields={"amount": "int"}, generator=gen,
                           max_text_chars=50).process(board(LONG))
    assert "truncated" in fact.data["warnings"][0] and len(gen.prompts[0]) < 300


@pytest.mark.parametrize(("text", "expected"), [
    ("{'a': 1,}", {"a": 1}),
    ('{"a": "x', {"a": "x"}),
    ('{"a": [1, 2', {"a": [1, 2]}),
    ('{"a": None, "b": True}', {"a": None, "b": True}),
    ('{"a": 1} and more', {"a": 1}),
    ('{"a": "b\\"c', {"a": 'b"c'}),
    ("no json here", None),
])
def test_repair_json(text: str, expected: object) -> None:
    assert repair_json(text) == expected


# -- entities ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def entities() -> EntitiesStage:
    stage = EntitiesStage(path=str(KNOWLEDGE), types=["Product"])
    stage.warm_up()
    return stage


def test_gazetteer_finds_labels_aliases_and_typos(entities: EntitiesStage) -> None:
    text = "my virtal card and the plastic card were charged"
    found = {f.data["text"]: f.data for f in entities.process(board(text))}
    assert found["virtal card"]["label"] == "Virtual card"  # fuzzy: a typo
    assert found["plastic card"]["label"] == "Physical card"  # an alias
    for data in found.values():
        assert text[data["start"]:data["end"]] == data["text"] and data["type"] == "gazetteer"


@pytest.mark.parametrize("text", ["", "   "])
def test_entities_on_empty_text_adds_nothing(entities: EntitiesStage, text: str) -> None:
    assert entities.process(board(text)) == []


def test_entities_on_long_text_are_cut_and_warned(entities: EntitiesStage) -> None:
    facts = entities.process(board(LONG))
    assert facts and all("truncated" in f.data["warnings"][0] for f in facts)
    assert max(f.data["end"] for f in facts) <= 5000


def test_entities_needs_a_source() -> None:
    with pytest.raises(ConfigError, match="knowledge file"):
        EntitiesStage()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        EntitiesStage(ner_model="/nowhere").warm_up()


def _head_model(tmp_path: Path, kind: str, labels: list[str], favour: int) -> Path:
    """A local model directory: MiniLM's body plus a head that always favours one label."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    auto = getattr(transformers, kind)
    model = auto.from_pretrained(default_model_path(), local_files_only=True,
                                 num_labels=len(labels),
                                 id2label=dict(enumerate(labels)),
                                 label2id={x: i for i, x in enumerate(labels)})
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(0.0)
        model.classifier.bias[favour] = 5.0
    model.save_pretrained(tmp_path)
    transformers.AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(tmp_path)
    return tmp_path


def test_a_user_token_classification_model_adds_entities(tmp_path: Path) -> None:
    model = _head_model(tmp_path, "AutoModelForTokenClassification", ["O", "B-BANK", "I-BANK"], 1)
    stage = EntitiesStage(ner_model=str(model))
    text = "Monzo and Revolut"
    facts = stage.process(board(text))
    assert facts and all(f.data["type"] == "ner" and f.data["label"] == "BANK" for f in facts)
    assert all(text[f.data["start"]:f.data["end"]] == f.data["text"] for f in facts)
    assert stage.process(board("")) == []


# -- sentiment --------------------------------------------------------------------------------


def test_sentiment_zero_shot_by_default(encoder: Encoder) -> None:
    stage = SentimentStage()
    (good,) = stage.process(board("I love this bank, the service is wonderful and fast!"))
    (bad,) = stage.process(board("Terrible service, I am furious and I lost my money."))
    assert (good.kind, good.data["label"], bad.data["label"]) == ("sentiment", "positive",
                                                                  "negative")
    assert good.data["method"] == "embedding" and set(good.data["proba"]) == {
        "positive", "negative", "neutral"}
    (empty,) = stage.process(board(""))
    assert empty.kind == "sentiment" and empty.data["abstain"] is True


def test_sentiment_by_label_likelihood(generator: Generator) -> None:
    (fact,) = SentimentStage(method="generative").process(
        board("Worst service ever, I hate it."))
    assert fact.data["label"] == "negative" and fact.data["method"] == "generative"


def test_sentiment_from_a_user_model_directory(tmp_path: Path) -> None:
    model = _head_model(tmp_path, "AutoModelForSequenceClassification",
                        ["bearish", "bullish"], 1)
    stage = SentimentStage(model_path=str(model))
    (fact,) = stage.process(board("shares rallied"))
    assert fact.data["label"] == "bullish" and fact.data["method"] == "model"
    assert abs(sum(fact.data["proba"].values()) - 1.0) < 1e-5
    (fact,) = stage.process(board(""))
    assert fact.data["abstain"] is True


def test_new_stages_meet_the_stage_contract(encoder: Encoder) -> None:
    check_stage(EntitiesStage, params={"path": str(KNOWLEDGE)}, text="my virtual card")
    check_stage(SentimentStage, params={}, text="great results")
    check_stage(ZeroShotStage, params={"labels": INTENTS, "method": "embedding"},
                text="where is my card", run_engine=False)
