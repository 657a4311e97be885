"""Every built-in stage passes the same conformance kit plugin authors use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybrid_ai import BaseStage, NewFact
from hybrid_ai.fusion import DecideStage, FuseStage
from hybrid_ai.kg._stage import KGLookupStage
from hybrid_ai.ml import TextClassifierStage
from hybrid_ai.rules import RulesStage
from hybrid_ai.testing import StaticStage, check_stage

ROOT = Path(__file__).resolve().parents[1]


def test_fuse_passes() -> None:
    prediction = {"model": "m", "label": "a", "proba": {"a": 0.7, "b": 0.3}}
    report = check_stage(FuseStage, params={"output": "intent"},
                         facts={"prediction": [prediction]})
    assert report.output[0].data["label"] == "a"


def test_decide_passes() -> None:
    veto = {"label": "fraud", "strength": "veto", "reason": "stolen"}
    report = check_stage(DecideStage, facts={"decision": [veto]})
    assert report.output[0].data["label"] == "fraud"
    assert report.output[0].data["final"] is True


def test_rules_passes(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - id: stolen\n    when: \"text matches 'stolen'\"\n"
                     "    then: {decision: {label: fraud}, strength: veto}\n")
    report = check_stage(RulesStage, params={"path": str(rules)}, text="card stolen")
    assert [f.kind for f in report.output] == ["decision"]


def test_kg_lookup_passes(tmp_path: Path) -> None:
    kb = tmp_path / "kb.json"
    kb.write_text(json.dumps({"base": "http://x.org/", "nodes": [
        {"id": "card", "type": "Product", "label": "Card", "aliases": ["bank card"]}]}))
    report = check_stage(KGLookupStage, params={"path": str(kb)}, text="my bank card is lost")
    assert report.output[0].data["label"] == "Card"


def test_text_classifier_passes(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    rows = ["text,label"] + [f"card lost number {i},card" for i in range(5)] + [
        f"transfer money now {i},transfer" for i in range(5)]
    train.write_text("\n".join(rows) + "\n")
    report = check_stage(TextClassifierStage, params={"train_path": str(train)},
                         text="I lost my card")
    assert report.output[0].data["label"] == "card"


def test_static_stage_passes() -> None:
    check_stage(StaticStage, params={"facts": {"intent": [{"label": "x"}]}})


def test_contract_violations_are_all_reported() -> None:
    class Sloppy(BaseStage):
        produces = ("a",)

        def __init__(self, size: int = 1) -> None:  # positional: not keyword-only
            super().__init__(size=size)

        def process(self, view):  # type: ignore[no-untyped-def]
            return [NewFact("b", {"x": 1}, confidence=3.0)]

    with pytest.raises(AssertionError) as info:
        check_stage(Sloppy)
    text = str(info.value)
    assert "keyword-only" in text
    assert "'b' is declared in produces" in text
    assert "confidence in [0, 1]" in text


def test_embed_passes(encoder: object) -> None:
    from hybrid_ai.llm._stages import EmbedStage

    report = check_stage(EmbedStage, text="Where is my new card?")
    assert report.output[0].data["vector"].shape == (384,)


def test_few_shot_passes(tmp_path: Path, encoder: object) -> None:
    from hybrid_ai.llm._stages import FewShotStage

    examples = tmp_path / "examples.csv"
    examples.write_text("text,label\nmy card was stolen,lost_card\nsomeone took my card,lost_card\n"
                        "send money to my friend,transfer\nhow do I transfer funds,transfer\n")
    report = check_stage(FewShotStage, params={"examples_path": str(examples), "per_class": 2},
                         text="I want to move money to another account")
    prediction = next(f for f in report.output if f.kind == "prediction")
    assert prediction.data["label"] == "transfer"
