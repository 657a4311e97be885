"""Weak supervision: rules and lexicons as labelling functions, majority vote, a label model.

Usage::

    lfs = [rule_lf("prize", "match('free|prize|claim', lower(text))", "spam"),
           lexicon_lf("chat", ["ok", "lol", "home"], "ham")]
    votes = apply_lfs(lfs, texts)                 # (n, m) label index or -1 (abstain)
    model = DawidSkene().fit(votes, n_classes=2)  # or majority_vote(votes, 2)
    labels = model.predict(votes)

A rule is an expression of the safe rule language (``hybrid_ai._expr``) over ``text`` and
``fields``: when it holds, the function votes its label, otherwise it abstains. A lexicon votes
when at least ``min_hits`` of its words occur as whole tokens.

The label model is Dawid-Skene, fitted by EM with numpy: each function has a confusion matrix
``P(vote | true class)`` in which *abstaining is one of the outcomes*. Keyword functions vote
only one label, so it is their firing rate under each class that tells a good function from a
noisy one; majority vote weighs them all alike and must abstain where none fires.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, InputError

__all__ = [
    "ABSTAIN",
    "DawidSkene",
    "LabellingFunction",
    "apply_lfs",
    "lexicon_lf",
    "lf_summary",
    "majority_vote",
    "rule_lf",
]

ABSTAIN = -1
_TOKEN = re.compile(r"[\w£$€']+")


@dataclass(frozen=True)
class LabellingFunction:
    """A name, the label it votes for, and ``fires(record) -> bool``."""

    name: str
    label: str
    fires: Callable[[Mapping[str, Any]], bool]


def _record(item: Any) -> Mapping[str, Any]:
    return item if isinstance(item, Mapping) else {"text": str(item), "fields": {}}


def rule_lf(name: str, expression: str, label: str,
            functions: Mapping[str, Callable[..., Any]] | None = None) -> LabellingFunction:
    """Votes ``label`` where the expression holds: ``rule_lf("n", "len(text) < 20", "ham")``."""
    from .._expr import compile_expression

    compiled = compile_expression(expression, functions=functions, names={"text", "fields"})

    def fires(record: Mapping[str, Any]) -> bool:
        env = {"text": str(record.get("text", "")), "fields": dict(record.get("fields") or {})}
        return bool(compiled(env))

    return LabellingFunction(name, label, fires)


def lexicon_lf(name: str, words: Iterable[str], label: str, *,
               min_hits: int = 1) -> LabellingFunction:
    """Votes ``label`` when ``min_hits`` words of the lexicon occur (whole tokens, any case)."""
    lexicon = frozenset(w.lower() for w in words)
    if not lexicon:
        raise ConfigError(f"lexicon {name!r} is empty; give it at least one word")

    def fires(record: Mapping[str, Any]) -> bool:
        tokens = _TOKEN.findall(str(record.get("text", "")).lower())
        return sum(t in lexicon for t in tokens) >= min_hits

    return LabellingFunction(name, label, fires)


def apply_lfs(lfs: Sequence[LabellingFunction], items: Sequence[Any],
              classes: Sequence[str] | None = None) -> NDArray[np.int64]:
    """The vote matrix: row per item, column per function, a class index or ``ABSTAIN``.

    ``classes`` fixes the label order (default: the sorted labels the functions vote for).
    """
    order = list(classes) if classes is not None else sorted({lf.label for lf in lfs})
    unknown = sorted({lf.label for lf in lfs} - set(order))
    if unknown:
        raise ConfigError(f"labelling functions vote {unknown}, not among classes {order}")
    votes = np.full((len(items), len(lfs)), ABSTAIN, dtype=np.int64)
    for j, lf in enumerate(lfs):
        index = order.index(lf.label)
        for i, item in enumerate(items):
            if lf.fires(_record(item)):
                votes[i, j] = index
    return votes


def majority_vote(votes: NDArray[np.int64], n_classes: int) -> NDArray[np.int64]:
    """Most votes wins; a tie or no vote at all is ``ABSTAIN``."""
    out = np.full(len(votes), ABSTAIN, dtype=np.int64)
    for i, row in enumerate(votes):
        counts = np.bincount(row[row != ABSTAIN], minlength=n_classes)
        if counts.sum() and (counts == counts.max()).sum() == 1:
            out[i] = int(counts.argmax())
    return out


def lf_summary(votes: NDArray[np.int64],
               truth: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Per function: coverage, and with gold labels its accuracy where it voted."""
    rows = []
    for j in range(votes.shape[1]):
        fired = votes[:, j] != ABSTAIN
        row: dict[str, Any] = {"index": j, "coverage": float(fired.mean())}
        if truth is not None and fired.any():
            gold = np.asarray(truth)
            row["accuracy"] = float((votes[fired, j] == gold[fired]).mean())
        rows.append(row)
    return rows


class DawidSkene:
    """The Dawid-Skene label model with abstention as an outcome: ``DawidSkene().fit(L, 2)``.

    EM starts from majority-vote posteriors; ``smoothing`` is a Dirichlet pseudo-count that
    keeps every probability above zero (a function that never fired under a class in the
    current estimate must not veto that class forever).
    """

    def __init__(self, max_iter: int = 100, tol: float = 1e-6, smoothing: float = 1.0) -> None:
        self.max_iter, self.tol, self.smoothing = max_iter, tol, smoothing

    def fit(self, votes: NDArray[np.int64], n_classes: int) -> DawidSkene:
        """Estimate class priors and one confusion matrix per function."""
        if votes.ndim != 2 or not len(votes):
            raise InputError("the vote matrix must be 2-d with at least one row")
        self.n_classes_ = n_classes
        onehot = self._outcomes(votes)
        posterior = self._initial(votes, n_classes)
        previous = -np.inf
        for _ in range(self.max_iter):
            self._m_step(onehot, posterior)
            posterior, loglik = self._e_step(onehot)
            if loglik - previous < self.tol:
                break
            previous = loglik
        self.log_likelihood_ = float(loglik)
        return self

    def _outcomes(self, votes: NDArray[np.int64]) -> NDArray[np.float64]:
        # (n, m, k + 1): the last outcome is "abstained".
        n, m = votes.shape
        k = self.n_classes_
        out = np.zeros((n, m, k + 1))
        index = np.where(votes == ABSTAIN, k, votes)
        out[np.arange(n)[:, None], np.arange(m)[None, :], index] = 1.0
        return out

    def _initial(self, votes: NDArray[np.int64], k: int) -> NDArray[np.float64]:
        counts = np.stack([(votes == c).sum(axis=1) for c in range(k)], axis=1).astype(float)
        counts += 1e-3  # rows with no vote start uniform
        out: NDArray[np.float64] = counts / counts.sum(axis=1, keepdims=True)
        return out

    def _m_step(self, onehot: NDArray[np.float64], posterior: NDArray[np.float64]) -> None:
        self.prior_ = (posterior.sum(axis=0) + self.smoothing) / (
            len(posterior) + self.smoothing * self.n_classes_)
        # confusion[j, c, o] = P(function j gives outcome o | class c)
        counts = np.einsum("nc,nmo->mco", posterior, onehot) + self.smoothing
        self.confusion_ = counts / counts.sum(axis=2, keepdims=True)

    def _e_step(self, onehot: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
        log_like = np.einsum("nmo,mco->nc", onehot, np.log(self.confusion_)) + np.log(self.prior_)
        top = log_like.max(axis=1, keepdims=True)
        joint = np.exp(log_like - top)
        total = joint.sum(axis=1, keepdims=True)
        return joint / total, float((np.log(total) + top).sum())

    def predict_proba(self, votes: NDArray[np.int64]) -> NDArray[np.float64]:
        """Posterior class probabilities per row."""
        if not hasattr(self, "confusion_"):
            raise ConfigError("DawidSkene is not fitted; call fit(votes, n_classes) first")
        posterior, _ = self._e_step(self._outcomes(votes))
        return posterior

    def predict(self, votes: NDArray[np.int64]) -> NDArray[np.int64]:
        """The most probable class per row (never abstains: no vote is evidence too)."""
        return np.asarray(self.predict_proba(votes).argmax(axis=1), dtype=np.int64)
