"""Weak supervision on real SMS messages: keyword and rule labelling functions."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_ai._errors import ConfigError, ExpressionError
from hybrid_ai.ml import load_dataset
from hybrid_ai.ml._weak import (
    ABSTAIN,
    DawidSkene,
    apply_lfs,
    lexicon_lf,
    lf_summary,
    majority_vote,
    rule_lf,
)

CLASSES = ["ham", "spam"]


def _lfs() -> list:  # type: ignore[type-arg]
    return [
        lexicon_lf("prize", ["free", "prize", "won", "win", "winner", "claim", "cash"], "spam"),
        lexicon_lf("txt", ["txt", "text", "reply", "stop", "mobile", "ringtone"], "spam"),
        rule_lf("number", "match('0[0-9]{9,}|[0-9]{5}', text)", "spam"),
        rule_lf("money", "match('£|\\\\$[0-9]', text)", "spam"),
        rule_lf("urgent", "match('urgent|congratulations|guaranteed', lower(text))", "spam"),
        lexicon_lf("chat", ["lol", "haha", "ok", "u", "home", "later", "love", "sorry"], "ham"),
        rule_lf("short", "len(text) < 40", "ham"),
        lexicon_lf("me", ["i", "me", "my"], "ham", min_hits=2),
    ]


def test_label_model_beats_majority_vote_on_sms() -> None:
    data = load_dataset("sms_spam")
    texts, gold = data.train_texts[:2500], np.asarray(
        [CLASSES.index(y) for y in data.train_labels[:2500]])
    votes = apply_lfs(_lfs(), texts, CLASSES)
    assert votes.shape == (2500, 8)
    mv = majority_vote(votes, 2)
    assert (mv == ABSTAIN).any()  # where no function fires, majority vote cannot answer
    mv_filled = np.where(mv == ABSTAIN, 0, mv)  # and falls back to the majority class
    ds = DawidSkene().fit(votes, 2).predict(votes)
    mv_acc, ds_acc = (mv_filled == gold).mean(), (ds == gold).mean()
    assert ds_acc > mv_acc
    covered = mv != ABSTAIN
    assert (ds[covered] == gold[covered]).mean() >= (mv[covered] == gold[covered]).mean()
    summary = lf_summary(votes, gold.tolist())
    assert all(0 < row["coverage"] < 1 and row["accuracy"] > 0.5 for row in summary)


def test_posteriors_and_errors() -> None:
    votes = np.asarray([[0, ABSTAIN], [1, 1], [ABSTAIN, ABSTAIN]])
    model = DawidSkene().fit(votes, 2)
    proba = model.predict_proba(votes)
    assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1)
    assert majority_vote(np.asarray([[0, 1]]), 2)[0] == ABSTAIN  # a tie abstains
    with pytest.raises(ConfigError, match="not fitted"):
        DawidSkene().predict(votes)
    with pytest.raises(ConfigError, match="not among classes"):
        apply_lfs(_lfs(), ["x"], ["ham"])
    with pytest.raises(ExpressionError):
        rule_lf("bad", "text ==", "spam")
