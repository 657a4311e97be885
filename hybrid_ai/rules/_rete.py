"""The incremental matcher: a Rete network of alpha memories, hash-indexed joins and negation.

    net = Network(sink)                       # sink gets activate(rule, token) / deactivate(token)
    net.add_rule(rule)                        # rule.patterns: Pattern / TestPattern, in order
    fact = Fact(1, "order", {"id": 7, "amount": 900}); net.add_fact(fact)
    net.remove_fact(fact)

Facts enter alpha memories (one per kind and constant tests, shared between rules); every
pattern of a rule is a beta node that keeps its left tokens and its right facts in dicts keyed by
the equality-join values, so a new fact or token meets only the partners with the same key.
Dicts keyed by objects keep insertion order, which keeps firing order deterministic.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "AlphaTest",
    "Element",
    "Fact",
    "Meter",
    "NccPattern",
    "Network",
    "Pattern",
    "Rule",
    "Sink",
    "TestPattern",
    "Token",
]

Env = dict[str, Any]
Check = Callable[[Env], Any]
Key = Any  # a join value, or a tuple of them for joins on several variables


class Fact:
    """A fact in working memory: ``Fact(3, "order", {"id": 7})``; ``fact["id"]`` reads a field."""

    __slots__ = ("alphas", "fields", "id", "justified_by", "kind", "tokens")

    def __init__(self, fact_id: int, kind: str, fields: dict[str, Any]) -> None:
        self.id, self.kind, self.fields = fact_id, kind, fields
        self.alphas: list[AlphaMemory] = []
        self.tokens: dict[Token, None] = {}
        # Tokens whose logical inserts made this fact; empty and None differ: None = asserted.
        self.justified_by: dict[Token, None] | None = None

    def __repr__(self) -> str:
        return f"Fact({self.id}, {self.kind!r}, {self.fields!r})"

    # Read-only mapping of its fields, so ``?f.amount`` works in expressions; equality and
    # hashing stay by identity (two equal-looking facts are still two facts).
    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


Mapping.register(Fact)


class Token:
    """A partial match: the parent token plus one fact (or none, for not/exists/test)."""

    __slots__ = ("activation", "children", "count", "env", "fact", "key", "owner", "parent",
                 "supports")

    def __init__(self, parent: Token | None, fact: Fact | None, env: Env) -> None:
        self.parent, self.fact, self.env = parent, fact, env
        # Created on first use: most tokens never get children or supports, and fewer
        # allocations means less time in the garbage collector on big working memories.
        self.children: dict[Token, None] | None = None
        self.owner: BetaNode | None = None
        self.key: Key = ()
        self.count = 0
        self.activation: Any = None
        self.supports: list[Fact] | None = None

    def facts(self) -> list[Fact]:
        """The matched facts, first pattern first."""
        out: list[Fact] = []
        tok: Token | None = self
        while tok is not None:
            if tok.fact is not None:
                out.append(tok.fact)
            tok = tok.parent
        out.reverse()
        return out


@dataclass(frozen=True)
class AlphaTest:
    """A test on one fact alone; ``key`` identifies it so equal tests share a memory."""

    key: Hashable
    check: Callable[[Mapping[str, Any]], bool]
    equals: tuple[str, Any] | None = None  # (field, value): lets the alpha net hash on it


@dataclass(frozen=True)
class Pattern:
    """One condition element: ``kind`` plus tests; ``mode`` is pos, not or exists.

    ``joins`` are (variable, field) equalities with variables bound earlier (hash-indexed),
    ``binds`` bind new variables, ``tests`` are checks over the bindings plus ``this`` (the field
    value, set per test), ``fact_var`` binds the fact itself.
    """

    kind: str
    alpha: tuple[AlphaTest, ...] = ()
    joins: tuple[tuple[str, str], ...] = ()
    binds: tuple[tuple[str, str], ...] = ()
    tests: tuple[tuple[str | None, Check], ...] = ()
    fact_var: str | None = None
    mode: Literal["pos", "not", "exists"] = "pos"


@dataclass(frozen=True)
class TestPattern:
    """A condition over the bindings so far (``test: "?a > ?b"``)."""

    check: Check


@dataclass(frozen=True)
class NccPattern:
    """No match of a conjunction: ``not: [A, B]``; ``forall: [A, B]`` is ``not [A, not B]``."""

    patterns: tuple[Pattern | TestPattern | NccPattern, ...]


Element = Pattern | TestPattern | NccPattern


@dataclass
class Rule:
    """A production: patterns in order, and whatever the engine attaches (actions, salience)."""

    id: str
    patterns: list[Element]
    salience: int = 0
    no_loop: bool = False
    group: str = "MAIN"
    payload: Any = field(default=None, repr=False)
    makes: frozenset[str] = frozenset()  # kinds its actions insert


class Sink(Protocol):
    """Where complete matches go: the engine's agenda."""

    def activate(self, rule: Rule, token: Token) -> None: ...

    def deactivate(self, token: Token) -> None: ...

    def support_lost(self, fact: Fact) -> None: ...


def _hashable(values: tuple[Any, ...]) -> tuple[Any, ...]:
    # Unhashable field values (lists, dicts) still join: they are compared by their repr.
    try:
        hash(values)
    except TypeError:
        return tuple(repr(v) for v in values)
    return values


_EMPTY: dict[Any, None] = {}


def _hashable_one(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


class AlphaMemory:
    """Facts of one kind that pass the same constant tests; feeds its beta nodes."""

    def __init__(self, tests: tuple[AlphaTest, ...]) -> None:
        self.tests = tests
        # Value tests first (they reject most facts), field-presence checks last.
        ordered = sorted(tests, key=lambda t: isinstance(t.key, tuple) and t.key[:1] == ("has",))
        self.checks = tuple(t.check for t in ordered)
        self.facts: dict[Fact, None] = {}
        self.successors: list[BetaNode] = []

    def accepts(self, fact: Fact) -> bool:
        fields = fact.fields
        for check in self.checks:  # noqa: SIM110 - a plain loop beats all(genexpr) here
            if not check(fields):
                return False
        return True


class Meter:
    """Counts the tokens a network makes; every 4096 it calls ``check`` (the engine's clock),
    so a join that multiplies partial matches without ever completing one is stopped too."""

    __slots__ = ("check", "count")

    def __init__(self) -> None:
        self.count = 0
        self.check: Callable[[], None] = _nothing


def _nothing() -> None:
    return None


class BetaNode:
    """A node with a left memory of tokens indexed by join key and one child."""

    def __init__(self, left_vars: tuple[str, ...]) -> None:
        self.left_vars = left_vars
        self.left: dict[Key, dict[Token, None]] = {}
        self.child: BetaNode | None = None
        self.meter = Meter()  # replaced by the network's own when the node is linked

    def left_key(self, env: Env) -> Any:
        if len(self.left_vars) == 1:  # the usual join on one variable: no tuple to build
            return _hashable_one(env.get(self.left_vars[0]))
        return _hashable(tuple(env.get(v) for v in self.left_vars))

    def store(self, token: Token) -> Key:
        key = self.left_key(token.env)
        self.left.setdefault(key, {})[token] = None
        token.owner, token.key = self, key
        return key

    def left_activate(self, token: Token) -> None:
        raise NotImplementedError

    def forget(self, token: Token) -> None:
        bucket = self.left.get(token.key)
        if bucket is not None:
            bucket.pop(token, None)
            if not bucket:
                del self.left[token.key]

    def emit(self, parent: Token, fact: Fact | None, env: Env) -> None:
        meter = self.meter
        meter.count += 1
        if not meter.count & 4095:
            meter.check()
        token = Token(parent, fact, env)
        if parent.children is None:
            parent.children = {}
        parent.children[token] = None
        if fact is not None:
            fact.tokens[token] = None
        assert self.child is not None
        self.child.left_activate(token)


class JoinNode(BetaNode):
    """Positive or negated/exists pattern: joins tokens with the facts of an alpha memory."""

    def __init__(self, pattern: Pattern, memory: AlphaMemory) -> None:
        super().__init__(tuple(v for v, _ in pattern.joins))
        self.pattern, self.memory = pattern, memory
        self.right_fields = tuple(f for _, f in pattern.joins)
        self.right: dict[Key, dict[Fact, None]] = {}
        self.extends = bool(pattern.binds or pattern.fact_var)

    def right_key(self, fact: Fact) -> Any:
        if len(self.right_fields) == 1:
            return _hashable_one(fact.fields.get(self.right_fields[0]))
        get = fact.fields.get
        return _hashable(tuple(get(f) for f in self.right_fields))

    def passes(self, env: Env, fact: Fact) -> bool:
        if not self.pattern.tests:
            return True
        scope = dict(env)
        for var, name in self.pattern.binds:
            scope[var] = fact.fields.get(name)
        for field_name, check in self.pattern.tests:
            scope["this"] = fact.fields.get(field_name) if field_name else None
            if not check(scope):
                return False
        return True

    def extend(self, env: Env, fact: Fact) -> Env:
        if not self.extends:
            return env
        out = dict(env)
        for var, name in self.pattern.binds:
            out[var] = fact.fields.get(name)
        if self.pattern.fact_var:
            out[self.pattern.fact_var] = fact
        return out

    def left_activate(self, token: Token) -> None:
        key = self.store(token)
        # No copies of the memories iterated here: matching only changes nodes further down.
        partners = self.right.get(key, _EMPTY)
        if self.pattern.mode == "pos":
            tested = bool(self.pattern.tests)
            for fact in partners:
                if not tested or self.passes(token.env, fact):
                    self.emit(token, fact, self.extend(token.env, fact))
            return
        token.count = sum(1 for f in partners if self.passes(token.env, f))
        if (token.count == 0) == (self.pattern.mode == "not"):
            self.emit(token, None, token.env)

    def right_activate(self, fact: Fact) -> None:
        key = self.right_key(fact)
        self.right.setdefault(key, {})[fact] = None
        tested = bool(self.pattern.tests)
        for token in self.left.get(key, _EMPTY):
            if tested and not self.passes(token.env, fact):
                continue
            if self.pattern.mode == "pos":
                self.emit(token, fact, self.extend(token.env, fact))
                continue
            token.count += 1
            if token.count == 1:
                self.flip(token, gained=True)

    def right_remove(self, fact: Fact) -> None:
        key = self.right_key(fact)
        bucket = self.right.get(key)
        if bucket is None:
            return
        bucket.pop(fact, None)
        if not bucket:
            del self.right[key]
        if self.pattern.mode == "pos":
            return  # the tokens holding the fact are deleted through fact.tokens
        for token in list(self.left.get(key, {})):
            if self.passes(token.env, fact):
                token.count -= 1
                if token.count == 0:
                    self.flip(token, gained=False)

    def flip(self, token: Token, gained: bool) -> None:
        """The first partner arrived or the last one left: a not/exists match changes."""
        matched_now = gained == (self.pattern.mode == "exists")
        if matched_now:
            self.emit(token, None, token.env)
        else:
            for child in list(token.children or ()):
                delete_token(child)


class TestNode(BetaNode):
    """Passes a token on when a condition over its bindings holds."""

    def __init__(self, check: Check) -> None:
        super().__init__(())
        self.check = check

    def left_activate(self, token: Token) -> None:
        self.store(token)
        if self.check(token.env):
            self.emit(token, None, token.env)


class NccNode(BetaNode):
    """Passes a token on while its sub-chain (the negated conjunction) has no result for it."""

    def __init__(self) -> None:
        super().__init__(())
        self.sub_first: BetaNode | None = None
        # Each token enters the sub-chain through a proxy child kept out of token.children,
        # which hold only the tokens this node passed on.
        self.proxies: dict[Token, Token] = {}

    def left_activate(self, token: Token) -> None:
        self.store(token)
        token.count = 0
        proxy = Token(token, None, token.env)
        self.proxies[token] = proxy
        assert self.sub_first is not None
        self.sub_first.left_activate(proxy)
        if token.count == 0:
            self.emit(token, None, token.env)

    def forget(self, token: Token) -> None:
        super().forget(token)
        proxy = self.proxies.pop(token, None)
        if proxy is not None:
            delete_token(proxy)

    def owner_of(self, result: Token) -> Token:
        """The left token a sub-chain result descends from."""
        tok = result
        while tok.owner is not self.sub_first:
            assert tok.parent is not None
            tok = tok.parent
        assert tok.parent is not None
        return tok.parent


class NccPartner(BetaNode):
    """The end of a negated conjunction's sub-chain: counts results per owner token."""

    def __init__(self, ncc: NccNode) -> None:
        super().__init__(())
        self.ncc = ncc

    def left_activate(self, token: Token) -> None:
        self.store(token)
        owner = self.ncc.owner_of(token)
        owner.count += 1
        if owner.count == 1:
            for child in list(owner.children or ()):
                delete_token(child)

    def forget(self, token: Token) -> None:
        super().forget(token)
        owner = self.ncc.owner_of(token)
        owner.count -= 1
        if owner.count == 0 and owner in self.ncc.proxies:  # not while the owner is deleted
            self.ncc.emit(owner, None, owner.env)


class TerminalNode(BetaNode):
    """A complete match: hands it to the agenda."""

    def __init__(self, rule: Rule, sink: Sink) -> None:
        super().__init__(())
        self.rule, self.sink = rule, sink

    def left_activate(self, token: Token) -> None:
        self.store(token)
        self.sink.activate(self.rule, token)

    def forget(self, token: Token) -> None:
        super().forget(token)
        self.sink.deactivate(token)


def delete_token(token: Token, detach: bool = True) -> None:
    """Remove a token and everything built on it; logical supports it gave are withdrawn."""
    if token.children:
        for child in list(token.children):
            delete_token(child, detach=False)
        token.children = None
    if token.owner is not None:
        token.owner.forget(token)
        if isinstance(token.owner, TerminalNode) and token.supports:
            for fact in token.supports:
                _withdraw(fact, token, token.owner.sink)
            token.supports = None
        token.owner = None
    if token.fact is not None:
        token.fact.tokens.pop(token, None)
    if detach and token.parent is not None and token.parent.children:
        token.parent.children.pop(token, None)


def _withdraw(fact: Fact, token: Token, sink: Sink) -> None:
    if fact.justified_by is not None:
        fact.justified_by.pop(token, None)
        if not fact.justified_by:
            sink.support_lost(fact)


class _KindIndex:
    """The alpha memories of one kind; those with an equality test are found by hashing."""

    def __init__(self) -> None:
        self.memories: dict[Hashable, AlphaMemory] = {}
        self.linear: list[AlphaMemory] = []
        self.by_field: dict[str, dict[Any, list[AlphaMemory]]] = {}

    def add(self, key: Hashable, memory: AlphaMemory) -> None:
        self.memories[key] = memory
        test = next((t for t in memory.tests if t.equals is not None), None)
        try:
            assert test is not None and test.equals is not None
            name, value = test.equals
            self.by_field.setdefault(name, {}).setdefault(value, []).append(memory)
        except (AssertionError, TypeError):
            self.linear.append(memory)

    def candidates(self, fields: Mapping[str, Any]) -> list[AlphaMemory]:
        found = list(self.linear)
        for name, table in self.by_field.items():
            if name in fields:
                try:
                    found.extend(table.get(fields[name], ()))
                except TypeError:
                    continue  # an unhashable value equals no hashable constant
        return found


class Network:
    """The whole matcher: alpha memories by kind, one beta chain per rule."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.alphas: dict[str, _KindIndex] = {}
        self.meter = Meter()

    def memory(self, pattern: Pattern, existing: Iterable[Fact] = ()) -> AlphaMemory:
        """The shared alpha memory for a pattern's kind and constant tests (new: filled)."""
        index = self.alphas.setdefault(pattern.kind, _KindIndex())
        key = tuple(sorted((t.key for t in pattern.alpha), key=repr))
        if key not in index.memories:
            memory = AlphaMemory(pattern.alpha)
            for fact in existing:
                if fact.kind == pattern.kind and memory.accepts(fact):
                    memory.facts[fact] = None
                    fact.alphas.append(memory)
            index.add(key, memory)
        return index.memories[key]

    def add_rule(self, rule: Rule, existing: Iterable[Fact] = ()) -> None:
        """Build the rule's chain, fill it from the facts already present, then seed it."""
        nodes = self._chain(rule.patterns, list(existing))
        nodes.append(TerminalNode(rule, self.sink))
        self._link(nodes)
        self._seed(nodes[0])

    def _chain(self, patterns: Iterable[Element], existing: list[Fact]) -> list[BetaNode]:
        nodes: list[BetaNode] = []
        for pattern in patterns:
            if isinstance(pattern, TestPattern):
                nodes.append(TestNode(pattern.check))
            elif isinstance(pattern, NccPattern):
                nodes.append(self._ncc(pattern, existing))
            else:
                nodes.append(self._join(pattern, existing))
        return nodes

    def _join(self, pattern: Pattern, existing: list[Fact]) -> JoinNode:
        memory = self.memory(pattern, existing)
        node = JoinNode(pattern, memory)
        # Deeper nodes first, so a fact feeding two patterns of one rule matches once.
        memory.successors.insert(0, node)
        for fact in memory.facts:
            node.right.setdefault(node.right_key(fact), {})[fact] = None
        return node

    def _ncc(self, pattern: NccPattern, existing: list[Fact]) -> NccNode:
        ncc = NccNode()
        sub = self._chain(pattern.patterns, existing)
        sub.append(NccPartner(ncc))
        self._link(sub)
        ncc.sub_first = sub[0]
        return ncc

    def _link(self, nodes: list[BetaNode]) -> None:
        for node in nodes:
            node.meter = self.meter
        for parent, child in itertools.pairwise(nodes):
            parent.child = child

    def _seed(self, first: BetaNode) -> None:
        root = Token(None, None, {})
        first.left_activate(root)

    def add_fact(self, fact: Fact) -> None:
        """Send a new fact through every alpha memory of its kind that accepts it."""
        index = self.alphas.get(fact.kind)
        if index is None:
            return
        for memory in index.candidates(fact.fields):
            if memory.accepts(fact):
                memory.facts[fact] = None
                fact.alphas.append(memory)
                for node in memory.successors:
                    if isinstance(node, JoinNode):
                        node.right_activate(fact)

    def remove_fact(self, fact: Fact) -> None:
        """Delete the fact's tokens, then let not/exists nodes recount."""
        for token in list(fact.tokens):
            delete_token(token)
        for memory in fact.alphas:
            memory.facts.pop(fact, None)
            for node in memory.successors:
                if isinstance(node, JoinNode):
                    node.right_remove(fact)
        fact.alphas = []
