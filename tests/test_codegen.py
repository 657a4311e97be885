"""Tests of the generated evaluators (hybrid_ai._codegen): the same results and errors as the
closure evaluator on every operator and function family, and no new way to reach Python."""

from __future__ import annotations

import datetime as dt
import random
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from hybrid_ai._codegen import MAX_NODES
from hybrid_ai._errors import ConfigError, ExpressionError, Location
from hybrid_ai._expr import (
    BUILTIN_FUNCTIONS,
    MAX_DEPTH,
    EvaluationError,
    Expression,
    _Compiler,
    _function_table,
    compile_expression,
    parse_expression,
)

# -- the two evaluators, and what one evaluation did ---------------------------------------------

CALLS: list[Any] = []


def _tick() -> int:
    CALLS.append("tick")
    return len(CALLS)


def _twice(value: Any) -> Any:
    CALLS.append(value)
    return value * 2


def _boom(value: Any) -> Any:
    raise ValueError(f"boom {value!r}")


def _config(value: Any) -> Any:
    raise ConfigError("a hybrid error passes through unchanged")


PLUGINS: dict[str, Callable[..., Any]] = {
    "tick": _tick, "twice": _twice, "boom": _boom, "config": _config,
}


def closure_evaluator(source: str, location: Location | None = None) -> Callable[[Any], Any]:
    table = _function_table(PLUGINS)
    return _Compiler(source, table, location).compile(parse_expression(source, location)).fn


def generated(expr: Expression) -> bool:
    return getattr(expr.evaluator, "__name__", "") == "generated_expression"


def outcome(evaluate: Callable[[Any], Any], env: Any) -> tuple[Any, ...]:
    CALLS.clear()
    try:
        value = evaluate(env)
    except Exception as exc:  # every difference counts, whatever the exception
        where = getattr(exc, "location", None)
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else None
        return ("error", type(exc).__name__, str(exc), where, getattr(exc, "hint", None), cause,
                exc.__suppress_context__, tuple(map(repr, CALLS)))
    return ("value", type(value).__name__, repr(value), tuple(map(repr, CALLS)))


# -- environments -------------------------------------------------------------------------------


@dataclass
class Card:
    name: str
    limit: int


class Model(pydantic.BaseModel):
    name: str
    k: int = 3


Point = namedtuple("Point", "x y")


class Frozen(Mapping[str, Any]):
    """A mapping that is not a dict: field reads take the generic path."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


POOL: list[Any] = [
    0, 1, 7, -2, 2.5, True, False, None, "", "abc", "Lost card", "12", "2024-01-31", "(a+)+$",
    "[", [1, 2, 3], ["a", "b"], [], [[1], [2]], [None, 4], {"k": 1, "name": "x"}, {},
    {"k": [1, 2], "name": None}, dt.date(2024, 1, 31), dt.datetime(2024, 2, 1, 10, 30),
    Card("gold", 500), Model(name="m"), Point(1, 2), Decimal("1.5"), Frozen({"k": 5}),
    ("t", 1),
]
NAMES = ["a", "b", "s", "l", "m", "o", "d"]


def environments(count: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    envs: list[Any] = [{}, {name: None for name in NAMES}, 5, None, ["a"]]
    envs.append(Frozen({"a": 3, "m": {"k": 2}, "s": "abc", "l": [1, 2]}))
    envs.append({"a": 5, "b": 2, "s": "Lost card", "l": [1, 2, 3], "m": {"k": 1, "name": "x"},
                 "o": Card("gold", 500), "d": dt.date(2024, 1, 31)})
    for _ in range(count):
        envs.append({name: rng.choice(POOL) for name in NAMES if rng.random() < 0.85})
    return envs


ENVS = environments(30, seed=3)


def assert_same(source: str, envs: list[Any] = ENVS) -> Expression:
    expr = compile_expression(source, functions=PLUGINS)
    closures = closure_evaluator(source)
    for env in envs:
        assert outcome(expr, env) == outcome(closures, env), (source, env)
    return expr


# -- every family, written out ------------------------------------------------------------------

FAMILIES = [
    # names, fields, items
    "a", "missing", "m.k", "m.name", "o.name", "o.limit", "o.x", "m.k.z", "l[0]", "l[-1]",
    "l[5]", "s[1]", "m['k']", "m[a]", "l[a]", "m[l]", "a.b.c", "(a).k",
    # arithmetic and signs
    "a + b", "a - 1", "a * 2", "a / b", "a // b", "a % b", "s + 'x'", "l + [9]", "l + s",
    "-a", "+a", "- -a", "a * 2 + b", "1 / 0", "a / 0", "1 - 'x'", "-s", "d - a",
    # comparisons with constants (both sides), fields, chains
    "a > 1", "1 < a", "a >= 2.5", "a == 1", "a != 'abc'", "m.k > 0", "m.k == 1", "o.limit > 100",
    "o.name == 'gold'", "2 > a", "a < b", "a <= b", "s > 'a'", "d > date('2024-01-01')",
    "1 < a < 10", "a < b < 7 <= 7", "a == b == 1", "0 < a.k < 5", "1 < a != 3 > s",
    "a < [1]", "l == [1, 2, 3]", "l != [1]", "null < a", "a > null", "'x' < 1",
    # membership
    "a in [1, 7, 'abc']", "a not in [1, 7]", "s in 'Lost card abc'", "'a' in s", "a in l",
    "a in m", "l in [[1, 2, 3], 1]", "a in null", "null in l", "a in a", "m in [1, 2]",
    "'k' not in m", "a in [[1], 2]", "l not in [[1, 2, 3]]",
    # patterns
    "s matches 'card'", "s matches '(?i)CARD'", "s not matches '^a'", "a matches 'x'",
    "s matches a", "s matches s", "s matches null", "s not matches null", "match('b', s)",
    "match(s, 'abc')", "match(null, s)", "s matches '^\\\\d+$'",
    # logic and conditionals
    "a and b", "a or b", "not a", "a and b and s", "a or b or s or l", "a > 1 and s == 'abc'",
    "a > 1 or s matches 'x' or l[0] == 1", "not (a and b)", "a and (b or s)",
    "m.k > 0 and o.limit > 1", "true and a", "false or a", "a if b else s",
    "a if b > 1 else s + 'x'", "(a if true else b)", "1 if l else 2", "(a and b) if s else l",
    "a and 1 / 0", "b or a.k > 1",
    # functions
    "len(s)", "len(a)", "lower(s)", "upper(s)", "strip(s)", "contains(l, a)", "contains(s, 'a')",
    "startswith(s, 'L')", "endswith(s, ['d', 'c'])", "abs(a)", "round(a)", "round(a, 1)",
    "min(l)", "max(a, b, 3)", "min(a, b)", "sum(l)", "count(l)", "count(l, 1)", "count(s, 'a')",
    "any(l)", "all(l)", "coalesce(a, b, 3)", "pluck([m, m], 'k')", "pluck(l, 0)", "int(s)",
    "int(a)", "float(a)", "str(a)", "bool(s)", "bool(a)", "date(s)", "date(d)", "datetime(s)",
    "datetime(d)", "days_between(d, '2024-03-01')", "year(d)", "month(s)", "day(d)",
    "lower(s) matches 'card'", "len(l) > 2 and sum(l) > 3",
    # plugin functions: never folded, called once, errors wrapped or passed through
    "tick()", "tick() + tick()", "twice(a)", "twice(s) == 'abcabc'", "boom(a)", "config(a)",
    "a and tick()", "tick() if a else 0", "[tick(), tick()]",
    # lists
    "[a, b]", "[a, [b, s]]", "[1, 2]", "[a, 1 / 0]", "[a.k, l[0], twice(a)]",
    # constants folded, or kept for run time
    "1 + 2 * 3", "'ab' + 'cd'", "[1, [2]]", "upper('x') + s", "len('abc') == 3 and a",
    "date('2024-01-31') < d",
]


@pytest.mark.parametrize("source", FAMILIES)
def test_each_family_gives_what_the_closures_give(source: str) -> None:
    assert_same(source)


def test_non_constant_families_are_generated() -> None:
    exprs = [compile_expression(source, functions=PLUGINS) for source in FAMILIES]
    constant = {"1 + 2 * 3", "'ab' + 'cd'", "[1, [2]]", "[1, 2]"}
    assert all(generated(e) for e in exprs if e.source not in constant)


# -- random expressions -------------------------------------------------------------------------


def _arities() -> dict[str, list[int]]:
    import inspect

    found: dict[str, list[int]] = {}
    for name, function in {**BUILTIN_FUNCTIONS, **PLUGINS}.items():
        signature = inspect.signature(function)
        found[name] = [n for n in range(4) if _binds(signature, n)]
    return found


def _binds(signature: Any, count: int) -> bool:
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


ARITIES = _arities()
ATOMS = ["a", "b", "s", "l", "m", "o", "d", "missing", "m.k", "o.name", "l[0]", "m['k']", "0",
         "1", "-2", "2.5", "'abc'", "'a'", "''", "true", "false", "null", "[1, 'a']", "[]"]
PATTERNS = ["'a'", "'(?i)card'", "'^\\\\d+$'", "s", "null", "'b|c'"]
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in"]


class RandomExpressions:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def expr(self, depth: int) -> str:
        rng = self.rng
        if depth == 0 or rng.random() < 0.2:
            return rng.choice(ATOMS)
        kind = rng.choice(["binary", "unary", "compare", "chain", "match", "bool", "bool",
                           "cond", "call", "call", "list", "field"])
        return str(getattr(self, kind)(depth - 1))

    def binary(self, depth: int) -> str:
        op = self.rng.choice(["+", "-", "*", "/", "//", "%"])
        return f"({self.expr(depth)} {op} {self.expr(depth)})"

    def unary(self, depth: int) -> str:
        return f"{self.rng.choice(['-', '+', 'not '])}({self.expr(depth)})"

    def compare(self, depth: int) -> str:
        return f"{self.expr(depth)} {self.rng.choice(OPS)} {self.expr(depth)}"

    def chain(self, depth: int) -> str:
        parts = [self.expr(depth)]
        for _ in range(self.rng.randint(2, 3)):
            parts += [self.rng.choice(OPS), self.expr(depth)]
        return "(" + " ".join(parts) + ")"

    def match(self, depth: int) -> str:
        op = self.rng.choice(["matches", "not matches"])
        return f"({self.expr(depth)} {op} {self.rng.choice(PATTERNS)})"

    def bool(self, depth: int) -> str:
        op = self.rng.choice([" and ", " or "])
        return "(" + op.join(self.expr(depth) for _ in range(self.rng.randint(2, 4))) + ")"

    def cond(self, depth: int) -> str:
        return f"({self.expr(depth)} if {self.expr(depth)} else {self.expr(depth)})"

    def call(self, depth: int) -> str:
        name = self.rng.choice(sorted(ARITIES))
        count = self.rng.choice(ARITIES[name])
        return f"{name}({', '.join(self.expr(depth) for _ in range(count))})"

    def list(self, depth: int) -> str:
        return "[" + ", ".join(self.expr(depth) for _ in range(self.rng.randint(0, 3))) + "]"

    def field(self, depth: int) -> str:
        inner = self.expr(depth)
        return f"({inner}).k" if self.rng.random() < 0.5 else f"({inner})[{self.expr(depth)}]"


@pytest.mark.parametrize("seed", range(4))
def test_random_expressions_give_what_the_closures_give(seed: int) -> None:
    source = RandomExpressions(seed)
    envs = environments(12, seed=100 + seed)
    made = generated_count = 0
    while made < 150:
        text = source.expr(4)
        try:
            expr = assert_same(text, envs)
        except ExpressionError:  # e.g. a literal pattern that is not text: refused by both
            continue
        made += 1
        generated_count += generated(expr)
    assert generated_count > 100  # most are not constant, so most are generated


# -- the generated function itself --------------------------------------------------------------

HOSTILE_DATA = [
    "env.get == get",
    "x['__class__'] == x[\"__globals__\"]",
    "s == '\\'); import os; (\\''",
    "s + '__import__(\\'os\\')'",
    "pluck(l, '__class__')",
    "m.env and m.get",
]


@pytest.mark.parametrize("source", HOSTILE_DATA)
def test_generated_code_reaches_only_our_names(source: str) -> None:
    expr = compile_expression(source)
    assert generated(expr)
    function = expr.evaluator
    code = getattr(function, "__code__")  # noqa: B009
    names = set(code.co_names) - {"get"}
    namespace = getattr(function, "__globals__")  # noqa: B009
    assert namespace["__builtins__"] == {}
    assert names <= set(namespace) and all(n.startswith("_g") for n in names)
    assert all(n == "env" or n.startswith(("_t", "_e")) for n in code.co_varnames)
    # The user's words are data: constants of the code, never names in it.
    assert not any(word in code.co_names for word in ("os", "__class__", "env", "x", "s"))


def test_the_users_env_and_get_are_ordinary_names() -> None:
    expr = compile_expression("env.get == get and env.items == null")
    assert generated(expr)
    assert expr({"env": {"get": 4}, "get": 4}) is True
    assert expr({"env": {"get": 4}, "get": 5}) is False


def test_errors_keep_their_file_line_and_column() -> None:
    where = Location("rules.yaml", 7, 11)
    expr = compile_expression("amount > 1 and\n  name - 1 > 0", location=where)
    assert generated(expr)
    with pytest.raises(EvaluationError) as caught:
        expr({"amount": 5, "name": "x"})
    assert caught.value.location == Location("rules.yaml", 8, 8)
    assert str(caught.value).startswith("rules.yaml:8:8: cannot apply '-' to str and int")
    assert outcome(expr, {"amount": 5, "name": "x"}) == outcome(
        closure_evaluator("amount > 1 and\n  name - 1 > 0", where), {"amount": 5, "name": "x"})


def _deepest(kind: str) -> str:
    depth = MAX_DEPTH - 1
    return {
        "unary": "-" * depth + "a",
        "not": "not " * depth + "a",
        "list": "[" * depth + "a" + "]" * depth,
        "call": "abs(" * depth + "a" + ")" * depth,
        "field": "m" + ".k" * depth,
        "item": "l" + "[0]" * depth,
        "sum": " + ".join(["a"] * depth),
        "cond": "a if b else " * (depth - 1) + "s",
        "bool": "a and (b or " * (depth // 2) + "s" + ")" * (depth // 2),
    }[kind]


@pytest.mark.parametrize(
    "kind", ["unary", "not", "list", "call", "field", "item", "sum", "cond", "bool"]
)
def test_the_deepest_accepted_expressions_are_generated(kind: str) -> None:
    expr = assert_same(_deepest(kind), ENVS[:12])
    assert generated(expr)


def test_deeper_expressions_are_still_refused() -> None:
    with pytest.raises(ExpressionError, match="deeper than 64 levels"):
        compile_expression("-" * MAX_DEPTH + "a")


def test_long_flat_expressions_do_not_nest_the_generated_code() -> None:
    chain = " < ".join(["a"] * 600)
    ors = " or ".join(f"twice(a) == {i}" for i in range(300))
    for source in (chain, ors):
        assert generated(assert_same(source, ENVS[:10]))


def test_trees_over_the_node_limit_keep_the_closures() -> None:
    source = " or ".join(f"a == {i}" for i in range(MAX_NODES // 3 + 1))
    expr = assert_same(source, ENVS[:10])
    assert not generated(expr)
    assert expr({"a": MAX_NODES // 3}) is True


def test_constant_lists_stay_fresh_and_list_operands_are_not_copied() -> None:
    expr = compile_expression("[1, 2] if a else [3]")
    assert generated(expr)
    first = expr({"a": 1})
    first.append(9)
    assert expr({"a": 1}) == [1, 2]


def test_generated_functions_are_shared_only_by_identical_compilations() -> None:
    where = Location("r.yaml", 2, 5)
    first = compile_expression("a.k > 1 and twice(a)", functions=PLUGINS, location=where)
    again = compile_expression("a.k > 1 and twice(a)", functions=PLUGINS, location=where)
    elsewhere = compile_expression("a.k > 1 and twice(a)", functions=PLUGINS)
    other = compile_expression("a.k > 1 and twice(a)", functions={"twice": _boom},
                               location=where)
    assert first.evaluator is again.evaluator
    assert elsewhere.evaluator is not first.evaluator
    assert other.evaluator is not first.evaluator
    with pytest.raises(EvaluationError) as caught:
        other({"a": {"k": 2}})
    assert "twice() failed: boom" in str(caught.value)
    assert caught.value.location == Location("r.yaml", 2, 17)
    with pytest.raises(EvaluationError, match=r"^<string>:1:5: cannot compare str with int"):
        elsewhere({"a": {"k": "x"}})
