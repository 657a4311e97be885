"""Fan-in merge policies for ``parallel`` nodes.

A policy receives one :class:`BranchOutcome` per branch (its new facts and confidence) and
returns the facts to keep on the main blackboard:

    union            keep every branch's facts, in branch order
    first            keep the facts of the first branch (in declaration order) that produced any
    best_confidence  keep the facts of the branch with the highest confidence
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._facts import Fact
from ._run import BranchOutcome

__all__ = ["MERGE_POLICIES", "MergePolicy"]

MergePolicy = Callable[[Sequence[BranchOutcome]], list[Fact]]


def union(branches: Sequence[BranchOutcome]) -> list[Fact]:
    """Every branch's facts."""
    return [fact for branch in branches for fact in branch.facts]


def first(branches: Sequence[BranchOutcome]) -> list[Fact]:
    """The first branch with any facts."""
    return next((list(b.facts) for b in branches if b.facts), [])


def best_confidence(branches: Sequence[BranchOutcome]) -> list[Fact]:
    """The branch with the highest confidence (branches without one rank last)."""
    rated = [b for b in branches if b.confidence is not None]
    if not rated:
        return first(branches)
    return list(max(rated, key=lambda b: b.confidence or 0.0).facts)


MERGE_POLICIES: dict[str, MergePolicy] = {
    "union": union,
    "first": first,
    "best_confidence": best_confidence,
}
