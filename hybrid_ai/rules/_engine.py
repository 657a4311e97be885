"""Forward chaining: working memory, the agenda, and the actions rules take when they fire.

    engine = Engine(compile_rules([...]), strategy="depth")
    order = engine.insert("order", {"id": 1, "amount": 900})
    engine.run()                           # fires to a fixpoint (or raises RuleLimitError)
    engine.facts("flag")

Conflict resolution: higher salience first; within a salience ``depth`` fires the newest
activation first and ``breadth`` the oldest. An activation fires at most once (refraction); a
``no_loop`` rule does not re-activate itself through its own actions. Agenda groups form a focus
stack with ``MAIN`` at the bottom.

Limits: ``max_fires`` firings per ``run``, ``max_facts`` facts in working memory and
``timeout_s`` seconds of wall time per top-level call (``insert``, ``insert_all``, ``run``, ...)
bound every evaluation; crossing one raises :class:`RuleLimitError` (the engine is then spent:
make a new one). The clock is read every few hundred firings and every few thousand
activations, inserts and partial matches, so a runaway join is stopped too, even one whose
matches never complete.

``engine.firings`` is the provenance log of every firing. An engine kept alive across many
inputs (a stream, a session) can bound it: ``Engine(rules, keep_firings=1000)`` keeps the
newest 1,000; a firing holds its matched facts, so an unbounded log keeps retracted facts alive.
"""

from __future__ import annotations

import gc
import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import HybridAIError
from ._rete import Block, Fact, Network, Rule, Token

__all__ = ["Activation", "Engine", "Firing", "RuleLimitError", "Strategy"]

Strategy = Literal["depth", "breadth"]
Action = Callable[["Engine", "Activation"], None]


class RuleLimitError(HybridAIError):
    """An evaluation crossed a limit: ``limit`` is max_fires, max_facts or timeout_s.

    ``value`` is the limit's setting and ``rule`` the rule fired last (None before any firing);
    the message says how to raise the limit.
    """

    def __init__(self, message: str, *, limit: str = "max_fires", value: float | None = None,
                 rule: str | None = None) -> None:
        super().__init__(message)
        self.limit, self.value, self.rule = limit, value, rule

    def __reduce__(self) -> tuple[Any, ...]:
        return (_limit_error, (str(self), self.limit, self.value, self.rule))


def _limit_error(message: str, limit: str, value: float | None,
                 rule: str | None) -> RuleLimitError:
    return RuleLimitError(message, limit=limit, value=value, rule=rule)


_WHAT = {"max_fires": "rules fired {value} times without reaching a fixpoint (a rule loop?)",
         "max_facts": "working memory reached {value} facts",
         "timeout_s": "the evaluation ran past {value} s"}


@dataclass(eq=False, slots=True)
class Activation:
    """A rule matched by a token, waiting on the agenda (``source``: the lazy block it came
    from, if any)."""

    rule: Rule
    token: Token
    seq: int
    alive: bool = True
    source: Block | None = None

    @property
    def env(self) -> dict[str, Any]:
        return self.token.env

    def bindings(self) -> dict[str, Any]:
        """The variable bindings, with bound facts shown by their ids."""
        return {k: (v.id if isinstance(v, Fact) else v) for k, v in self.token.env.items()}


class Firing:
    """What one firing did, for provenance: rule, bindings, matched fact ids, inserted facts.

    ``Firing(rule, token=t)`` reads bindings and matched ids from the match's token when first
    asked: most firings are never looked at one by one, and a token never changes.
    """

    __slots__ = ("_bindings", "_matched", "inserted", "rule", "token")

    def __init__(self, rule: str, bindings: dict[str, Any] | None = None,
                 matched: list[int] | None = None, inserted: list[Fact] | None = None, *,
                 token: Token | None = None) -> None:
        self.rule, self._bindings, self._matched, self.token = rule, bindings, matched, token
        self.inserted: list[Fact] = [] if inserted is None else inserted

    @property
    def bindings(self) -> dict[str, Any]:
        if self._bindings is None:
            env = self.token.env if self.token is not None else {}
            self._bindings = {k: (v.id if isinstance(v, Fact) else v) for k, v in env.items()}
        return self._bindings

    @property
    def matched(self) -> list[int]:
        if self._matched is None:
            facts = self.token.facts() if self.token is not None else []
            self._matched = [f.id for f in facts]
        return self._matched

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Firing):
            return NotImplemented
        return (self.rule, self.bindings, self.matched, self.inserted) == \
            (other.rule, other.bindings, other.matched, other.inserted)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Firing(rule={self.rule!r}, bindings={self.bindings!r}, "
                f"matched={self.matched!r}, inserted={self.inserted!r})")


class _Agenda:
    """One heap per agenda group; popped activations that died meanwhile are skipped.

    Entries are (-salience, +-seq, sub, item): ``item`` an Activation or a lazy Block, whose
    matches share its seq and come out in their own order; ``sub`` -1 puts an activation taken
    back (a firing limit) before the block it came from.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.sign = -1 if strategy == "depth" else 1
        self.newest = strategy == "depth"
        self.heaps: dict[str, list[tuple[int, int, int, Activation | Block]]] = {}
        self.focus: list[str] = ["MAIN"]

    def heap(self, group: str) -> list[tuple[int, int, int, Activation | Block]]:
        heap = self.heaps.get(group)
        if heap is None:
            heap = self.heaps[group] = []
        return heap

    def push(self, act: Activation) -> None:
        """Put back an activation ``pop`` returned."""
        block = act.source
        if block is not None:
            block.unget(act)
            if block.done:  # taken off the heap with its last match: back on with it
                block.done = False
                self.add_block(block)
            return
        entry = (-act.rule.salience, self.sign * act.seq, -1, act)
        heapq.heappush(self.heap(act.rule.group), entry)

    def add_block(self, block: Block) -> None:
        rule = block.rule
        heapq.heappush(self.heap(rule.group), (-rule.salience, self.sign * block.seq, 0, block))

    def pop(self) -> Activation | None:
        while self.focus:
            heap = self.heaps.get(self.focus[-1], [])
            while heap:
                item = heap[0][3]
                if type(item) is Activation:
                    heapq.heappop(heap)
                    if item.alive:
                        return item
                    continue
                assert isinstance(item, Block)
                act: Activation | None = item.take(self._maker(item), self.newest)
                if act is None or item.done:
                    heapq.heappop(heap)
                if act is not None:
                    return act  # a block with more matches stays on the heap

            if len(self.focus) == 1:
                return None
            self.focus.pop()  # an empty group hands focus back to the one below it
        return None

    @staticmethod
    def _maker(block: Block) -> Callable[[Token], Activation]:
        return lambda token: Activation(block.rule, token, block.seq, source=block)

    def pending(self) -> list[Activation]:
        """Live activations in firing order per group (focus stack top first), not consumed."""
        groups = list(dict.fromkeys([*reversed(self.focus), *self.heaps]))
        out: list[Activation] = []
        for group in groups:
            for *_, item in sorted(self.heaps.get(group, []), key=lambda e: e[:3]):
                if isinstance(item, Block):
                    out.extend(item.peek(self._maker(item), self.newest))
                elif item.alive:
                    out.append(item)
        return out


class Engine:
    """Working memory plus matcher plus agenda; ``run`` fires rules to a fixpoint."""

    def __init__(self, rules: Iterable[Rule] = (), *, strategy: Strategy = "depth",
                 max_fires: int = 100_000, max_facts: int = 1_000_000,
                 timeout_s: float | None = 60.0, keep_firings: int | None = None) -> None:
        if strategy not in ("depth", "breadth"):
            raise ValueError(f"unknown strategy {strategy!r}; use depth or breadth")
        for name, value in (("max_fires", max_fires), ("max_facts", max_facts),
                            ("timeout_s", timeout_s), ("keep_firings", keep_firings)):
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        self.strategy, self.max_fires = strategy, max_fires
        self.max_facts, self.timeout_s = max_facts, timeout_s
        self._deadline: float | None = None
        self.network = Network(self)
        self.network.meter.check = self._check_clock
        self.agenda = _Agenda(strategy)
        self.memory: dict[int, Fact] = {}
        self.firings: list[Firing] | deque[Firing] = (
            [] if keep_firings is None else deque(maxlen=keep_firings))
        self._index: dict[tuple[str, Any], Fact] = {}
        # Facts a modify made identical to an indexed one: they stand in when it goes.
        self._twins: dict[tuple[str, Any], list[Fact]] = {}
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
        if not self._seq & 1023:
            self._check_clock()  # a join that keeps matching must not outrun the deadline
        act = token.activation = Activation(rule, token, self._seq)
        entry = (-rule.salience, self.agenda.sign * self._seq, 0, act)
        heapq.heappush(self.agenda.heap(rule.group), entry)

    def schedule(self, rule: Rule, block: Block) -> None:
        """A lazy block of matches arrived: one agenda entry for all of them."""
        if rule.no_loop and self._firing is rule:
            return  # made by the rule's own action: no_loop drops them all
        self._seq += 1
        if not self._seq & 1023:
            self._check_clock()
        block.seq = self._seq
        self.agenda.add_block(block)

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
        if self._deadline is None and self.timeout_s is not None:
            with self._clock():
                return self._insert(kind, fields, support)
        return self._insert(kind, fields, support)

    def _insert(self, kind: str, fields: Mapping[str, Any], support: Token | None) -> Fact:
        key = _identity(kind, fields)
        fact = self._index.get(key) if key is not None else None
        if fact is None:
            if len(self.memory) >= self.max_facts:
                self._limit("max_facts", self.max_facts)
            if not self._next_id & 1023:
                self._check_clock()
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
        if self._lost:
            self._settle()
        return fact

    def insert_all(self, facts: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Fact]:
        """Assert many ``(kind, fields)`` facts at once (faster than one ``insert`` each)."""
        with _gc_paused(), self._clock():
            return [self._insert(kind, fields, None) for kind, fields in facts]

    def retract(self, fact: Fact | int) -> None:
        """Remove a fact (by object or id); matches that used it disappear."""
        fact = self.memory[fact] if isinstance(fact, int) else fact
        if self.memory.pop(fact.id, None) is None:
            return
        self._unindex(fact)
        self.network.remove_fact(fact)
        self._settle()

    def modify(self, fact: Fact | int, changes: Mapping[str, Any]) -> Fact:
        """Change fields of a fact, keeping its id: it leaves the network and re-enters."""
        fact = self.memory[fact] if isinstance(fact, int) else fact
        if self.memory.get(fact.id) is not fact:
            raise ValueError(f"{fact!r} is not in working memory (retracted?)")
        self._unindex(fact)
        self.network.remove_fact(fact)
        fact.fields = {**fact.fields, **changes}
        new_key = _identity(fact.kind, fact.fields)
        if new_key is not None:
            held = self._index.setdefault(new_key, fact)
            if held is not fact:
                self._twins.setdefault(new_key, []).append(fact)
        self.network.add_fact(fact)
        self._settle()
        return fact

    def _unindex(self, fact: Fact) -> None:
        """Take a fact out of the identity index; an identical twin, if any, takes its place."""
        key = _identity(fact.kind, fact.fields)
        if key is None:
            return
        twins = self._twins.get(key)
        if self._index.get(key) is fact:
            if twins:
                self._index[key] = twins.pop(0)
            else:
                del self._index[key]
        elif twins and fact in twins:
            twins.remove(fact)
        if twins is not None and not twins:
            del self._twins[key]

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
    def pending(self) -> list[Activation]:
        """The live activations in the order they would fire (per agenda group, the focused
        group first); the agenda is not consumed."""
        return self.agenda.pending()

    def focus(self, group: str) -> None:
        """Put an agenda group on top of the focus stack."""
        self.agenda.focus.append(group)

    def halt(self) -> None:
        """Stop ``run`` after the current firing."""
        self._halted = True

    def run(self, limit: int | None = None) -> int:
        """Fire activations until none is left (or ``halt``); returns how many fired."""
        with _gc_paused(), self._clock():
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
                self._limit("max_fires", cap, act.rule.id)
            if not fired & 255:
                self._check_clock()
            self.fire(act)
            fired += 1
        return fired

    # ---- limits ----------------------------------------------------------------------------
    @contextmanager
    def _clock(self) -> Iterator[None]:
        # The outermost call owns the deadline; calls made by firing rules share it.
        if self._deadline is not None or self.timeout_s is None:
            yield
            return
        self._deadline = time.perf_counter() + self.timeout_s
        try:
            yield
        finally:
            self._deadline = None

    def _check_clock(self) -> None:
        if self._deadline is not None and time.perf_counter() > self._deadline:
            self._limit("timeout_s", self.timeout_s or 0)

    def _limit(self, limit: str, value: float, next_rule: str | None = None) -> None:
        last = self.firings[-1].rule if self.firings else None
        what = _WHAT[limit].format(value=value)
        fired = f"last rule fired: {last!r}" if last else "no rule had fired yet"
        queued = f", next on the agenda: {next_rule!r}" if next_rule else ""
        raise RuleLimitError(
            f"{what}; {fired}{queued}. If the rules are right, raise the limit: "
            f"`{limit}: <more>` under `with:` of the rules stage, or Engine({limit}=...)",
            limit=limit, value=value, rule=last)

    def fire(self, act: Activation) -> None:
        """Run one activation's actions (refraction: it is spent whatever they do)."""
        act.alive = False
        record = Firing(act.rule.id, token=act.token)
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


class _GcPause:
    """Process-wide pause of the cyclic collector, counted across threads.

    Matching builds many small long-lived objects (tokens, environments) and frees almost none,
    so the collector's full passes find nothing and cost 20-45% of the time (Manners 32: 0.32 s
    paused, 0.61 s not; joins 5k x 20: 2.6 s vs 3.6 s). The first engine to start pauses it and
    the last to finish switches it back on, only if it was on before: threads running engines
    at once cannot switch it on under each other, nor leave it off.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if self.holders == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.holders += 1
        try:
            yield
        finally:
            with self.lock:
                self.holders -= 1
                if self.holders == 0 and self.was_enabled:
                    gc.enable()


_gc_paused = _GcPause()


def _identity(kind: str, fields: Mapping[str, Any]) -> tuple[str, Any] | None:
    try:
        key = (kind, frozenset(fields.items()))
        hash(key)
    except TypeError:
        return None  # unhashable field values: such facts are never de-duplicated
    return key
