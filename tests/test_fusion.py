"""Fusion strategies, the ``fuse`` stage, and ``decide`` precedence:
veto > override > the model's answer > advise, else an abstention with a reason."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from hybrid_ai import (
    Blackboard,
    Case,
    Engine,
    Fact,
    NewFact,
    UnknownComponentError,
    hookimpl,
    parallel,
    serial,
    stage,
)
from hybrid_ai.fusion import FUSION_STRATEGIES, DecideStage, FuseStage
from tests._stages_for_tests import LabelStage


def predictions(*items: tuple[str, Mapping[str, float] | None, str]) -> tuple[Blackboard,
                                                                               list[Fact]]:
    """(model, proba, stage) triples as prediction facts on a fresh board."""
    board = Blackboard(Case(text="t"))
    facts = []
    for model, proba, stage_id in items:
        data: dict[str, Any] = {"model": model}
        if proba:
            data["proba"] = dict(proba)
            data["label"] = max(proba, key=lambda k: proba[k])
        facts.append(board.add(NewFact("prediction", data), stage=stage_id))
    return board, facts


# --- strategies -------------------------------------------------------------------------------


def test_strategies_are_registered() -> None:
    assert sorted(FUSION_STRATEGIES) == ["gating", "hard_vote", "max_confidence", "soft_vote",
                                         "stacking", "weighted_average"]


def test_soft_vote_is_a_weighted_mean() -> None:
    _, facts = predictions(("m1", {"a": 0.6, "b": 0.4}, "s1"), ("m2", {"a": 0.2, "b": 0.8}, "s2"))
    scores = FUSION_STRATEGIES["soft_vote"](facts, {})
    assert list(scores) == ["b", "a"]  # best first
    assert scores["b"] == pytest.approx(0.6)
    assert scores["a"] == pytest.approx(0.4)
    weighted = FUSION_STRATEGIES["soft_vote"](facts, {"m1": 4.0})
    assert list(weighted) == ["a", "b"]
    assert weighted["a"] == pytest.approx((4 * 0.6 + 0.2) / 5)
    assert sum(weighted.values()) == pytest.approx(1.0)


def test_weights_by_stage_id() -> None:
    _, facts = predictions(("m1", {"a": 0.6, "b": 0.4}, "s1"), ("m2", {"a": 0.2, "b": 0.8}, "s2"))
    scores = FUSION_STRATEGIES["soft_vote"](facts, {"s1": 4.0})
    assert list(scores) == ["a", "b"]


def test_hard_vote_counts_top_labels() -> None:
    _, facts = predictions(("m1", {"a": 0.55, "b": 0.45}, "s1"),
                           ("m2", {"a": 0.51, "b": 0.49}, "s2"),
                           ("m3", {"b": 0.99, "a": 0.01}, "s3"))
    scores = FUSION_STRATEGIES["hard_vote"](facts, {})
    assert list(scores) == ["a", "b"]
    assert scores["a"] == pytest.approx(2 / 3, abs=1e-4)
    # the summed probabilities win over majority in soft voting
    assert next(iter(FUSION_STRATEGIES["soft_vote"](facts, {}))) == "b"
    # a weight can outvote the majority
    assert next(iter(FUSION_STRATEGIES["hard_vote"](facts, {"m3": 5.0}))) == "b"


def test_hard_vote_ties_broken_by_summed_probability() -> None:
    _, facts = predictions(("m1", {"a": 0.9, "b": 0.1}, "s1"), ("m2", {"b": 0.6, "a": 0.4}, "s2"))
    assert next(iter(FUSION_STRATEGIES["hard_vote"](facts, {}))) == "a"


def test_max_confidence_keeps_the_surest_model() -> None:
    _, facts = predictions(("m1", {"a": 0.6, "b": 0.4}, "s1"), ("m2", {"b": 0.9, "c": 0.1}, "s2"))
    scores = FUSION_STRATEGIES["max_confidence"](facts, {})
    assert scores == pytest.approx({"b": 0.9, "c": 0.1})


def test_label_without_proba_counts_with_its_confidence() -> None:
    board = Blackboard(Case())
    fact = board.add(NewFact("prediction", {"label": "x"}, confidence=0.7), stage="m")
    assert FUSION_STRATEGIES["soft_vote"]([fact], {}) == {"x": 1.0}


@pytest.mark.parametrize("name", sorted(FUSION_STRATEGIES))
def test_no_predictions(name: str) -> None:
    assert FUSION_STRATEGIES[name]([], {}) == {}


# --- the fuse stage ---------------------------------------------------------------------------


def test_fuse_stage_writes_one_fact() -> None:
    board, facts = predictions(("m1", {"a": 0.6, "b": 0.3, "c": 0.1}, "s1"),
                               ("m2", {"a": 0.4, "b": 0.5, "c": 0.1}, "s2"))
    fuse = FuseStage(strategy="soft_vote", output="intent", top_k=2)
    assert fuse.requires == ("prediction",)
    assert fuse.produces == ("intent",)
    (draft,) = fuse.process(board)
    assert draft.kind == "intent"
    assert draft.data["label"] == "a"
    assert list(draft.data["proba"]) == ["a", "b"]
    assert draft.data["models"] == ["m1", "m2"]
    assert draft.data["strategy"] == "soft_vote"
    assert draft.confidence == pytest.approx(0.5)
    assert draft.source == "fusion:soft_vote"
    assert list(draft.derived_from) == facts


def test_fuse_without_predictions_abstains() -> None:
    (draft,) = FuseStage().process(Blackboard(Case()))
    assert draft.kind == "intent"
    assert draft.data["abstain"] is True
    assert draft.data["label"] is None
    assert draft.data["reason"] == "no prediction to fuse"


def test_unknown_strategy_lists_the_available_ones() -> None:
    with pytest.raises(UnknownComponentError) as info:
        FuseStage(strategy="median")
    assert info.value.available == ("gating", "hard_vote", "max_confidence", "soft_vote",
                                    "stacking", "weighted_average")
    assert "hard_vote, max_confidence, soft_vote" in str(info.value)


def test_fuse_stage_version_follows_its_parameters() -> None:
    assert FuseStage().version == FuseStage().version
    assert FuseStage().version != FuseStage(strategy="hard_vote").version


def test_fuse_in_an_engine() -> None:
    node = serial(
        parallel(stage(LabelStage(label="a", conf=0.6), id="one"),
                 stage(LabelStage(label="b", conf=0.9), id="two"), merge="union"),
        stage("fuse", strategy="max_confidence", output="intent"),
    )
    with Engine(node) as engine:
        result = engine.run("x")
    (intent,) = result.of("intent")
    assert intent.data["label"] == "b"
    assert intent.provenance.source == "fusion:max_confidence"
    assert len(intent.provenance.inputs) == 2


def test_plugin_fusion_strategies_reach_the_fuse_stage() -> None:
    class Strategies:
        @hookimpl
        def hybrid_ai_fusion_strategies(self) -> dict[str, Any]:
            def pick_last(preds: Sequence[Fact], weights: Mapping[str, float]) -> dict[str, float]:
                return {str(preds[-1].data["label"]): 1.0} if preds else {}

            return {"pick_last": pick_last}

    node = serial(
        parallel(stage(LabelStage(label="a", conf=0.9), id="one"),
                 stage(LabelStage(label="b", conf=0.1), id="two"), merge="union"),
        stage("fuse", strategy="pick_last"),
    )
    with Engine(node, plugins=[Strategies()]) as engine:
        assert engine.run("x").of("intent")[0].data["label"] == "b"


# --- decide -----------------------------------------------------------------------------------


def decide_board(*proposals: tuple[str, str, int], base: tuple[str, float] | None = ("model", 0.8),
                 ) -> Blackboard:
    """A board with an ``intent`` (label, confidence) and rule proposals (label, strength,
    salience)."""
    board = Blackboard(Case(text="t"))
    if base is not None:
        board.add(NewFact("intent", {"label": base[0], "proba": {base[0]: base[1], "alt": 0.1}},
                          confidence=base[1]), stage="fuse", source="fusion:soft_vote")
    for label, strength, salience in proposals:
        board.add(NewFact("decision", {"label": label, "strength": strength,
                                       "salience": salience, "reason": f"rule for {label}"},
                          source=f"rule:{label}"), stage="rules")
    return board


def decide(board: Blackboard, **params: Any) -> NewFact:
    (draft,) = DecideStage(base="intent", **params).process(board)
    assert draft.kind == "decision"
    assert draft.data["final"] is True
    return draft


def test_veto_beats_everything() -> None:
    board = decide_board(("advised", "advise", 90), ("overridden", "override", 50),
                         ("vetoed", "veto", 1))
    draft = decide(board)
    assert draft.data["label"] == "vetoed"
    assert draft.data["strength"] == "veto"
    assert draft.detail == {"precedence": "veto"}
    assert draft.source == "rule:vetoed"
    by_label = {f.data["label"]: f.id for f in board.all() if f.kind != "input"}
    assert sorted(draft.data["overruled"]) == sorted(
        [by_label["advised"], by_label["overridden"], by_label["model"]])
    assert draft.derived_from[0].data["label"] == "vetoed"
    assert draft.data["alternatives"] == {"model": 0.8, "alt": 0.1}
    # no confidence of its own, and the model's belongs to another label: none is claimed
    assert draft.confidence is None


def test_override_beats_the_model() -> None:
    draft = decide(decide_board(("advised", "advise", 90), ("overridden", "override", 0)))
    assert draft.data["label"] == "overridden"
    assert draft.detail == {"precedence": "override"}


def test_model_beats_advice() -> None:
    draft = decide(decide_board(("advised", "advise", 90)))
    assert draft.data["label"] == "model"
    assert draft.data["strength"] == "model"
    assert draft.data["reason"] == "intent from fusion:soft_vote"
    assert draft.confidence == 0.8
    assert draft.source == "fusion:soft_vote"
    assert draft.data["alternatives"] == {"model": 0.8, "alt": 0.1}


def test_advice_decides_without_a_model_answer() -> None:
    draft = decide(decide_board(("advised", "advise", 0), base=None))
    assert draft.data["label"] == "advised"
    assert draft.confidence is None


def test_advice_decides_when_the_model_abstained() -> None:
    board = decide_board(("advised", "advise", 0), base=None)
    board.add(NewFact("intent", {"label": None, "abstain": True}), stage="fuse")
    assert decide(board).data["label"] == "advised"


def test_salience_picks_among_equal_strengths() -> None:
    draft = decide(decide_board(("low", "veto", 1), ("high", "veto", 99), ("mid", "veto", 50)))
    assert draft.data["label"] == "high"


def test_abstain_with_a_reason() -> None:
    draft = decide(decide_board(base=None))
    assert draft.data["abstain"] is True
    assert draft.data["label"] is None
    assert draft.data["reason"] == "no rule decided and no model answered"


def test_low_confidence_model_abstains() -> None:
    draft = decide(decide_board(base=("model", 0.3)), min_confidence=0.5)
    assert draft.data["abstain"] is True
    assert draft.data["reason"] == "intent confidence 0.30 is below 0.5"
    # a veto still decides
    assert decide(decide_board(("v", "veto", 0), base=("model", 0.3)),
                  min_confidence=0.5).data["label"] == "v"


def test_earlier_final_decisions_are_not_proposals() -> None:
    board = decide_board(base=("model", 0.8))
    board.add(NewFact("decision", {"label": "old", "final": True, "strength": "veto"}),
              stage="decide")
    assert decide(board).data["label"] == "model"


def test_decide_without_base() -> None:
    (draft,) = DecideStage().process(decide_board(("o", "override", 0)))
    assert draft.data["label"] == "o"
    (draft,) = DecideStage().process(decide_board())
    assert draft.data["abstain"] is True


def test_decision_in_a_result() -> None:
    node = serial(stage(LabelStage(label="card_arrival", conf=0.4), id="model"),
                  stage("decide", base="prediction", min_confidence=0.5))
    with Engine(node) as engine:
        result = engine.run("x")
    assert result.abstained
    assert result.decision is None
    assert "below 0.5" in result.explain().text()


# --- learned strategies and abstention ----------------------------------------------------------


def _samples(n: int = 120) -> tuple[list[Any], list[str]]:
    """Member "good" is right on 90 % of cases, member "noisy" on half; labels a/b."""
    import random

    rng = random.Random(0)
    samples, labels = [], []
    for i in range(n):
        truth = "a" if i % 2 else "b"
        other = "b" if truth == "a" else "a"
        good = truth if rng.random() < 0.9 else other
        noisy = truth if rng.random() < 0.5 else other
        samples.append([("good", {good: 0.7, ("b" if good == "a" else "a"): 0.3}),
                        ("noisy", {noisy: 0.9, ("b" if noisy == "a" else "a"): 0.1})])
        labels.append(truth)
    return samples, labels


def _accuracy(name: str, params: Mapping[str, Any], samples: Sequence[Any],
              labels: Sequence[str]) -> float:
    strategy = FUSION_STRATEGIES[name]
    hits = [next(iter(strategy.scores(s, params))) == y  # type: ignore[attr-defined]
            for s, y in zip(samples, labels, strict=True)]
    return sum(hits) / len(hits)


@pytest.mark.parametrize("name", ["weighted_average", "stacking"])
def test_learned_strategies_trust_the_better_member(name: str) -> None:
    samples, labels = _samples()
    params = FUSION_STRATEGIES[name].fit(samples, labels)  # type: ignore[attr-defined]
    json.dumps(params)  # fitted parameters are plain JSON
    test, truth = _samples(200)
    # An unweighted vote follows the louder, noisy member (0.9 beats 0.7): about 50 %.
    plain = FUSION_STRATEGIES["weighted_average"].scores  # type: ignore[attr-defined]
    unweighted = sum(next(iter(plain(s, {}))) == y for s, y in zip(test, truth, strict=True))
    assert unweighted / len(test) < 0.65
    assert _accuracy(name, params, test, truth) >= 0.8


def test_weighted_average_weights_favour_the_accurate_member() -> None:
    samples, labels = _samples()
    params = FUSION_STRATEGIES["weighted_average"].fit(samples, labels)  # type: ignore[attr-defined]
    assert params["weights"]["good"] > params["weights"]["noisy"]


def test_gating_gives_per_input_weights() -> None:
    from hybrid_ai.fusion._learned import Gating

    samples, labels = _samples()
    gate = Gating()
    params = gate.fit(samples, labels)
    weights = [gate.weights(sample, params) for sample in samples[:20]]
    assert all(w.sum() == pytest.approx(1.0) for w in weights)
    assert params["members"] == ["good", "noisy"]
    assert all(w[0] > w[1] for w in weights)  # the accurate member weighs more on each input


def test_fuse_abstains_with_reasons() -> None:
    board, _facts = predictions(("m1", {"a": 0.55, "b": 0.45}, "s1"),
                               ("m2", {"a": 0.4, "b": 0.6}, "s2"))
    low = FuseStage(min_confidence=0.9).process(board)[0]
    assert low.data["abstain"] and "below 0.9" in low.data["reason"]
    split = FuseStage(abstain_on_disagreement=True).process(board)[0]
    assert split.data["abstain"] and "m1 says a" in split.data["reason"]
    fused = board.add(split, stage="fuse")
    final = DecideStage(base="intent").process(board)[0]
    assert final.data["abstain"] and "disagree" in final.data["reason"]
    assert fused.id in [f.id for f in final.derived_from]


def test_learned_fuse_must_be_trained_or_loaded(tmp_path: Any) -> None:
    from hybrid_ai._errors import ConfigError

    board, _ = predictions(("m1", {"a": 0.8, "b": 0.2}, "s1"))
    with pytest.raises(ConfigError, match="must be trained"):
        FuseStage(strategy="stacking").process(board)
    samples, labels = _samples()
    fitted = FuseStage(strategy="stacking")
    fitted.fit_records(samples, labels)
    fitted.save(tmp_path)
    loaded = FuseStage(strategy="stacking", model=str(tmp_path))
    assert loaded.process(board)[0].data["label"] in ("a", "b")
    with pytest.raises(ConfigError, match="holds strategy"):
        FuseStage(strategy="gating", model=str(tmp_path)).warm_up()


@pytest.mark.parametrize(("content", "message"), [
    (b'{"params": {"w": "caf\xe9"}}', r"fusion.json:1:22: byte 0xe9 is not UTF-8"),
    (b'{"strategy": "stacking",\n "params": }', r"fusion.json:2:12: .* not valid JSON"),
    (b'["stacking"]', "is not a fitted fusion"),
    (None, "cannot read fitted fusion"),
])
def test_unreadable_fitted_fusion_is_a_clean_error(tmp_path: Any, content: bytes | None,
                                                   message: str) -> None:
    from hybrid_ai._errors import InputError

    if content is not None:
        (tmp_path / "fusion.json").write_bytes(content)
    with pytest.raises(InputError, match=message) as error:
        FuseStage(strategy="stacking", model=str(tmp_path)).warm_up()
    assert "hybrid-ai train" in str(error.value)
