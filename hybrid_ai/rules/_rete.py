"""The incremental matcher: a Rete network of alpha memories, hash-indexed joins and negation.

    net = Network(sink)                       # sink gets activate(rule, token) / deactivate(token)
    net.add_rule(rule)                        # rule.patterns: Pattern / TestPattern, in order
    fact = Fact(1, "order", {"id": 7, "amount": 900}); net.add_fact(fact)
    net.remove_fact(fact)

Facts enter alpha memories (one per kind and constant tests, shared between rules); every
pattern of a rule is a beta node that keeps its left tokens and its right facts in dicts keyed by
the equality-join values, so a new fact or token meets only the partners with the same key.
Dicts keyed by objects keep insertion order, which keeps firing order deterministic.

Lazy tails (LEAPS-style): the last patterns of a rule that join nothing and test nothing (a
``context`` or ``counter`` fact) only multiply its matches. Unless the rule inserts logically,
they end in a :class:`ProductNode` that keeps each pattern's facts apart and hands the agenda one
:class:`Block` per arrival, the matches that arrival made, read only when the agenda reaches
them, in the order the eager network would have activated them (see ``_ordered``): firing order
is unchanged. Miss Manners makes ~60 such matches for every one that fires.

Other savings, none visible from outside: a join node indexes its alpha memory only when its
first left token comes (until then right activations stop at once); a rule's first node keeps
no index at all (only the root token ever enters it), and its facts wait in its second node's
memory without a token until they first join (:class:`FirstJoinNode`); a test passes matches on
without a token of its own; the alpha memories of a kind that compare one field with bounds
(``> 500``) are found by one bisection, and the list of candidates per combination of cuts is
kept.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "AlphaTest",
    "Block",
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
Pair = tuple[Any, int]  # an item of a product level (token or fact) and its arrival stamp
Combo = tuple[Pair, ...]


class Fact:
    """A fact in working memory: ``Fact(3, "order", {"id": 7})``; ``fact["id"]`` reads a field."""

    __slots__ = ("alphas", "fields", "id", "justified_by", "kind", "tokens")

    def __init__(self, fact_id: int, kind: str, fields: dict[str, Any]) -> None:
        self.id, self.kind, self.fields = fact_id, kind, fields
        self.alphas: list[AlphaMemory] = []
        # Its tokens; and the first joins holding it without one, with its join key there.
        self.tokens: dict[Token | FirstJoinNode, Key] = {}
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
    """A partial match: the parent token plus one fact (or none, for not/exists/test).

    ``count`` (not/exists/ncc owners), ``activation`` and ``supports`` (complete matches) are
    set only by the nodes that use them: most tokens never need them, and every attribute
    stored costs time on the millions of tokens a big join makes.
    """

    __slots__ = ("activation", "children", "count", "env", "fact", "key", "owner", "parent",
                 "supports")

    def __init__(self, parent: Token | None, fact: Fact | None, env: Env,
                 owner: BetaNode | None = None, key: Key = ()) -> None:
        self.parent, self.fact, self.env, self.owner, self.key = parent, fact, env, owner, key
        self.children: dict[Token, None] | None = None
        self.count: int
        self.activation: Any
        self.supports: list[Fact] | None

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
    """A test on one fact alone; ``key`` identifies it so equal tests share a memory.

    ``equals`` (field, value) lets the alpha net hash on it; ``compare`` (field, operator,
    bound), for ``> 500`` and the like, lets it bisect over the bounds of many memories at once
    (``check`` must then be that comparison whenever the field holds an int or float).
    """

    key: Hashable
    check: Callable[[Mapping[str, Any]], bool]
    equals: tuple[str, Any] | None = None
    compare: tuple[str, str, float] | None = None


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
    """A production: patterns in order, and whatever the engine attaches (actions, salience).

    ``logical`` says its actions may insert logically: truth maintenance then needs every match
    as a token, so the rule gets no lazy tail (the safe default for hand-made rules).
    """

    id: str
    patterns: list[Element]
    salience: int = 0
    no_loop: bool = False
    group: str = "MAIN"
    payload: Any = field(default=None, repr=False)
    makes: frozenset[str] = frozenset()  # kinds its actions insert
    logical: bool = True


class Sink(Protocol):
    """Where complete matches go: the engine's agenda (``schedule``: a lazy block of them)."""

    def activate(self, rule: Rule, token: Token) -> None: ...

    def schedule(self, rule: Rule, block: Block) -> None: ...

    def deactivate(self, token: Token) -> None: ...

    def support_lost(self, fact: Fact) -> None: ...


def _hashable_key(key: Any, single: bool) -> Any:
    # Unhashable field values (lists, dicts) still join: they are compared by their repr.
    if single:
        return repr(key)
    try:
        hash(key)
    except TypeError:
        return tuple(repr(v) for v in key)
    return key


_EMPTY: dict[Any, None] = {}


class AlphaMemory:
    """Facts of one kind that pass the same constant tests; feeds its beta nodes."""

    def __init__(self, tests: tuple[AlphaTest, ...]) -> None:
        self.tests = tests
        has = [t for t in tests if isinstance(t.key, tuple) and t.key[:1] == ("has",)]
        # Value tests first (they reject most facts), field-presence checks last.
        self.checks = tuple(t.check for t in tests if t not in has)
        self.required = frozenset(str(t.key[1]) for t in has)  # type: ignore[index]
        self.facts: dict[Fact, None] = {}
        self.successors: list[Any] = []  # JoinNode or _Level: right_activate / right_remove
        # A comparison checked first can be decided for many memories by one bisection.
        first = next((t for t in tests if t not in has), None)
        self.compare = first.compare if first is not None else None
        self.rank = 0  # its place among the memories of its kind bisected on the same test

    def accepts(self, fact: Fact) -> bool:
        """Whether the fact passes every test."""
        fields = fact.fields
        return _passes(self.checks, fields) and fields.keys() >= self.required


class Meter:
    """Counts the tokens a network makes; every 4096 it calls ``check`` (the engine's clock),
    so a join that multiplies partial matches without ever completing one is stopped too."""

    __slots__ = ("check", "count")

    def __init__(self) -> None:
        self.count = 0
        self.check: Callable[[], None] = _nothing


def _nothing() -> None:
    return None


def _link(token: Token, parent: Token | None, fact: Fact | None, meter: Meter) -> None:
    if parent is not None:
        if parent.children is None:
            parent.children = {token: None}
        else:
            parent.children[token] = None
    if fact is not None:
        fact.tokens[token] = None
    meter.count += 1
    if not meter.count & 4095:
        meter.check()


class BetaNode:
    """A node with a left memory of tokens indexed by join key and one child.

    ``add(parent, fact, env)`` makes a token here (the parent's match extended by ``fact``) and
    matches it; ``enter(token)`` does the same for a token made elsewhere (the root, a
    negated conjunction's proxy).
    """

    def __init__(self, left_vars: tuple[str, ...] = ()) -> None:
        self.left_vars = left_vars
        self.left: dict[Key, dict[Token, None]] = {}
        self.child: BetaNode | None = None
        self.meter = Meter()  # replaced by the network's own when the node is linked

    def key_of(self, env: Env) -> Key:
        names = self.left_vars
        if not names:
            return ()
        key = env.get(names[0]) if len(names) == 1 else tuple(env.get(v) for v in names)
        try:
            hash(key)
        except TypeError:
            return _hashable_key(key, len(names) == 1)
        return key

    def store(self, token: Token) -> None:
        key = self.key_of(token.env)
        self.left.setdefault(key, {})[token] = None
        token.owner, token.key = self, key

    def add(self, parent: Token, fact: Fact | None, env: Env) -> None:
        token = Token(parent, fact, env)
        _link(token, parent, fact, self.meter)
        self.enter(token)

    def enter(self, token: Token) -> None:
        self.store(token)
        self.match(token)

    def match(self, token: Token) -> None:
        raise NotImplementedError

    def forget(self, token: Token) -> None:
        bucket = self.left.get(token.key)
        if bucket is not None:
            bucket.pop(token, None)
            if not bucket:
                del self.left[token.key]

    def pass_on(self, token: Token) -> None:
        assert self.child is not None
        self.child.add(token, None, token.env)


def _joiner(pattern: Pattern) -> Callable[[Env, Fact], Env | None]:
    """The bindings after ``pattern`` matched ``fact``, or None when one of its tests fails."""
    binds, tests, fact_var = pattern.binds, pattern.tests, pattern.fact_var
    extends = bool(binds or fact_var)
    if not tests and binds and not fact_var:
        return _binder(binds)

    def joined(env: Env, fact: Fact) -> Env | None:
        fields = fact.fields
        if not tests and not extends:
            return env
        scope = dict(env)
        for var, name in binds:
            scope[var] = fields.get(name)
        if tests:
            for field_name, check in tests:
                scope["this"] = fields.get(field_name) if field_name else None
                if not check(scope):
                    return None
            if not extends:
                return env
            del scope["this"]  # the scope becomes the new bindings: one copy, not two
        if fact_var:
            scope[fact_var] = fact
        return scope

    return joined


def _binder(binds: tuple[tuple[str, str], ...]) -> Callable[[Env, Fact], Env | None]:
    # The common pattern that only binds (``order: {id: ?o, cust: ?c}``), without the checks.
    def bind(env: Env, fact: Fact) -> Env | None:
        get = fact.fields.get
        out = env.copy()
        for var, name in binds:
            out[var] = get(name)
        return out

    return bind


class JoinNode(BetaNode):
    """Positive or negated/exists pattern: joins tokens with the facts of an alpha memory."""

    def __init__(self, pattern: Pattern, memory: AlphaMemory) -> None:
        super().__init__(tuple(v for v, _ in pattern.joins))
        self.pattern, self.memory = pattern, memory
        self.right_fields = tuple(f for _, f in pattern.joins)
        self.right: dict[Key, dict[Fact, None]] = {}
        # Built at the first left token: until then right activations find nothing to join
        # (alert rules waiting for their first flag skip every order asserted before it).
        self.built = False
        self.top = False  # the first node of a rule: only the root token, once, ever enters
        self.positive = pattern.mode == "pos"
        self.negated = pattern.mode == "not"
        self.plain = not (pattern.tests or pattern.binds or pattern.fact_var)
        self.joined = _joiner(pattern)
        self.var = self.left_vars[0] if len(self.left_vars) == 1 else None

    def right_key(self, fact: Fact) -> Any:
        names = self.right_fields
        if not names:
            return ()
        get = fact.fields.get
        key = get(names[0]) if len(names) == 1 else tuple(get(f) for f in names)
        try:
            hash(key)
        except TypeError:
            return _hashable_key(key, len(names) == 1)
        return key

    def build(self) -> None:
        """Index the alpha memory's facts by join key.

        A fact on its way through the memory's successors has reached this node already when
        a token comes here: successors run deepest first, and tokens only flow deeper.
        """
        self.built = True
        right, names = self.right, self.right_fields
        for fact in self.memory.facts:
            key = fact.fields.get(names[0]) if len(names) == 1 else self.right_key(fact)
            try:
                bucket = right.get(key)
            except TypeError:
                key = self.right_key(fact)
                bucket = right.get(key)
            if bucket is None:
                right[key] = {fact: None}
            else:
                bucket[fact] = None

    def add(self, parent: Token, fact: Fact | None, env: Env) -> None:
        # The hot path of every join, written out: key, token, memory, links, partners.
        if not self.built:
            self.build()
        var = self.var
        if var is not None:
            key = env.get(var)
        else:
            key = tuple(env.get(v) for v in self.left_vars) if self.left_vars else ()
        left = self.left
        try:
            bucket = left.get(key)
        except TypeError:
            key = _hashable_key(key, var is not None)
            bucket = left.get(key)
        token = Token(parent, fact, env, self, key)
        if bucket is None:
            left[key] = {token: None}
        else:
            bucket[token] = None
        if parent.children is None:
            parent.children = {token: None}
        else:
            parent.children[token] = None
        if fact is not None:
            fact.tokens[token] = None
        meter = self.meter
        meter.count += 1
        if not meter.count & 4095:
            meter.check()
        if not self.positive:
            self.count(token, key)
            return
        partners = self.right.get(key)
        if partners:
            self.extend(token, env, partners)

    def match(self, token: Token) -> None:
        if not self.built:
            self.build()
        if self.positive:
            partners = self.right.get(token.key)
            if partners:
                self.extend(token, token.env, partners)
        else:
            self.count(token, token.key)

    def extend(self, token: Token, env: Env, partners: Iterable[Fact]) -> None:
        """A positive match for each partner that passes the tests."""
        # No copies of the memories iterated here: matching only changes nodes further down.
        add = self.child.add  # type: ignore[union-attr]
        if self.plain:
            for fact in partners:
                add(token, fact, env)
            return
        joined = self.joined
        for fact in partners:
            new = joined(env, fact)
            if new is not None:
                add(token, fact, new)

    def count(self, token: Token, key: Key) -> None:
        """not/exists: count the partners; pass the token on when the count says so."""
        partners = self.right.get(key, _EMPTY)
        if self.pattern.tests:
            env, joined = token.env, self.joined
            token.count = sum(1 for f in partners if joined(env, f) is not None)
        else:
            token.count = len(partners)
        if (token.count == 0) == self.negated:
            self.pass_on(token)

    def right_activate(self, fact: Fact) -> None:
        if not self.built:
            return
        if self.top:  # the root never comes again: no index needed, its key is ()
            tokens = self.left.get(())
        else:
            key = self.right_key(fact)
            bucket = self.right.get(key)
            if bucket is None:
                self.right[key] = {fact: None}
            else:
                bucket[fact] = None
            tokens = self.left.get(key)
        if not tokens:
            return
        if not self.positive:
            self.recount(tokens, fact, 1)
            return
        add = self.child.add  # type: ignore[union-attr]
        if self.plain:
            for token in tokens:
                add(token, fact, token.env)
            return
        joined = self.joined
        for token in tokens:
            new = joined(token.env, fact)
            if new is not None:
                add(token, fact, new)

    def right_remove(self, fact: Fact) -> None:
        if self.top or not self.built:
            return
        key = self.right_key(fact)
        bucket = self.right.get(key)
        if bucket is not None:
            bucket.pop(fact, None)
            if not bucket:
                del self.right[key]

    def counters(self, fact: Fact) -> list[Token]:
        """The not/exists tokens that counted the fact, to recount once its tokens are gone."""
        if self.positive:  # positive tokens holding the fact go through fact.tokens
            return []
        return list(self.left.get(self.right_key(fact), _EMPTY))

    def recount(self, tokens: Iterable[Token], fact: Fact, step: int) -> None:
        """not/exists: a partner came (step 1) or went (-1); flip the tokens it changes."""
        tested, joined = bool(self.pattern.tests), self.joined
        for token in tokens:
            if tested and joined(token.env, fact) is None:
                continue
            token.count += step
            if token.count == (1 if step > 0 else 0):
                self.flip(token, gained=step > 0)

    def flip(self, token: Token, gained: bool) -> None:
        """The first partner arrived or the last one left: a not/exists match changes."""
        if gained != self.negated:
            self.pass_on(token)
        else:
            for child in list(token.children or ()):
                delete_token(child)


class FirstJoinNode(JoinNode):
    """A rule's second pattern, when it and the first are positive: its left memory holds the
    first pattern's facts, and a fact's token is made only when it first joins (most orders
    meet no customer of the rule's tier: no token, no links for them). When the first pattern
    only binds, the first node hands facts to ``arrive``, and their bindings wait too.

    An entry keeps its place in the bucket when its token is made, and the fact keeps this
    node's place in ``fact.tokens``: joins and deletions run in the same order as with tokens.
    """

    def __init__(self, pattern: Pattern, memory: AlphaMemory) -> None:
        super().__init__(pattern, memory)
        # Per join key: each fact with its token, its bindings, or None (not made yet).
        self.entries: dict[Key, dict[Fact, Token | Env | None]] = {}
        # The rule's root token and its first node's bindings, set when linked (_seed).
        self.root = Token(None, None, {})
        self.first_joined = self.joined
        self.first_fields: tuple[str, ...] = ()  # the first pattern's field per join variable

    def add(self, parent: Token, fact: Fact | None, env: Env) -> None:
        assert fact is not None  # the first pattern is positive
        var = self.var
        key = env.get(var) if var is not None else tuple(env.get(v) for v in self.left_vars)
        self.hold(fact, env, key)

    def arrive(self, fact: Fact) -> None:
        """A fact of a first pattern that only binds: its key read straight off its fields."""
        names, get = self.first_fields, fact.fields.get
        self.hold(fact, None, get(names[0]) if len(names) == 1 else tuple(get(n) for n in names))

    def hold(self, fact: Fact, env: Env | None, key: Key) -> None:
        if not self.built:
            self.build()
        try:
            bucket = self.entries.get(key)
        except TypeError:
            key = _hashable_key(key, self.var is not None)
            bucket = self.entries.get(key)
        if bucket is None:
            self.entries[key] = {fact: env}
        else:
            bucket[fact] = env
        fact.tokens[self] = key
        meter = self.meter
        meter.count += 1
        if not meter.count & 4095:
            meter.check()
        partners = self.right.get(key)
        if partners:
            token = self.made(fact, env, key)
            self.extend(token, token.env, partners)

    def made(self, fact: Fact, env: Env | None, key: Key) -> Token:
        """The fact's token, made at its first match (not in root.children: never deleted)."""
        if env is None:
            env = self.first_joined(self.root.env, fact)
            assert env is not None  # a pattern that only binds always matches
        token = Token(self.root, fact, env, self, key)
        self.entries[key][fact] = token
        return token

    def right_activate(self, fact: Fact) -> None:
        if not self.built:
            return
        # The indexing lines of JoinNode.right_activate, inlined: this is the join hot path.
        key = self.right_key(fact)
        bucket = self.right.get(key)
        if bucket is None:
            self.right[key] = {fact: None}
        else:
            bucket[fact] = None
        entries = self.entries.get(key)
        if entries:
            self.join_right(entries, fact, key)

    def join_right(self, entries: dict[Fact, Token | Env | None], fact: Fact, key: Key) -> None:
        add, joined, plain = self.child.add, self.joined, self.plain  # type: ignore[union-attr]
        for held, entry in entries.items():  # made tokens replace values only: no resize
            if isinstance(entry, Token):
                new = entry.env if plain else joined(entry.env, fact)
                if new is not None:
                    add(entry, fact, new)
                continue
            env = entry if entry is not None else self.first_joined(self.root.env, held)
            assert env is not None  # a first pattern that only binds always matches
            new = env if plain else joined(env, fact)
            if new is not None:
                add(self.made(held, env, key), fact, new)

    def drop(self, fact: Fact, key: Key) -> None:
        """The fact was retracted: its entry goes, with its token and all built on it."""
        entry = self.entries[key][fact]
        if type(entry) is Token:
            delete_token(entry)  # forget takes the entry out
        else:
            self.forget_fact(fact, key)

    def forget(self, token: Token) -> None:
        assert token.fact is not None
        self.forget_fact(token.fact, token.key)

    def forget_fact(self, fact: Fact, key: Key) -> None:
        bucket = self.entries[key]
        del bucket[fact]
        if not bucket:
            del self.entries[key]


class TestNode(BetaNode):
    """Passes a match on when a condition over its bindings holds.

    The bindings never change, so a match that fails never passes later: it is dropped, not
    stored, and one that passes goes on as it is, with no token of this node's own.
    """

    def __init__(self, check: Check) -> None:
        super().__init__(())
        self.check = check

    def add(self, parent: Token, fact: Fact | None, env: Env) -> None:
        if self.check(env):
            self.child.add(parent, fact, env)  # type: ignore[union-attr]

    def enter(self, token: Token) -> None:
        token.owner, token.key = self, ()  # a root or proxy token: kept, for owner_of
        if self.check(token.env):
            self.pass_on(token)

    def forget(self, token: Token) -> None:
        return None


class NccNode(BetaNode):
    """Passes a token on while its sub-chain (the negated conjunction) has no result for it.

    A token whose first result comes goes into ``blocked`` (the network's): what it passed on
    is deleted only once the change in progress is through (``block``). One fact can make a
    result and end it again (a ``forall`` fact that is its own base and its own proof), and
    the matches must then stay, not go and come back as new activations that fire again.
    """

    def __init__(self, blocked: dict[Token, NccNode] | None = None, rank: int = 0) -> None:
        super().__init__(())
        self.rank = rank  # made after the negated conjunctions around it and above it
        self.sub_first: BetaNode | None = None
        # Each token enters the sub-chain through a proxy child kept out of token.children,
        # which hold only the tokens this node passed on.
        self.proxies: dict[Token, Token] = {}
        self.blocked: dict[Token, NccNode] = {} if blocked is None else blocked

    def match(self, token: Token) -> None:
        token.count = 0
        proxy = Token(token, None, token.env)
        self.proxies[token] = proxy
        assert self.sub_first is not None
        self.sub_first.enter(proxy)
        if token.count == 0:
            self.pass_on(token)
        else:  # it never passed anything on: a result ending later must pass it on
            self.blocked.pop(token, None)

    def forget(self, token: Token) -> None:
        super().forget(token)
        proxy = self.proxies.pop(token, None)
        if proxy is not None:
            delete_token(proxy)

    def block(self, owner: Token) -> None:
        """The change is through: if the owner still has a result, what it passed on goes."""
        if owner.count and owner in self.proxies:
            for child in list(owner.children or ()):
                delete_token(child)

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

    def match(self, token: Token) -> None:
        owner = self.ncc.owner_of(token)
        owner.count += 1
        if owner.count == 1:
            self.ncc.blocked[owner] = self.ncc

    def forget(self, token: Token) -> None:
        super().forget(token)
        owner = self.ncc.owner_of(token)
        owner.count -= 1
        # Not while the owner is deleted; nor if it was blocked during this change: it never
        # stopped passing on.
        if owner.count == 0 and owner in self.ncc.proxies \
                and self.ncc.blocked.pop(owner, None) is None:
            self.ncc.pass_on(owner)


class TerminalNode(BetaNode):
    """A complete match: hands it to the agenda (no memory here: the agenda holds it)."""

    def __init__(self, rule: Rule, sink: Sink) -> None:
        super().__init__(())
        self.rule, self.sink = rule, sink

    def add(self, parent: Token, fact: Fact | None, env: Env) -> None:
        token = Token(parent, fact, env, self, ())
        _link(token, parent, fact, self.meter)
        token.activation, token.supports = None, None
        self.sink.activate(self.rule, token)

    def enter(self, token: Token) -> None:
        token.owner, token.key = self, ()
        token.activation, token.supports = None, None
        self.sink.activate(self.rule, token)

    def forget(self, token: Token) -> None:
        self.sink.deactivate(token)
        if token.supports:
            for fact in token.supports:
                _withdraw(fact, token, self.sink)
            token.supports = None


def delete_token(token: Token, detach: bool = True) -> None:
    """Remove a token and everything built on it; logical supports it gave are withdrawn."""
    children = token.children
    if children:
        for child in list(children):
            delete_token(child, detach=False)
        token.children = None
    owner = token.owner
    if owner is not None:
        owner.forget(token)
        token.owner = None
    if token.fact is not None:
        token.fact.tokens.pop(token, None)
    if detach:
        parent = token.parent
        if parent is not None and parent.children:
            parent.children.pop(token, None)


def _withdraw(fact: Fact, token: Token, sink: Sink) -> None:
    if fact.justified_by is not None:
        fact.justified_by.pop(token, None)
        if not fact.justified_by:
            sink.support_lost(fact)


# ---- lazy tails -----------------------------------------------------------------------------
def _extender(pattern: Pattern) -> Callable[[Env, Fact], Env]:
    binds, fact_var = pattern.binds, pattern.fact_var

    def extend(env: Env, fact: Fact) -> Env:
        if not binds and not fact_var:
            return env
        out = dict(env)
        for var, name in binds:
            out[var] = fact.fields.get(name)
        if fact_var:
            out[fact_var] = fact
        return out

    return extend


class ProductNode(BetaNode):
    """The end of a rule whose last patterns join and test nothing: level 0 holds the tokens
    of the patterns before, level j the facts of tail pattern j, each with its arrival stamp.

    Every match is one item per level, so they are never built: each arrival hands the agenda
    a :class:`Block` (its matches with older items), and a match becomes a token only when it
    fires.
    """

    def __init__(self, rule: Rule, sink: Sink, tail: list[Pattern],
                 clock: Iterator[int]) -> None:
        super().__init__(())
        self.rule, self.sink, self.clock = rule, sink, clock
        self.levels: list[dict[Any, int]] = [{} for _ in range(len(tail) + 1)]
        self.extenders = [_extender(p) for p in tail]

    def add(self, parent: Token, fact: Fact | None, env: Env) -> None:
        token = Token(parent, fact, env, self, ())
        _link(token, parent, fact, self.meter)
        self.arrive(0, token)

    def enter(self, token: Token) -> None:
        token.owner, token.key = self, ()
        self.arrive(0, token)

    def arrive(self, level: int, item: Any) -> None:
        stamp = next(self.clock)
        self.levels[level][item] = stamp
        if all(self.levels):  # every other level holds something older: new matches
            self.sink.schedule(self.rule, Block(self, level, item, stamp))

    def forget(self, token: Token) -> None:
        self.levels[0].pop(token, None)

    def live(self, combo: Combo) -> bool:
        """Every item of the match is still there, and has not left and come back since."""
        for level, (item, stamp) in zip(self.levels, combo, strict=True):
            if level.get(item) != stamp:
                return False
        return True

    def token(self, combo: Combo) -> Token:
        """The match as a chain of tokens, built when it fires (linked nowhere: its rule does
        no logical inserts, so nothing needs to find it again)."""
        token: Token = combo[0][0]
        env = token.env
        for extend, (fact, _) in zip(self.extenders, combo[1:], strict=True):
            env = extend(env, fact)
            token = Token(token, fact, env)
        token.activation, token.supports = None, None
        return token

    def first(self, block: Block, newest: bool) -> tuple[Combo | None, bool]:
        """The block's first live match (None: none is left) and whether it may have more.

        Walking in order, the first match is the newest (depth; breadth: oldest) item older
        than the arrival on every other level: read straight off the levels.
        """
        combo: list[Pair] = []
        more = False
        for n, level in enumerate(self.levels):
            if n == block.level:
                combo.append((block.item, block.stamp))
                continue
            found, another = _older(level, block.stamp, newest)
            if found is None:
                return None, False
            combo.append(found)
            more = more or another
        return tuple(combo), more

    def combos(self, block: Block, newest: bool) -> Iterator[Combo]:
        """The block's matches in activation order (``newest``: reversed), from a snapshot."""
        # Each in stamp order; not the arriving item's own level, which no match reads again.
        levels = [list(level.items()) if n != block.level else []
                  for n, level in enumerate(self.levels)]
        pair = (block.item, block.stamp)
        return _block(levels, len(levels) - 1, block.level, pair, newest)


class _Level:
    """A product node's entry for one tail pattern, among its alpha memory's successors."""

    child = None

    def __init__(self, node: ProductNode, level: int) -> None:
        self.node, self.level = node, level

    def right_activate(self, fact: Fact) -> None:
        self.node.arrive(self.level, fact)

    def right_remove(self, fact: Fact) -> None:
        self.node.levels[self.level].pop(fact, None)

    def counters(self, fact: Fact) -> list[Token]:
        return []


def _older(level: dict[Any, int], bound: int, newest: bool) -> tuple[Pair | None, bool]:
    """The newest (or oldest) item older than ``bound`` (None: none is), and whether another
    one is."""
    found: Pair | None = None
    items = reversed(level.items()) if newest else iter(level.items())
    for item, stamp in items:
        if found is not None:
            return found, stamp < bound
        if stamp < bound:
            found = (item, stamp)
        elif not newest:
            break
    return found, False


def _stamp(pair: Pair) -> int:
    return pair[1]


def _run(level: list[Pair], lo: int, hi: int, newest: bool) -> list[Pair]:
    return level[lo:hi][::-1] if newest else level[lo:hi]


def _block(levels: list[list[Pair]], top: int, j: int, pair: Pair,
           newest: bool) -> Iterator[Combo]:
    """The matches over levels 0..top in which ``pair`` (of level j) is the newest item.

    The eager network made them when that item arrived: for each older match of the levels
    before j, in the order it made those, then each older item of the levels after j, in order.
    """
    stamp = pair[1]
    tails = [_run(levels[m], 0, bisect_left(levels[m], stamp, key=_stamp), newest)
             for m in range(j + 1, top + 1)]
    for pre in _ordered(levels, j - 1, stamp, newest):
        for tail in itertools.product(*tails):
            yield (*pre, pair, *tail)


def _tagged(run: list[Pair], level: int) -> Iterator[tuple[int, int, Pair]]:
    for pair in run:
        yield pair[1], level, pair


def _ordered(levels: list[list[Pair]], top: int, bound: int, newest: bool) -> Iterator[Combo]:
    """Every match over levels 0..top whose items are all older than ``bound``, in the order
    the eager network made them: by their newest item's arrival, then as in ``_block``."""
    if top < 0:
        yield ()
        return
    his = [bisect_left(levels[m], bound, key=_stamp) for m in range(top + 1)]
    if not all(his):
        return
    firsts = [levels[m][0][1] for m in range(top + 1)]
    runs: list[Iterator[tuple[int, int, Pair]]] = []
    for m in range(top + 1):
        # An item older than another level's oldest item is the newest of no match.
        floor = max((f for n, f in enumerate(firsts) if n != m), default=-1)
        lo = bisect_right(levels[m], floor, key=_stamp)
        runs.append(_tagged(_run(levels[m], lo, his[m], newest), m))
    for _, m, pair in heapq.merge(*runs, reverse=newest):
        yield from _block(levels, top, m, pair, newest)


class Block:
    """The matches one arrival gave a product node, as one agenda entry: ``take`` reads them
    one at a time, in activation order, skipping those whose items went meanwhile.

    The first is read straight off the levels (the newest, or oldest, older item of each);
    only a block asked for a second match sets up the ordered walk over a snapshot.
    """

    __slots__ = ("done", "first", "held", "item", "last", "level", "node", "seq", "source",
                 "stamp")

    def __init__(self, node: ProductNode, level: int, item: Any, stamp: int) -> None:
        self.node, self.level, self.item, self.stamp = node, level, item, stamp
        self.seq = 0  # set by the agenda
        self.source: Iterator[Combo] | None = None
        self.first: Combo | None = None  # the match taken first, straight off the levels
        self.held: tuple[Any, Combo] | None = None  # an activation taken, then put back
        self.last: Combo = ()
        self.done = False  # nothing left after the match taken last: off the agenda

    @property
    def rule(self) -> Rule:
        return self.node.rule

    def take(self, make: Callable[[Token], Any], newest: bool) -> Any:
        """The next live match, as ``make(token)`` (an activation), or None when none is left."""
        if self.held is not None:
            act, held = self.held
            self.held = None
            if act.alive and self.node.live(held):
                return act
        if self.levels_gone():
            return None
        if self.first is None and self.source is None:
            combo, more = self.node.first(self, newest)
            if combo is None:
                return None
            self.first = self.last = combo
            if not more:
                self.source, self.done = iter(()), True
            return make(self.node.token(combo))
        for combo in self.walk(newest):
            if self.node.live(combo):
                self.last = combo
                return make(self.node.token(combo))
        return None

    def walk(self, newest: bool) -> Iterator[Combo]:
        if self.source is None:
            self.source = _skip_first(self.node.combos(self, newest), self.first)
        return self.source

    def levels_gone(self) -> bool:
        # Cheap exits before any snapshot: the arriving item left, or a level emptied.
        node = self.node
        return node.levels[self.level].get(self.item) != self.stamp or not all(node.levels)

    def unget(self, act: Any) -> None:
        """Put back the activation ``take`` returned last (a firing limit was reached)."""
        self.held = (act, self.last)

    def peek(self, make: Callable[[Token], Any], newest: bool) -> list[Any]:
        """The live matches ``take`` would return, in order, without taking them."""
        out = []
        if self.held is not None and self.held[0].alive and self.node.live(self.held[1]):
            out.append(self.held[0])
        self.source, ahead = itertools.tee(self.walk(newest))
        out.extend(make(self.node.token(c)) for c in ahead if self.node.live(c))
        return out


def _skip_first(combos: Iterator[Combo], first: Combo | None) -> Iterator[Combo]:
    """The walk after a first match was taken off the levels: it leads the walk, if still there."""
    if first is None:
        yield from combos
        return
    for combo in combos:
        if combo != first:
            yield combo
        break
    yield from combos


def _tail_start(rule: Rule) -> int:
    """Where the rule's lazy tail starts (its length when it has none)."""
    patterns = rule.patterns
    start = len(patterns)
    if rule.logical:
        return start
    while start > 0:
        p = patterns[start - 1]
        if not isinstance(p, Pattern) or p.mode != "pos" or p.joins or p.tests:
            break
        start -= 1
    if start == 0 and len(patterns) == 1:
        return 1  # one fact, one match: nothing multiplies, a block would only cost
    return start


def _bind_direct(first: JoinNode, second: FirstJoinNode) -> None:
    """Let ``first`` hand its facts to ``second`` unbound, when its pattern only binds."""
    pattern = first.pattern
    names = dict(pattern.binds)  # the last bind of a variable wins, as in the bindings
    if pattern.tests or pattern.fact_var or pattern.joins or not pattern.binds:
        return  # joins: a variable repeated in it, which the root token's key () never meets
    if all(v in names for v in second.left_vars):
        second.first_fields = tuple(names[v] for v in second.left_vars)
        successors = first.memory.successors
        successors[successors.index(first)] = _Direct(second)


class _Direct:
    """Stands for a rule's first node among its memory's successors when that node would only
    bind and pass each fact on: the fact goes to the second node straight, one call less
    (the first node indexes nothing, so it has nothing to remove either)."""

    child = None

    def __init__(self, second: FirstJoinNode) -> None:
        self.right_activate = second.arrive

    def right_remove(self, fact: Fact) -> None:
        return None

    def counters(self, fact: Fact) -> list[Token]:
        return []


def _positive(node: BetaNode) -> bool:
    return type(node) is JoinNode and node.positive


# ---- the alpha network ----------------------------------------------------------------------
class _Bisected:
    """Memories of one kind whose discriminating test is ``FIELD OP bound``, sorted by bound:
    one bisection says which of them a number passes."""

    def __init__(self, field_name: str, op: str) -> None:
        self.field, self.op = field_name, op
        self.bounds: list[float] = []
        self.members: list[AlphaMemory] = []

    def add(self, memory: AlphaMemory, bound: float) -> None:
        at = bisect_right(self.bounds, bound)
        self.bounds.insert(at, bound)
        self.members.insert(at, memory)
        for rank, member in enumerate(self.members):
            member.rank = rank

    def passing(self, fields: Mapping[str, Any]) -> tuple[int, int] | None:
        """The ranks [lo, hi) whose test the field's value passes; None: not a plain number."""
        value = fields.get(self.field)
        if (type(value) is not int and type(value) is not float) or value != value:
            return None  # bools, text, missing, NaN: each memory runs its own check
        op, bounds = self.op, self.bounds
        if op == ">":
            return 0, bisect_left(bounds, value)
        if op == ">=":
            return 0, bisect_right(bounds, value)
        if op == "<":
            return bisect_right(bounds, value), len(bounds)
        return bisect_left(bounds, value), len(bounds)


_BISECTED_OPS = (">", ">=", "<", "<=")


Plan = list[tuple["AlphaMemory", tuple[Callable[[Mapping[str, Any]], bool], ...], frozenset[str]]]


class _KindIndex:
    """The alpha memories of one kind; those with an equality test are found by hashing,
    those comparing a field with a bound by bisecting.

    The memories a fact may enter depend, past the hashed ones, only on where its values fall
    among the bounds; that list (each memory with the checks still to run) is made once per
    combination of cuts and kept.
    """

    def __init__(self) -> None:
        self.memories: dict[Hashable, AlphaMemory] = {}
        self.linear: list[AlphaMemory] = []
        self.by_field: dict[str, dict[Any, Plan]] = {}
        self.groups: dict[tuple[str, str], _Bisected] = {}
        self.group_of: dict[AlphaMemory, _Bisected] = {}
        self.plans: dict[tuple[tuple[int, int] | None, ...], Plan] = {}

    def add(self, key: Hashable, memory: AlphaMemory) -> None:
        self.memories[key] = memory
        test = next((t for t in memory.tests if t.equals is not None), None)
        try:
            assert test is not None and test.equals is not None
            name, value = test.equals
            hashed = self.by_field.setdefault(name, {}).setdefault(value, [])
            hashed.append((memory, _rest(memory, test), memory.required))
        except (AssertionError, TypeError):
            self.linear.append(memory)
            self._group(memory)
            self.plans.clear()

    def _group(self, memory: AlphaMemory) -> None:
        if memory.compare is None or memory.compare[1] not in _BISECTED_OPS:
            return
        name, op, bound = memory.compare
        group = self.groups.setdefault((name, op), _Bisected(name, op))
        group.add(memory, bound)
        self.group_of[memory] = group

    def _plan(self, cuts: dict[_Bisected, tuple[int, int] | None]) -> Plan:
        plan: Plan = []
        for memory in self.linear:
            group = self.group_of.get(memory)
            cut = cuts[group] if group is not None else None
            if cut is None:
                plan.append((memory, memory.checks, memory.required))
            elif cut[0] <= memory.rank < cut[1]:  # its first check, the comparison, passes
                plan.append((memory, memory.checks[1:], memory.required))
        return plan

    def accepting(self, fact: Fact) -> list[AlphaMemory]:
        """The memories that accept the fact, in the order they were made (hashed ones last)."""
        fields = fact.fields
        groups = self.groups
        if not groups:
            cuts: tuple[tuple[int, int] | None, ...] = ()
        elif len(groups) == 1:
            cuts = (next(iter(groups.values())).passing(fields),)
        else:
            cuts = tuple(group.passing(fields) for group in groups.values())
        plan = self.plans.get(cuts)
        if plan is None:
            if len(self.plans) > 4096:
                self.plans.clear()
            plan = self.plans[cuts] = self._plan(dict(zip(groups.values(), cuts, strict=True)))
        found: list[AlphaMemory] = []
        keys = fields.keys()
        for memory, checks, required in plan:
            if checks and not _passes(checks, fields):
                continue
            if keys >= required:
                found.append(memory)
        if not self.by_field:
            return found
        for name, table in self.by_field.items():
            if name in fields:
                try:
                    hits = table.get(fields[name], ())
                except TypeError:
                    continue  # an unhashable value equals no hashable constant
                for memory, checks, required in hits:
                    if (not checks or _passes(checks, fields)) and keys >= required:
                        found.append(memory)
        return found


def _rest(memory: AlphaMemory, test: AlphaTest) -> tuple[Callable[[Mapping[str, Any]], bool], ...]:
    """The checks left once the hash found the fact: all but the equality, when the constant
    is text, an int or a bool (a hit then means equal; a float could be NaN)."""
    value = test.equals[1] if test.equals is not None else None
    if type(value) not in (str, int, bool):
        return memory.checks
    return tuple(c for c in memory.checks if c is not test.check)


def _passes(checks: tuple[Callable[[Mapping[str, Any]], bool], ...],
            fields: Mapping[str, Any]) -> bool:
    for check in checks:  # noqa: SIM110 - a plain loop beats all(genexpr) here
        if not check(fields):
            return False
    return True


class Network:
    """The whole matcher: alpha memories by kind, one beta chain per rule."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.alphas: dict[str, _KindIndex] = {}
        self.meter = Meter()
        self.clock = itertools.count(1)  # arrival stamps of the product nodes' items
        self.blocked: dict[Token, NccNode] = {}  # see NccNode: unblocked at each change's end
        self.nccs = itertools.count(1)

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
        facts = list(existing)
        start = _tail_start(rule)
        nodes = self._chain(rule.patterns[:start], facts, top=True)
        if start < len(rule.patterns):
            tail = [p for p in rule.patterns[start:] if isinstance(p, Pattern)]
            nodes.append(self._product(rule, tail, facts))
        else:
            nodes.append(TerminalNode(rule, self.sink))
        self._link(nodes)
        self._seed(nodes[0])
        self._block()

    def _chain(self, patterns: Iterable[Element], existing: list[Fact],
               top: bool = False) -> list[BetaNode]:
        nodes: list[BetaNode] = []
        for pattern in patterns:
            if isinstance(pattern, TestPattern):
                nodes.append(TestNode(pattern.check))
            elif isinstance(pattern, NccPattern):
                nodes.append(self._ncc(pattern, existing))
            else:
                # Only the rule's own root feeds a first join: a negated conjunction's chain
                # gets proxies, deleted with their owners, and needs real tokens.
                first = top and len(nodes) == 1 and _positive(nodes[0]) and pattern.mode == "pos"
                nodes.append(self._join(pattern, existing, FirstJoinNode if first else JoinNode))
        return nodes

    def _join(self, pattern: Pattern, existing: list[Fact],
              kind: type[JoinNode] = JoinNode) -> JoinNode:
        memory = self.memory(pattern, existing)
        node = kind(pattern, memory)
        # Deeper nodes first, so a fact feeding two patterns of one rule matches once.
        memory.successors.insert(0, node)
        return node

    def _product(self, rule: Rule, tail: list[Pattern], existing: list[Fact]) -> ProductNode:
        node = ProductNode(rule, self.sink, tail, self.clock)
        for level, pattern in enumerate(tail, 1):
            memory = self.memory(pattern, existing)
            memory.successors.insert(0, _Level(node, level))  # deeper first, as in _join
            for fact in memory.facts:
                node.levels[level][fact] = next(self.clock)
        return node

    def _ncc(self, pattern: NccPattern, existing: list[Fact]) -> NccNode:
        ncc = NccNode(self.blocked, next(self.nccs))
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
        second = first.child
        if isinstance(second, FirstJoinNode):
            assert isinstance(first, JoinNode)
            second.root, second.first_joined = root, first.joined
            _bind_direct(first, second)
        first.enter(root)
        if isinstance(first, JoinNode):
            first.top, first.right = True, {}

    def add_fact(self, fact: Fact) -> None:
        """Send a new fact through every alpha memory of its kind that accepts it."""
        index = self.alphas.get(fact.kind)
        if index is None:
            return
        for memory in index.accepting(fact):
            memory.facts[fact] = None
            fact.alphas.append(memory)
            for node in memory.successors:
                node.right_activate(fact)
        self._block()

    def remove_fact(self, fact: Fact) -> None:
        """Take the fact out of every memory, delete its tokens, then let not/exists recount.

        Out of every memory first: deleting its tokens can unblock a negated conjunction,
        whose new matches must not meet the fact in a memory not yet emptied of it. Only the
        not/exists tokens there before recount: those such new matches make never counted it.
        """
        alphas, fact.alphas = fact.alphas, []
        counted: list[tuple[Any, list[Token]]] = []
        for memory in alphas:
            memory.facts.pop(fact, None)
            for node in memory.successors:
                node.right_remove(fact)
                tokens = node.counters(fact)
                if tokens:
                    counted.append((node, tokens))
        for holder, key in list(fact.tokens.items()):
            if type(holder) is Token:
                delete_token(holder)
            else:
                holder.drop(fact, key)  # type: ignore[union-attr]
        fact.tokens.clear()
        for node, tokens in counted:  # a token deleted meanwhile has no owner any more
            node.recount([t for t in tokens if t.owner is node], fact, -1)
        self._block()

    def _block(self) -> None:
        """A change is through: negated conjunctions that matched during it block their tokens.

        Innermost first: blocking an inner one can end a result of the one around it, which
        then stays as it was. Deleting what they passed on can unblock others, which may then
        match in turn: hence the loop.
        """
        blocked = self.blocked
        while blocked:
            for owner in sorted(blocked, key=lambda o: -blocked[o].rank):
                ncc = blocked.pop(owner, None)  # gone: its result ended meanwhile
                if ncc is not None:
                    ncc.block(owner)
