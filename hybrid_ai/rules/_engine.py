"""Forward chaining: working memory, the agenda, and the actions rules take when they fire.

    engine = Engine(compile_rules([...]), strategy="depth")
    order = engine.insert("order", {"id": 1, "amount": 900})
    engine.run()                           # fires to a fixpoint (or raises past max_fires)
    engine.facts("flag")

Conflict resolution: higher salience first; within a salience ``depth`` fires the newest
activation first and ``breadth`` the oldest. An activation fires at most once (refraction); a
``no_loop`` rule does not re-activate itself through its own actions. Agenda groups form a focus
stack with ``MAIN`` at the bottom.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import HybridAIError
from ._rete import Fact, Network, Rule, Token

__all__ = ["Activation", "Engine", "Firing", "RuleLimitError", "Strategy"]

Strategy = Literal["depth", "breadth"]
Action = Callable[["Engine", "Activation"], None]


class RuleLimitError(HybridAIError):
    """The engine fired ``max_fires`` rules without reaching a fixpoint (a rule loop)."""


@dataclass(eq=False, slots=True)
class Activation:
    """A rule matched by a token, waiting on the agenda."""

    rule: Rule
    token: Token
    seq: int
    alive: bool = True

    @property
    def env(self) -> dict[str, Any]:
        return self.token.env

    def bindings(self) -> dict[str, Any]:
        """The variable bindings, with bound facts shown by their ids."""
        return {k: (v.id if isinstance(v, Fact) else v) for k, v in self.token.env.items()}


@dataclass
class Firing:
    """What one firing did, for provenance: rule, bindings, matched and inserted fact ids."""

    rule: str
    bindings: dict[str, Any]
    matched: list[int]
    inserted: list[Fact] = field(default_factory=list)


class _Agenda:
    """One heap per agenda group; popped activations that died meanwhile are skipped."""

    def __init__(self, strategy: Strategy) -> None:
        self.sign = -1 if strategy == "depth" else 1
        self.heaps: dict[str, list[tuple[int, int, Activation]]] = {}
        self.focus: list[str] = ["MAIN"]

    def push(self, act: Activation) -> None:
        entry = (-act.rule.salience, self.sign * act.seq, act)
        heapq.heappush(self.heaps.setdefault(act.rule.group, []), entry)

    def pop(self) -> Activation | None:
        while self.focus:
            heap = self.heaps.get(self.focus[-1], [])
            while heap:
                act = heapq.heappop(heap)[2]
                if act.alive:
                    return act
            if len(self.focus) == 1:
                return None
            self.focus.pop()  # an empty group hands focus back to the one below it
        return None


class Engine:
    """Working memory plus matcher plus agenda; ``run`` fires rules to a fixpoint."""

    def __init__(self, rules: Iterable[Rule] = (), *, strategy: Strategy = "depth",
                 max_fires: int = 100_000) -> None:
        if strategy not in ("depth", "breadth"):
            raise ValueError(f"unknown strategy {strategy!r}; use depth or breadth")
        self.strategy, self.max_fires = strategy, max_fires
        self.network = Network(self)
        self.agenda = _Agenda(strategy)
        self.memory: dict[int, Fact] = {}
        self.firings: list[Firing] = []
        self._index: dict[tuple[str, Any], Fact] = {}
        self._next_id, self._seq = 1, 0
        self._firing: Rule | None = None
        self._current: Firing | None = None
        self._lost: list[Fact] = []
        self._halted = False
        for rule in rules:
            self.add_rule(rule)

    # ---- the sink the network reports to -------------------------------------------------
    def activate(self, rule: Rule, token: Token) -> None:
        if rule.no_loop and self._firing is rule:
            return  # the rule's own action re-matched it; no_loop drops that activation
        self._seq += 1
        token.activation = Activation(rule, token, self._seq)
        self.agenda.push(token.activation)

    def deactivate(self, token: Token) -> None:
        if token.activation is not None:
            token.activation.alive = False

    def support_lost(self, fact: Fact) -> None:
        self._lost.append(fact)

    # ---- working memory ------------------------------------------------------------------
    def add_rule(self, rule: Rule) -> None:
        """Add a rule; it matches the facts already in working memory too."""
        self.network.add_rule(rule, self.memory.values())

    def insert(self, kind: str, fields: Mapping[str, Any], *,
               support: Token | None = None) -> Fact:
        """Assert a fact; an identical fact already present is returned instead (no duplicates).

        With ``support`` the insert is logical: the fact goes when all its supports are gone.
        """
        key = _identity(kind, fields)
        fact = self._index.get(key) if key is not None else None
        if fact is None:
            fact = Fact(self._next_id, kind, dict(fields))
            self._next_id += 1
            fact.justified_by = {} if support is not None else None
            self.memory[fact.id] = fact
            if key is not None:
                self._index[key] = fact
            self.network.add_fact(fact)
        elif support is None:
            fact.justified_by = None  # asserted outright now: no longer depends on support
        if support is not None and fact.justified_by is not None:
            fact.justified_by[support] = None
            if support.supports is None:
                support.supports = []
            support.supports.append(fact)
        self._settle()
        return fact

    def insert_all(self, facts: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Fact]:
        """Assert many ``(kind, fields)`` facts at once (faster than one ``insert`` each)."""
        with _gc_paused():
            return [self.insert(kind, fields) for kind, fields in facts]

    def retract(self, fact: Fact | int) -> None:
        """Remove a fact (by object or id); matches that used it disappear."""
        fact = self.memory[fact] if isinstance(fact, int) else fact
        if self.memory.pop(fact.id, None) is None:
            return
        key = _identity(fact.kind, fact.fields)
        if key is not None and self._index.get(key) is fact:
            del self._index[key]
        self.network.remove_fact(fact)
        self._settle()

    def modify(self, fact: Fact | int, changes: Mapping[str, Any]) -> Fact:
        """Change fields of a fact, keeping its id: it leaves the network and re-enters."""
        fact = self.memory[fact] if isinstance(fact, int) else fact
        if self.memory.get(fact.id) is not fact:
            raise ValueError(f"{fact!r} is not in working memory (retracted?)")
        key = _identity(fact.kind, fact.fields)
        if key is not None and self._index.get(key) is fact:
            del self._index[key]
        self.network.remove_fact(fact)
        fact.fields = {**fact.fields, **changes}
        new_key = _identity(fact.kind, fact.fields)
        if new_key is not None:
            self._index.setdefault(new_key, fact)
        self.network.add_fact(fact)
        self._settle()
        return fact

    def _settle(self) -> None:
        # Logical facts whose last support went are retracted after the change that caused it,
        # not in the middle of the network walk.
        while self._lost:
            fact = self._lost.pop()
            if fact.id in self.memory and fact.justified_by is not None \
                    and not fact.justified_by:
                self.retract(fact)

    def facts(self, kind: str | None = None) -> list[Fact]:
        """Facts in working memory (of one kind), oldest first."""
        return [f for f in self.memory.values() if kind is None or f.kind == kind]

    # ---- running ---------------------------------------------------------------------------
    def focus(self, group: str) -> None:
        """Put an agenda group on top of the focus stack."""
        self.agenda.focus.append(group)

    def halt(self) -> None:
        """Stop ``run`` after the current firing."""
        self._halted = True

    def run(self, limit: int | None = None) -> int:
        """Fire activations until none is left (or ``halt``); returns how many fired."""
        with _gc_paused():
            return self._run(self.max_fires if limit is None else limit, limit is not None)

    def _run(self, cap: int, limited: bool) -> int:
        fired, self._halted = 0, False
        while not self._halted:
            act = self.agenda.pop()
            if act is None:
                return fired
            if fired >= cap:
                self.agenda.push(act)
                if limited:
                    return fired
                raise RuleLimitError(f"rules fired {cap} times without reaching a fixpoint; "
                                     f"last rule {act.rule.id!r} (a loop? raise max_fires)")
            self.fire(act)
            fired += 1
        return fired

    def fire(self, act: Activation) -> None:
        """Run one activation's actions (refraction: it is spent whatever they do)."""
        act.alive = False
        record = Firing(act.rule.id, act.bindings(), [f.id for f in act.token.facts()])
        self.firings.append(record)
        self._firing, self._current = act.rule, record
        try:
            for action in act.rule.payload or ():
                action(self, act)
        finally:
            self._firing, self._current = None, None

    def note_insert(self, fact: Fact) -> None:
        """Record a fact the firing rule inserted (for provenance)."""
        if self._current is not None:
            self._current.inserted.append(fact)


@contextmanager
def _gc_paused() -> Iterator[None]:
    # Matching builds many small long-lived objects (tokens, environments) and frees almost
    # none, so the cyclic collector's full passes find nothing and cost up to 40% of the time.
    # It is paused for bulk work only and switched back on after (if it was on).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _identity(kind: str, fields: Mapping[str, Any]) -> tuple[str, Any] | None:
    try:
        key = (kind, frozenset(fields.items()))
        hash(key)
    except TypeError:
        return None  # unhashable field values: such facts are never de-duplicated
    return key
