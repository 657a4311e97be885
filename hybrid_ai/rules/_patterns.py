"""The pattern syntax of chaining rules, compiled into engine rules (data in, closures out).

    rules = compile_rules([{"id": "big", "when": [{"order": {"amount": "> 500", "id": "?o"}}],
                            "then": [{"insert": {"flag": {"order": "?o"}}}]}])

A ``when`` list holds condition elements, matched left to right:

``KIND: {field: SPEC, ...}`` (optionally with ``as: ?f`` to bind the fact itself)
    SPEC is ``?x`` (binds ``x``; a variable bound earlier makes an equality join), a test
    starting with an operator (``"> 500"``, ``"in ['a', 'b']"``, ``"!= ?c"``, ``"matches 'x'"``)
    or any other value, compared for equality.
``not: {KIND: {...}}`` / ``exists: {KIND: {...}}``
    no fact / at least one fact matches (variables first bound inside stay local).
``test: "?a > ?b + 1"``
    an expression over the variables bound so far.
``not: [PATTERN, PATTERN, ...]`` / ``forall: [BASE, REQUIRED, ...]``
    no match of the whole conjunction / every match of BASE also matches all of REQUIRED.

``then`` is a list of actions: ``insert: {KIND: {field: VALUE}}``, ``logical: {...}`` (retracted
again when the match that made it goes), ``retract: ?f``, ``modify: {?f: {field: VALUE}}``,
``focus: GROUP``, ``halt: true``. A VALUE is ``?x``, ``"=expression"`` or a literal. Expressions
are the safe language of ``hybrid_ai._expr``; ``?x`` in them reads variable ``x``, and ``?f.amount``
reads a field of a fact bound with ``as``.

YAML note: inside a flow mapping ``{id: ?o}`` is a syntax error (``?`` marks a complex key there),
so quote it, ``{id: "?o"}``, or write the pattern in block style (``id: ?o`` on its own line).
Rule keys: ``id``, ``description``, ``salience``, ``no_loop``, ``agenda_group``, ``when``, ``then``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from .._errors import ConfigError, ExpressionError, Location, Problem
from .._expr import compile_expression
from .._yaml import LineDict, LineList
from ._engine import Action, Activation, Engine
from ._rete import AlphaTest, Check, Element, NccPattern, Pattern, Rule, TestPattern

__all__ = ["compile_rule", "compile_rules", "is_chaining_rule", "needed_kinds", "split_chaining"]

_VAR = re.compile(r"\?([A-Za-z_][A-Za-z0-9_]*)")
_VAR_IN_TEXT = re.compile(r"('(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")|\?([A-Za-z_][A-Za-z0-9_]*)")
_OPERATOR = re.compile(r"^\s*(==|!=|<=|>=|<|>|in\s|not\s+in\s|matches\s|not\s+matches\s)")
_RULE_KEYS = {"id", "description", "salience", "when", "then", "no_loop", "agenda_group"}
_NUMERIC_TEST = re.compile(r"\s*(==|!=|<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}
Functions = Mapping[str, Callable[..., Any]]
Value = Callable[[dict[str, Any]], Any]


class _Problem(Exception):
    def __init__(self, message: str, where: Location) -> None:
        super().__init__(message)
        self.message, self.where = message, where


def is_chaining_rule(raw: Any) -> bool:
    """A rule written with a list of patterns (the chaining engine) rather than a string."""
    return isinstance(raw, Mapping) and isinstance(raw.get("when"), list)


def split_chaining(raw: Any) -> tuple[Any, list[Any], list[int]]:
    """Take the chaining rules out of a loaded rule file: (the rest, chaining, rest's indexes)."""
    items = raw.get("rules") if isinstance(raw, LineDict) else None
    if not isinstance(items, LineList) or not any(is_chaining_rule(r) for r in items):
        return raw, [], []
    positions = [i for i, r in enumerate(items) if not is_chaining_rule(r)]
    rest = LineList(items[i] for i in positions)
    rest.location = items.location
    rest.item_locations = [items.item_locations[i] for i in positions]
    copy = LineDict(raw)
    copy.location, copy.key_locations = raw.location, raw.key_locations
    copy.value_locations = raw.value_locations
    copy["rules"] = rest
    return copy, [r for r in items if is_chaining_rule(r)], positions


def needed_kinds(rules: list[Rule]) -> frozenset[str]:
    """Kinds the rules match positively that no rule of theirs inserts (they come from outside)."""
    made = {kind for rule in rules for kind in rule.makes}
    read = {p.kind for rule in rules for p in rule.patterns
            if isinstance(p, Pattern) and p.mode == "pos"}
    return frozenset(read - made)


def compile_rules(raws: list[Any], functions: Functions | None = None,
                  file: str | None = None) -> list[Rule]:
    """Compile rule mappings; every problem is collected into one ConfigError."""
    problems: list[Problem] = []
    rules = [r for raw in raws if (r := _compile_one(raw, functions or {}, file, problems))]
    problems.extend(_duplicates(raws, file))
    if problems:
        raise ConfigError(f"{file or 'rules'} has {len(problems)} problem(s)", problems)
    return rules


def _duplicates(raws: list[Any], file: str | None) -> list[Problem]:
    seen: set[Any] = set()
    found: list[Problem] = []
    for raw in raws:
        rid = raw.get("id") if isinstance(raw, Mapping) else None
        if isinstance(rid, str) and rid in seen:
            where = getattr(raw, "location", Location(file))
            found.append(Problem(f"rule {rid!r} is defined twice", where))
        seen.add(rid)
    return found


def compile_rule(raw: Mapping[str, Any], functions: Functions | None = None) -> Rule:
    """Compile one rule mapping (raises ConfigError)."""
    return compile_rules([raw], functions)[0]


def _compile_one(raw: Any, functions: Functions, file: str | None,
                 problems: list[Problem]) -> Rule | None:
    where = getattr(raw, "location", Location(file))
    name = raw.get("id", "?") if isinstance(raw, Mapping) else "?"
    try:
        return _rule(raw, functions, where)
    except _Problem as exc:
        problems.append(Problem(f"rule {name!r}: {exc.message}", exc.where))
    except ExpressionError as exc:
        problems.append(Problem(f"rule {name!r}: {exc.message}", exc.location, exc.hint))
    return None


def _rule(raw: Any, functions: Functions, where: Location) -> Rule:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
        raise _Problem("a rule needs an `id` text", where)
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise _Problem(f"unknown key(s) {unknown}; use {sorted(_RULE_KEYS)}", where)
    salience = raw.get("salience", 0)
    if not isinstance(salience, int) or isinstance(salience, bool):
        raise _Problem(f"`salience` must be an integer, not {salience!r}",
                       _at(raw, "salience", where))
    bound: dict[str, bool] = {}  # variable -> is it bound to a whole fact
    patterns = [_element(e, functions, bound, _item_at(raw, "when", i, where))
                for i, e in enumerate(_list(raw, "when", where))]
    if not patterns:
        raise _Problem("`when` needs at least one pattern", where)
    actions = [_action(a, functions, bound, _item_at(raw, "then", i, where))
               for i, a in enumerate(_list(raw, "then", where))]
    return Rule(raw["id"], independent_last(patterns), salience=salience,
                no_loop=bool(raw.get("no_loop", False)),
                group=str(raw.get("agenda_group") or "MAIN"), payload=actions,
                makes=_made_kinds(raw["then"]),
                logical=any(isinstance(a, Mapping) and "logical" in a for a in raw["then"]))


def independent_last(patterns: list[Element]) -> list[Element]:
    """Move positive patterns that share no variable with any other element to the end.

    Such a pattern (a ``context`` or ``counter`` fact, say) only multiplies the matches, wherever
    it stands; at the end, a change to it rebuilds one join instead of every join after it,
    and the network can keep those last patterns as a lazy tail (``_rete.ProductNode``) whose
    matches are built only when they fire. The set of matches is the same.
    """
    used = [_reads(p) for p in patterns]
    loose = [i for i, p in enumerate(patterns)
             if isinstance(p, Pattern) and p.mode == "pos" and not p.joins
             and not _writes(p) & set().union(*(u for j, u in enumerate(used) if j != i))]
    if len(loose) == len(patterns):
        return patterns
    return [p for i, p in enumerate(patterns) if i not in loose] + [patterns[i] for i in loose]


def _reads(element: Element) -> set[str]:
    if isinstance(element, TestPattern):
        return set(check_names(element.check))
    if isinstance(element, NccPattern):
        return set().union(*(_reads(e) for e in element.patterns))
    names = {v for v, _ in element.joins}
    for _, check in element.tests:
        names |= check_names(check)
    return names


def _writes(pattern: Pattern) -> set[str]:
    return {v for v, _ in pattern.binds} | ({pattern.fact_var} if pattern.fact_var else set())


def _made_kinds(then: list[Any]) -> frozenset[str]:
    kinds: set[str] = set()
    for action in then:  # already checked by _action: each insert body is {KIND: {...}}
        for head in ("insert", "logical"):
            body = action.get(head)
            if isinstance(body, Mapping):
                kinds.update(str(k) for k in body)
    return frozenset(kinds)


def _list(raw: Mapping[str, Any], key: str, where: Location) -> list[Any]:
    value = raw.get(key)
    if not isinstance(value, list):
        raise _Problem(f"`{key}` must be a list", _at(raw, key, where))
    return value


def _at(node: Any, key: str, default: Location) -> Location:
    return node.value_location_of(key) if isinstance(node, LineDict) else default


def _item_at(raw: Any, key: str, index: int, default: Location) -> Location:
    items = raw.get(key)
    locations = getattr(items, "item_locations", None)
    return locations[index] if locations and index < len(locations) else default


# ---- conditions -----------------------------------------------------------------------------
def _single(item: Any, what: str, where: Location) -> tuple[str, Any]:
    keys = [k for k in item if k != "as"] if isinstance(item, Mapping) else []
    if len(keys) != 1:
        raise _Problem(f"{what} must be a mapping with one key (KIND, not, exists, forall or test)",
                       where)
    return keys[0], item[keys[0]]


def _element(item: Any, functions: Functions, bound: dict[str, bool],
             where: Location) -> Element:
    head, body = _single(item, "a pattern", where)
    if head == "test":
        return TestPattern(_expression(body, functions, set(bound), _at(item, head, where)))
    if head in ("not", "forall") and isinstance(body, list):
        return _conjunction(head, body, functions, bound, _at(item, head, where))
    if head in ("not", "exists"):
        kind, fields = _single(body, f"`{head}`", _at(item, head, where))
        local = dict(bound)  # variables first bound inside not/exists stay local to it
        inner = body if isinstance(body, Mapping) else {}
        return _pattern(kind, fields, inner, functions, local, where, head)
    return _pattern(head, body, item, functions, bound, where, "pos")


def _conjunction(head: str, body: list[Any], functions: Functions, bound: dict[str, bool],
                 where: Location) -> NccPattern:
    """``not: [A, B]``: no A-and-B match; ``forall: [A, B, ...]`` = ``not: [A, not: [B, ...]]``."""
    local = dict(bound)  # variables first bound inside stay local to it
    places = getattr(body, "item_locations", None) or [where] * len(body)
    elements = [_element(e, functions, local, at) for e, at in zip(body, places, strict=True)]
    if head == "not" and elements:
        return NccPattern(tuple(elements))
    if len(elements) < 2:
        raise _Problem("`forall` needs a list of two or more patterns", where)
    first, rest = elements[0], elements[1:]
    if len(rest) == 1 and isinstance(rest[0], Pattern) and rest[0].mode == "pos":
        return NccPattern((first, replace(rest[0], mode="not", fact_var=None)))
    return NccPattern((first, NccPattern(tuple(rest))))


def _pattern(kind: str, fields: Any, node: Any, functions: Functions, bound: dict[str, bool],
             where: Location, mode: Any) -> Pattern:
    if fields is None:
        fields = {}
    if not isinstance(fields, Mapping):
        raise _Problem(f"pattern {kind!r} needs a mapping of field tests", where)
    alpha: list[AlphaTest] = []
    joins: list[tuple[str, str]] = []
    binds: list[tuple[str, str]] = []
    tests: list[tuple[str | None, Check]] = []
    for name, spec in fields.items():
        at = _at(fields, name, where)
        _field(str(name), spec, at, functions, bound, (alpha, joins, binds, tests))
    fact_var = _fact_var(node, bound, where) if mode == "pos" else None
    return Pattern(kind, tuple(alpha), tuple(joins), tuple(binds), tuple(tests), fact_var, mode)


def _fact_var(node: Any, bound: dict[str, bool], where: Location) -> str | None:
    spec = node.get("as") if isinstance(node, Mapping) else None
    if spec is None:
        return None
    var = _variable(spec)
    if var is None or var in bound:
        raise _Problem(f"`as` needs a new variable like ?f, not {spec!r}", where)
    bound[var] = True
    return var


def _variable(spec: Any) -> str | None:
    if isinstance(spec, str) and (m := _VAR.fullmatch(spec.strip())):
        return m.group(1)
    return None


def _field(name: str, spec: Any, at: Location, functions: Functions, bound: dict[str, bool],
           out: tuple[list[AlphaTest], list[tuple[str, str]], list[tuple[str, str]],
                      list[tuple[str | None, Check]]]) -> None:
    alpha, joins, binds, tests = out
    var = _variable(spec)
    if var == "this":
        raise _Problem("`?this` is reserved; pick another variable name", at)
    # A variable this very pattern binds is compared field to field, within the fact: it is in
    # `bound` already, but no join could see it (it is not bound before this pattern).
    if var is not None and var in {v for v, _ in binds}:
        first = next(f for v, f in binds if v == var)
        alpha.append(_same_fields(first, name))
    elif var is not None and var in bound:
        joins.append((var, name))
        alpha.append(AlphaTest(("has", name), _has(name)))  # a missing field joins nothing
    elif var is not None:
        binds.append((var, name))
        alpha.append(AlphaTest(("has", name), _has(name)))
        bound[var] = False
    elif isinstance(spec, str) and _OPERATOR.match(spec):
        _operator_test(name, spec, at, functions, bound, alpha, tests)
    else:
        alpha.append(AlphaTest(("eq", name, repr(spec)), _equals(name, spec), (name, spec)))


def _operator_test(name: str, spec: str, at: Location, functions: Functions,
                   bound: dict[str, bool], alpha: list[AlphaTest],
                   tests: list[tuple[str | None, Check]]) -> None:
    shifted = Location(at.file, at.line, (at.column or 6) - 5)  # "this " is put in front
    check = _expression("this " + spec, functions, set(bound) | {"this"}, shifted)
    if check_names(check) <= {"this"}:
        fast = _NUMERIC_TEST.fullmatch(spec)
        compare = (name, fast.group(1), float(fast.group(2))) if fast else None
        alpha.append(AlphaTest(("test", name, spec), _alpha_check(name, check, spec),
                               compare=compare))
    else:  # a missing field fails it, as it fails a test against a constant
        alpha.append(AlphaTest(("has", name), _has(name)))
        tests.append((name, check))


def check_names(check: Check) -> frozenset[str]:
    """The variables an expression reads."""
    return frozenset(getattr(check, "names", frozenset()))


def _has(name: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda fields: name in fields


def _equals(name: str, value: Any) -> Callable[[Mapping[str, Any]], bool]:
    return lambda fields: name in fields and fields[name] == value


def _same_fields(first: str, second: str) -> AlphaTest:
    return AlphaTest(("same", first, second),
                     lambda fields: first in fields and second in fields
                     and fields[first] == fields[second])


def _alpha_check(name: str, check: Check, spec: str) -> Callable[[Mapping[str, Any]], bool]:
    fast = _NUMERIC_TEST.fullmatch(spec)
    if fast is None:
        return lambda fields: name in fields and bool(check({"this": fields[name]}))
    compare, bound = _COMPARE[fast.group(1)], float(fast.group(2))

    # "> 500" on a number is the common case; it skips building an env for the expression.
    def numeric(fields: Mapping[str, Any]) -> bool:
        value = fields.get(name)
        if type(value) is int or type(value) is float:
            return compare(value, bound)
        return name in fields and bool(check({"this": value}))

    return numeric


def _expression(text: Any, functions: Functions, names: set[str], where: Location) -> Check:
    if not isinstance(text, str):
        raise _Problem(f"expected an expression text, got {text!r}", where)
    # "?x" becomes " x": the same length, so error columns still point into the file.
    source = _VAR_IN_TEXT.sub(lambda m: m.group(1) or " " + m.group(2), text)
    expr = compile_expression(source, functions=functions, names=names, location=where)
    return expr


# ---- actions --------------------------------------------------------------------------------
def _action(item: Any, functions: Functions, bound: dict[str, bool], where: Location) -> Action:
    head, body = _single(item, "an action", where)
    at = _at(item, head, where)
    if head in ("insert", "logical"):
        kind, fields = _single(body, f"`{head}`", at)
        values = _values(fields, functions, bound, at)
        return _insert(kind, values, logical=head == "logical")
    if head == "retract":
        return _retract(_fact_variable(body, bound, at))
    if head == "modify":
        target, fields = _single(body, "`modify`", at)
        return _modify(_fact_variable(target, bound, at), _values(fields, functions, bound, at))
    if head == "focus":
        group = str(body)
        return lambda engine, act: engine.focus(group)
    if head == "halt":
        return lambda engine, act: engine.halt()
    raise _Problem(f"unknown action {head!r}; use insert, logical, retract, modify, focus, halt",
                   where)


def _fact_variable(spec: Any, bound: dict[str, bool], where: Location) -> str:
    var = _variable(spec)
    if var is None or not bound.get(var):
        raise _Problem(f"{spec!r} is not a fact variable; bind one with `as: ?f`", where)
    return var


def _values(fields: Any, functions: Functions, bound: dict[str, bool],
            where: Location) -> dict[str, Value]:
    if not isinstance(fields, Mapping):
        raise _Problem("field values must be a mapping", where)
    return {str(k): _value(v, functions, bound, _at(fields, k, where)) for k, v in fields.items()}


def _value(spec: Any, functions: Functions, bound: dict[str, bool], where: Location) -> Value:
    var = _variable(spec)
    if var is not None:
        if var not in bound:
            raise _Problem(f"variable ?{var} is not bound by any pattern", where)
        return lambda env: env[var]
    if isinstance(spec, str) and spec.startswith("="):
        shifted = Location(where.file, where.line, (where.column or 2) + 1)
        return _expression(spec[1:], functions, set(bound), shifted)
    return lambda env: spec


def _insert(kind: str, values: dict[str, Value], logical: bool) -> Action:
    def insert(engine: Engine, act: Activation) -> None:
        env = act.token.env
        data = {k: v(env) for k, v in values.items()}
        engine.note_insert(engine.insert(kind, data, support=act.token if logical else None))

    return insert


def _retract(var: str) -> Action:
    def retract(engine: Engine, act: Activation) -> None:
        engine.retract(act.env[var])

    return retract


def _modify(var: str, values: dict[str, Value]) -> Action:
    def modify(engine: Engine, act: Activation) -> None:
        env = act.token.env
        engine.modify(env[var], {k: v(env) for k, v in values.items()})

    return modify
