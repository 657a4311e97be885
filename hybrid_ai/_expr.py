"""The safe expression language of rule conditions, pipeline routes and decision tables.

Expressions are data written by users, so they are parsed with a small grammar of our own and
compiled once into Python closures over our own syntax tree, then into one Python function
generated from that tree (:mod:`hybrid_ai._codegen`: Python ``ast`` objects we build, every
user value a constant, compiled by ``compile()`` with no builtins; about twice as fast). No text
is ever handed to ``eval``, ``exec`` or ``compile``; no Python attribute, method, module or
dunder can be reached; nesting is bounded. Compile once, evaluate many times::

    expr = compile_expression("fields.amount > 100 and intent.label in ['lost_card', 'stolen']")
    expr({"fields": {"amount": 120}, "intent": {"label": "stolen"}})  # -> True

Language reference (for rule authors)
=====================================

Values
    ``42``, ``-3``, ``1.5``, ``2e3``; text in ``'single'`` or ``"double"`` quotes with the
    escapes ``\\n \\t \\r \\\\ \\' \\" \\xHH \\uHHHH`` (any other backslash is kept as written,
    so regular expressions such as ``'\\d+\\b'`` work unchanged); ``true``/``false``/``null``
    (``True``/``False``/``None`` also work); lists ``[1, 2, 'three']``.

Names and fields
    A bare name (``fields``) reads a top-level value of the environment. ``a.b.c`` reads keys of
    mappings, and the *declared* fields of pydantic models, dataclasses and named tuples -- nothing
    else. ``a['key']`` and ``a[0]`` index mappings, lists and text. Names starting with ``_`` are
    rejected when the expression is compiled.

Missing values are ``null``
    A missing name, key, field or list index gives ``null`` instead of an error, so conditions on
    absent facts are simply false: with ``fields = {}``, ``fields.amount > 100`` is false and
    ``fields.amount == null`` is true. Reading a field of ``null`` gives ``null`` again.

Operators, loosest binding first
    ============================  ======================================================
    ``x if cond else y``          conditional (only the chosen side is evaluated)
    ``or``                        short-circuit; returns the deciding operand, like Python
    ``and``                       short-circuit; returns the deciding operand, like Python
    ``not x``                     negation, always ``true``/``false``
    ``== != < <= > >=``           comparison; chains: ``1 < x <= 5`` means ``1 < x and x <= 5``
    ``in``, ``not in``            membership in a list/mapping, or substring of text
    ``matches``, ``not matches``  regular-expression *search* (``text matches '(?i)stolen'``)
    ``+ -``                       numbers; ``+`` also joins two texts or two lists
    ``* / // %``                  numbers only (``/`` is true division, ``//`` floors)
    ``-x``, ``+x``                sign of a number
    ``x.f``, ``x[i]``, ``f(a)``   field, index, call of a whitelisted function
    ============================  ======================================================

    ``**`` does not exist, and ``*`` does not repeat text or lists, so no expression can build a
    huge value. Parentheses group as usual.

``null`` semantics
    ``==`` and ``!=`` compare ``null`` like any value. Every other comparison with a ``null``
    operand (``<``, ``>=``, ...) is *false*, never an error. Arithmetic with a ``null`` operand
    gives ``null`` (so ``fields.amount * 2 > 100`` is false when the amount is missing).
    ``x in null`` and ``null matches p`` are false; ``not in`` / ``not matches`` are always the
    exact negation of ``in`` / ``matches``.

Functions (the whitelist; a pipeline may add its own)
    Text: ``len(x)``, ``lower(s)``, ``upper(s)``, ``strip(s)``, ``contains(container, item)``,
    ``startswith(s, prefix)``, ``endswith(s, suffix)`` (prefix/suffix may be a list),
    ``match(pattern, s)`` (regular-expression search, like ``matches``).
    Numbers: ``abs(x)``, ``round(x[, digits])``, ``min(...)``, ``max(...)`` (of a list or of
    several arguments), ``sum(list)``, ``count(list[, value])`` (non-null items, or occurrences).
    Logic: ``any(list)``, ``all(list)``, ``coalesce(a, b, ...)`` (the first non-null argument).
    Lists: ``pluck(list, key)``, that field of every item (``pluck(facts.flag, 'name')``).
    Conversion: ``int(x)``, ``float(x)``, ``str(x)``, ``bool(x)`` (text ``'true'/'false'/'yes'/
    'no'/'1'/'0'/'on'/'off'`` is understood; ``bool(null)`` is false).
    Dates: ``date(x)`` and ``datetime(x)`` from ISO text (``'2024-01-31'``,
    ``'2024-01-31T10:00:00+00:00'``) or date values; ``days_between(a, b)`` (whole days from a to
    b); ``year(d)``, ``month(d)``, ``day(d)``. There is no ``now()``: results must not depend on
    when a rule runs -- put the current date into the environment instead.

    Functions return ``null`` when the value they work on is ``null``; ``min``, ``max``, ``sum``
    and ``count`` skip ``null`` items, as in SQL. Unknown functions, and calls with the wrong
    number of arguments, are errors when the expression is compiled.

Errors
    A malformed expression, an unknown name (when the caller lists the valid ones), an unknown
    function or an invalid literal regular expression raises :class:`ExpressionError` at compile
    time, pointing at ``file:line:column`` of the offending token. So does a text longer than
    :data:`MAX_LENGTH` characters, a number that overflows, and a regular expression that repeats
    an unboundedly repeating group with nothing between the repeats (``(a+)+``, ``(\\s*\\w+)*``,
    which can backtrack for minutes; ``(\\d+,)*`` is fine; a pattern read from the data at run
    time is refused the same way, with an :class:`EvaluationError`). A type error while evaluating
    (``'abc' - 1``, comparing a date with text) raises :class:`EvaluationError`, which names the
    expression, its location and the operand types.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import importlib
import inspect
import operator
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache, partial
from types import MappingProxyType
from typing import Any, Final, TypeAlias, cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from hybrid_ai._errors import ExpressionError, HybridAIError, Location

__all__ = [
    "BUILTIN_FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Binary",
    "BoolOp",
    "Call",
    "Compare",
    "Conditional",
    "EvaluationError",
    "Expression",
    "GetAttr",
    "GetItem",
    "ListExpr",
    "Literal",
    "Name",
    "Node",
    "Unary",
    "compile_expression",
    "parse_expression",
    "unparse",
    "walk",
]

MAX_DEPTH: Final = 64
"""The deepest nesting of operators, calls and lists an expression may have."""

MAX_LENGTH: Final = 100_000
"""The longest expression text, in characters: parsing time grows with it, so a huge literal or
a pasted data dump is refused instead of tying up the loader for seconds."""

Env: TypeAlias = Mapping[str, Any]
Evaluator: TypeAlias = Callable[[Mapping[str, Any]], Any]
LiteralValue: TypeAlias = "bool | int | float | str | None"

_NOWHERE: Final = Location()
_EMPTY_ENV: Final[Env] = MappingProxyType({})


class EvaluationError(HybridAIError):
    """Evaluating a compiled expression failed (an operand of the wrong type, a bad argument).

    ``message``, ``source`` (the expression text), ``location`` and ``hint`` are kept as
    attributes; the string form is ``file:line:col: message in expression '...' (hint)``.
    """

    def __init__(
        self,
        message: str,
        source: str = "",
        location: Location | None = None,
        hint: str | None = None,
    ) -> None:
        self.message, self.source, self.hint = message, source, hint
        self.location = location if location is not None else _NOWHERE
        text = f"{self.location}: {message} in expression {source!r}"
        super().__init__(f"{text} ({hint})" if hint else text)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default would call __init__ with the rendered text only and lose the fields.
        return (type(self), (self.message, self.source, self.location, self.hint))


# --------------------------------------------------------------------------------------------
# The syntax tree. Nodes compare equal by structure; ``location`` is left out of comparisons so
# that static analysis can match the same condition written in two places.


@dataclass(frozen=True)
class Node:
    """Base of every syntax-tree node; ``location`` is where the node's own token starts."""

    location: Location = field(default=_NOWHERE, compare=False, repr=False, kw_only=True)

    def children(self) -> tuple[Node, ...]:
        """The direct sub-expressions, in source order."""
        return ()


@dataclass(frozen=True)
class Literal(Node):
    """A number, text, boolean or null written in the expression."""

    value: LiteralValue


@dataclass(frozen=True)
class Name(Node):
    """A top-level variable read from the environment."""

    name: str


@dataclass(frozen=True)
class GetAttr(Node):
    """``obj.name``: a mapping key or a declared field; ``location`` is that of ``name``."""

    obj: Node
    name: str

    def children(self) -> tuple[Node, ...]:
        return (self.obj,)


@dataclass(frozen=True)
class GetItem(Node):
    """``obj[index]``; ``location`` is that of ``[``."""

    obj: Node
    index: Node

    def children(self) -> tuple[Node, ...]:
        return (self.obj, self.index)


@dataclass(frozen=True)
class Unary(Node):
    """``-x``, ``+x`` or ``not x`` (``op`` is ``'-'``, ``'+'`` or ``'not'``)."""

    op: str
    operand: Node

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class Binary(Node):
    """Arithmetic: ``op`` is one of ``+ - * / // %``; ``location`` is that of the operator."""

    op: str
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Compare(Node):
    """``left ops[0] comparators[0] ops[1] comparators[1] ...`` (a chain, as in Python).

    ``ops`` items are ``== != < <= > >= in`` ``not in`` ``matches`` ``not matches``;
    ``location`` is that of the first operator.
    """

    left: Node
    ops: tuple[str, ...]
    comparators: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return (self.left, *self.comparators)


@dataclass(frozen=True)
class BoolOp(Node):
    """``values[0] op values[1] op ...`` with ``op`` ``'and'`` or ``'or'`` (flattened)."""

    op: str
    values: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.values


@dataclass(frozen=True)
class Call(Node):
    """``func(args...)``: a call of a whitelisted function, by name."""

    func: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True)
class ListExpr(Node):
    """``[items...]``; ``location`` is that of ``[``."""

    items: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True)
class Conditional(Node):
    """``body if test else orelse``; ``location`` is that of ``if``."""

    test: Node
    body: Node
    orelse: Node

    def children(self) -> tuple[Node, ...]:
        return (self.body, self.test, self.orelse)


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children()))


# --------------------------------------------------------------------------------------------
# Parsing. Keywords are regexes with a word boundary and a higher priority than NAME, so that
# ``android`` is a name while ``and`` is the operator, and ``x.in`` still reads the field ``in``
# (the contextual lexer only offers NAME after a dot).

_GRAMMAR: Final = r"""
?start: cond
?cond: or_test
     | or_test IF or_test ELSE cond -> conditional
?or_test: and_test (OR and_test)*
?and_test: not_test (AND not_test)*
?not_test: NOT not_test -> not_op
         | comparison
?comparison: sum (comp_op sum)*
comp_op: EQ | NE | LT | LE | GT | GE | IN | NOT IN | MATCHES | NOT MATCHES
?sum: product (_add_op product)*
?product: unary (_mul_op unary)*
_add_op: PLUS | MINUS
_mul_op: STAR | SLASH | DSLASH | PERCENT
?unary: (PLUS | MINUS) unary -> unary_op
      | postfix
?postfix: atom
        | postfix "." NAME -> getattr
        | postfix LBRACKET cond RBRACKET -> getitem
?atom: NAME -> name
     | INT -> literal
     | FLOAT -> literal
     | STRING -> literal
     | NAME "(" _items? ")" -> call
     | LBRACKET _items? RBRACKET -> list
     | "(" cond ")"
_items: cond ("," cond)* ","?

IF.2: /if\b/
ELSE.2: /else\b/
OR.2: /or\b/
AND.2: /and\b/
NOT.2: /not\b/
IN.2: /in\b/
MATCHES.2: /matches\b/
EQ: "=="
NE: "!="
LT: "<"
LE: "<="
GT: ">"
GE: ">="
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
DSLASH: "//"
PERCENT: "%"
LBRACKET: "["
RBRACKET: "]"
NAME: /[^\W\d]\w*/
FLOAT.2: /\d+\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+/
INT: /\d+/
STRING: /"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/
%ignore /\s+/
"""

_CONSTANTS: Final[Mapping[str, LiteralValue]] = MappingProxyType(
    {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}
)
_ESCAPE_RE: Final = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_ESCAPES: Final = MappingProxyType(
    {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
)

_Item: TypeAlias = "Tree[Token] | Token"


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # Built on first use, not at import: most imports of this module never parse anything.
    return Lark(_GRAMMAR, parser="lalr", lexer="contextual", maybe_placeholders=False)


def parse_expression(text: str, location: Location | None = None) -> Node:
    """Parse ``text`` into a syntax tree, or raise :class:`ExpressionError` pointing at the error.

    ``location`` is where ``text`` starts in its file; node locations are offset by it (the
    column only on the first line).
    """
    if not isinstance(text, str):
        raise TypeError(f"an expression must be text, got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError(
            "the expression is empty", _offset(location, 1, 1), hint="write e.g. x.amount > 100"
        )
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"the expression is {len(text)} characters long, over the limit of {MAX_LENGTH}",
            _offset(location, 1, 1),
            hint="split it into several rules, or put long lists into a fact or a decision table",
        )
    return _parse_cached(text, location)


@lru_cache(maxsize=2048)
def _parse_cached(text: str, location: Location | None) -> Node:
    # Trees are immutable, so rule files that repeat a condition share one parse.
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc, location) from None
    return _Builder(location).build(tree, 1)


def _offset(base: Location | None, line: int, column: int) -> Location:
    if base is None:
        return Location(None, line, column)
    if base.line is None:
        return Location(base.file, line, column)
    if line > 1:
        return Location(base.file, base.line + line - 1, column)
    shifted = None if base.column is None else base.column + column - 1
    return Location(base.file, base.line, shifted)


def _end_position(text: str) -> tuple[int, int]:
    body = text.rstrip()
    lines = body.split("\n")
    return len(lines), len(lines[-1]) + 1


_CHAR_HINTS: Final = MappingProxyType(
    {
        "=": "compare with '==' (a single '=' does not exist)",
        "&": "write 'and' instead of '&' or '&&'",
        "|": "write 'or' instead of '|' or '||'",
        "!": "write 'not x' for negation; '!=' means not equal",
        "'": "text must be closed with the same quote on the same line",
        '"': "text must be closed with the same quote on the same line",
        "{": "mappings cannot be written in expressions; use a list [...] or a field a.b",
    }
)
_VALUE_STARTS: Final = frozenset({"NAME", "INT", "FLOAT", "STRING", "LPAR"})
_CLOSERS: Final = MappingProxyType(
    {"RPAR": "')'", "RBRACKET": "']'", "COMMA": "','", "ELSE": "'else'", "$END": "the end"}
)


def _syntax_error(text: str, exc: UnexpectedInput, base: Location | None) -> ExpressionError:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream is not None else "?"
        hint = _CHAR_HINTS.get(char, "expressions use names, numbers, text, operators and calls")
        where = _offset(base, exc.line, exc.column)
        return ExpressionError(f"unexpected character {char!r}", where, hint=hint)
    if isinstance(exc, UnexpectedToken):
        return _token_error(text, exc, base)
    line, column = _end_position(text)
    return ExpressionError("the expression ends too early", _offset(base, line, column))


def _token_error(text: str, exc: UnexpectedToken, base: Location | None) -> ExpressionError:
    token = exc.token
    if token.type == "$END":
        line, column = _end_position(text)
        message = "the expression ends too early"
    else:
        line, column = token.line or 1, token.column or 1
        message = f"unexpected {str(token)!r}"
    return ExpressionError(message, _offset(base, line, column), hint=_expected_hint(exc, token))


def _expected_hint(exc: UnexpectedToken, token: Token) -> str:
    # LALR merges look-ahead sets, so ``exc.expected`` lists tokens that would fail one step
    # later; asking the parser which tokens it really accepts here gives an honest hint.
    parser = exc.interactive_parser
    accepts = cast("Callable[[], Collection[str]] | None", getattr(parser, "accepts", None))
    expected = set(accepts()) if accepts is not None else set(exc.expected)
    if token.type == "LPAR" and "NAME" not in expected:
        return "only whitelisted functions can be called, as name(args): upper(x), not x.upper()"
    if token.value in ("is", "is not"):
        return "compare with '==' or '!=' (e.g. x == null)"
    wanted = ["a value"] if "NAME" in expected else []
    if expected - _VALUE_STARTS - set(_CLOSERS) and not wanted:
        wanted.append("an operator")
    wanted += sorted(_CLOSERS[name] for name in expected if name in _CLOSERS)
    return "expected " + " or ".join(wanted) if wanted else "check the syntax"


def _token(item: _Item) -> Token:
    if not isinstance(item, Token):
        raise AssertionError(f"expected a token, got {item!r}")
    return item


def _first_token(item: _Item) -> Token:
    while isinstance(item, Tree):
        item = item.children[0]
    return item


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) > 1:
        return chr(int(code[1:], 16))
    return _ESCAPES.get(code, "\\" + code)


class _Builder:
    """Turns lark's parse tree into our nodes, with absolute locations and a depth bound."""

    def __init__(self, base: Location | None) -> None:
        self._base = base

    def at(self, token: Token) -> Location:
        return _offset(self._base, token.line or 1, token.column or 1)

    def build(self, item: _Item, depth: int) -> Node:
        if isinstance(item, Token):
            raise AssertionError(f"unexpected bare token {item!r}")
        if depth > MAX_DEPTH:
            raise self.too_deep(item)
        # Rule names come from our grammar only, so this lookup cannot reach anything else.
        rule: Callable[[list[_Item], int], Node] = getattr(self, f"_rule_{item.data}")
        return rule(item.children, depth + 1)

    def too_deep(self, item: _Item) -> ExpressionError:
        return ExpressionError(
            f"the expression nests deeper than {MAX_DEPTH} levels",
            self.at(_first_token(item)),
            hint="split it into simpler conditions or compute parts in an earlier stage",
        )

    def identifier(self, token: Token) -> str:
        if token.value.startswith("_"):
            raise ExpressionError(
                f"names may not start with '_' ({token.value!r})",
                self.at(token),
                hint="private and special (dunder) names cannot be reached from expressions",
            )
        return str(token.value)

    def _rule_name(self, items: list[_Item], depth: int) -> Node:
        token = _token(items[0])
        if token.value in _CONSTANTS:
            return Literal(_CONSTANTS[token.value], location=self.at(token))
        return Name(self.identifier(token), location=self.at(token))

    def _rule_literal(self, items: list[_Item], depth: int) -> Node:
        token = _token(items[0])
        text = str(token.value)
        if token.type == "STRING":
            return Literal(_ESCAPE_RE.sub(_unescape_one, text[1:-1]), location=self.at(token))
        try:
            value: LiteralValue = float(text) if token.type == "FLOAT" else int(text)
        except ValueError:
            # Python refuses to convert integers of thousands of digits; so do we.
            raise ExpressionError("this number is too long", self.at(token)) from None
        if value in (float("inf"), float("-inf")):
            raise ExpressionError("this number is too large", self.at(token))
        return Literal(value, location=self.at(token))

    def _rule_getattr(self, items: list[_Item], depth: int) -> Node:
        token = _token(items[1])
        obj = self.build(items[0], depth)
        return GetAttr(obj, self.identifier(token), location=self.at(token))

    def _rule_getitem(self, items: list[_Item], depth: int) -> Node:
        obj, index = self.build(items[0], depth), self.build(items[2], depth)
        return GetItem(obj, index, location=self.at(_token(items[1])))

    def _rule_call(self, items: list[_Item], depth: int) -> Node:
        token = _token(items[0])
        args = tuple(self.build(arg, depth) for arg in items[1:])
        return Call(self.identifier(token), args, location=self.at(token))

    def _rule_list(self, items: list[_Item], depth: int) -> Node:
        values = tuple(self.build(item, depth) for item in items[1:-1])
        return ListExpr(values, location=self.at(_token(items[0])))

    def _rule_unary_op(self, items: list[_Item], depth: int) -> Node:
        token, operand = _token(items[0]), self.build(items[1], depth)
        value = operand.value if isinstance(operand, Literal) else None
        # Fold signed numeric literals here so static analysis sees Literal(-5), not Unary.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Literal(-value if token.value == "-" else value, location=self.at(token))
        return Unary(str(token.value), operand, location=self.at(token))

    def _rule_not_op(self, items: list[_Item], depth: int) -> Node:
        return Unary("not", self.build(items[1], depth), location=self.at(_token(items[0])))

    def _chain(self, items: list[_Item], depth: int) -> Node:
        operators = [_token(item) for item in items[1::2]]
        # The chain becomes a left-leaning tree as deep as it has operators: count them.
        operand_depth = depth + len(operators) - 1
        if operand_depth > MAX_DEPTH:
            raise self.too_deep(items[0])
        result = self.build(items[0], operand_depth)
        for token, item in zip(operators, items[2::2], strict=True):
            right = self.build(item, operand_depth)
            result = Binary(str(token.value), result, right, location=self.at(token))
        return result

    _rule_sum = _chain
    _rule_product = _chain

    def _rule_comparison(self, items: list[_Item], depth: int) -> Node:
        operands = [self.build(item, depth) for item in items[0::2]]
        operators = [item for item in items[1::2] if isinstance(item, Tree)]
        ops = tuple(" ".join(str(tok) for tok in op.children) for op in operators)
        where = self.at(_first_token(operators[0]))
        return Compare(operands[0], ops, tuple(operands[1:]), location=where)

    def _bool_op(self, items: list[_Item], depth: int) -> Node:
        token = _token(items[1])
        values = tuple(self.build(item, depth) for item in items[0::2])
        return BoolOp(str(token.value), values, location=self.at(token))

    _rule_or_test = _bool_op
    _rule_and_test = _bool_op

    def _rule_conditional(self, items: list[_Item], depth: int) -> Node:
        body, test, orelse = (self.build(items[i], depth) for i in (0, 2, 4))
        return Conditional(test, body, orelse, location=self.at(_token(items[1])))


# --------------------------------------------------------------------------------------------
# Turning a tree back into text (for messages and reports about rules).

_PRECEDENCE: Final = MappingProxyType(
    {"or": 2, "and": 3, "not": 4, "+": 6, "-": 6, "*": 7, "/": 7, "//": 7, "%": 7}
)


def _precedence(node: Node) -> int:
    if isinstance(node, Conditional):
        return 1
    if isinstance(node, BoolOp):
        return _PRECEDENCE[node.op]
    if isinstance(node, Compare):
        return 5
    if isinstance(node, Binary):
        return _PRECEDENCE[node.op]
    if isinstance(node, Unary):
        return 4 if node.op == "not" else 8
    if isinstance(node, Literal) and isinstance(node.value, (int, float)) and node.value < 0:
        return 8
    return 9


def _literal_text(value: LiteralValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return "'" + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "'"
    return repr(value)


def _wrap(node: Node, minimum: int) -> str:
    text = unparse(node)
    return f"({text})" if _precedence(node) < minimum else text


def unparse(node: Node) -> str:
    """Canonical source text of a tree; parsing it again gives an equal tree."""
    if isinstance(node, Literal):
        return _literal_text(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, GetAttr):
        return f"{_wrap(node.obj, 9)}.{node.name}"
    if isinstance(node, GetItem):
        return f"{_wrap(node.obj, 9)}[{unparse(node.index)}]"
    if isinstance(node, (Call, ListExpr)):
        parts = ", ".join(unparse(a) for a in node.children())
        return f"{node.func}({parts})" if isinstance(node, Call) else f"[{parts}]"
    if isinstance(node, Unary):
        prefix = "not " if node.op == "not" else node.op
        return prefix + _wrap(node.operand, _precedence(node))
    if isinstance(node, Binary):
        level = _precedence(node)
        return f"{_wrap(node.left, level)} {node.op} {_wrap(node.right, level + 1)}"
    return _unparse_combined(node)


def _unparse_combined(node: Node) -> str:
    if isinstance(node, Compare):
        parts = [_wrap(node.left, 6)]
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts += [op, _wrap(right, 6)]
        return " ".join(parts)
    if isinstance(node, BoolOp):
        joiner = f" {node.op} "
        return joiner.join(_wrap(v, _precedence(node) + 1) for v in node.values)
    if isinstance(node, Conditional):
        body, test = _wrap(node.body, 2), _wrap(node.test, 2)
        return f"{body} if {test} else {_wrap(node.orelse, 1)}"
    raise TypeError(f"not an expression node: {node!r}")


# --------------------------------------------------------------------------------------------
# Run-time helpers. They raise _OperandError; the closure that called them knows the source and
# location and turns it into an EvaluationError.


class _OperandError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


_NUMBERS: Final = (int, float, Decimal, Fraction)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


_FIELDS_CACHE: dict[type, frozenset[str] | None] = {}


def _declared_fields(kind: type) -> frozenset[str] | None:
    try:
        return _FIELDS_CACHE[kind]
    except KeyError:
        pass
    model_fields = getattr(kind, "model_fields", None)  # pydantic v2 models
    names: Iterable[str]
    if isinstance(model_fields, dict):
        names = model_fields
    elif dataclasses.is_dataclass(kind):
        names = (f.name for f in dataclasses.fields(kind))
    elif issubclass(kind, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        names = getattr(kind, "_fields")  # noqa: B009 - named tuples, read by us not by users
    else:
        names = ()
    found = frozenset(n for n in names if not n.startswith("_")) if names != () else None
    if len(_FIELDS_CACHE) < 1024:  # classes made on the fly must not grow it without bound
        _FIELDS_CACHE[kind] = found
    return found


def _read_field(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    declared = _declared_fields(type(obj))
    if declared is None:
        raise _OperandError(
            f"cannot read field {key!r} of a {_kind(obj)} value",
            hint="dotted access works on mappings, pydantic models and dataclasses only",
        )
    return getattr(obj, key) if key in declared else None


def _read_item(obj: Any, key: Any) -> Any:
    if obj is None or key is None:
        return None
    if isinstance(obj, Mapping):
        try:
            return obj.get(key)
        except TypeError:
            raise _OperandError(f"a {_kind(key)} cannot be used as a key") from None
    if isinstance(obj, (list, tuple, str)):
        if not isinstance(key, int) or isinstance(key, bool):
            raise _OperandError(f"a {_kind(obj)} index must be an integer, not {_kind(key)}")
        return obj[key] if -len(obj) <= key < len(obj) else None
    if isinstance(key, str) and not key.startswith("_"):
        return _read_field(obj, key)
    raise _OperandError(f"cannot index a {_kind(obj)} value with a {_kind(key)}")


def _operand_types(symbol: str, left: object, right: object) -> _OperandError:
    hint = None
    if {_kind(left), _kind(right)} & {"str"}:
        hint = "convert text with int(...), float(...) or date(...) first"
    return _OperandError(f"cannot apply '{symbol}' to {_kind(left)} and {_kind(right)}", hint)


def _arithmetic(symbol: str, apply: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def run(left: Any, right: Any) -> Any:
        if isinstance(left, _NUMBERS) and isinstance(right, _NUMBERS):
            try:
                return apply(left, right)
            except ZeroDivisionError:
                raise _OperandError(f"division by zero in '{symbol}'") from None
            except (ArithmeticError, TypeError) as exc:
                raise _OperandError(f"'{symbol}' failed: {exc}") from None
        if left is None or right is None:
            return None
        raise _operand_types(symbol, left, right)

    return run


_add_numbers = _arithmetic("+", operator.add)


def _plus(left: Any, right: Any) -> Any:
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return [*left, *right]
    return _add_numbers(left, right)


_ARITHMETIC: Final[Mapping[str, Callable[[Any, Any], Any]]] = MappingProxyType(
    {
        "+": _plus,
        "-": _arithmetic("-", operator.sub),
        "*": _arithmetic("*", operator.mul),
        "/": _arithmetic("/", operator.truediv),
        "//": _arithmetic("//", operator.floordiv),
        "%": _arithmetic("%", operator.mod),
    }
)


def _sign(symbol: str, value: Any) -> Any:
    if isinstance(value, _NUMBERS):
        return -value if symbol == "-" else +value
    if value is None:
        return None
    raise _OperandError(f"cannot apply unary '{symbol}' to {_kind(value)}")


def _comparison_failure(symbol: str, left: object, right: object) -> _OperandError:
    kinds = {_kind(left), _kind(right)}
    hint = None
    if "str" in kinds and kinds & {"date", "datetime"}:
        hint = "convert the text with date('2024-01-31') or datetime(...)"
    elif "str" in kinds:
        hint = "convert the text with int(...) or float(...)"
    message = f"cannot compare {_kind(left)} with {_kind(right)} using '{symbol}'"
    return _OperandError(message, hint)


_ORDER: Final[Mapping[str, Callable[[Any, Any], Any]]] = MappingProxyType(
    {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
)
_FLIPPED: Final = MappingProxyType(
    {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
)


def _ordered(symbol: str) -> Callable[[Any, Any], bool]:
    compare = _ORDER[symbol]

    def test(left: Any, right: Any) -> bool:
        try:
            return bool(compare(left, right))
        except TypeError:
            if left is None or right is None:
                return False
            raise _comparison_failure(symbol, left, right) from None

    return test


def _contains(item: Any, container: Any) -> bool:
    if container is None:
        return False
    try:
        return item in container
    except TypeError:
        if item is None:
            return False
        raise _OperandError(f"cannot look for a {_kind(item)} in a {_kind(container)}") from None


def _search(pattern: re.Pattern[str], text: Any) -> bool:
    if text is None:
        return False
    if not isinstance(text, str):
        raise _OperandError(f"only text can be matched against a pattern, not {_kind(text)}")
    return pattern.search(text) is not None


def _regex(pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise _OperandError(f"a regular expression must be text, not {_kind(pattern)}")
    try:
        compiled = re.compile(pattern)  # re keeps its own cache of compiled patterns
    except re.error as exc:
        raise _OperandError(f"invalid regular expression {pattern!r}: {exc}") from None
    if _nested_repeat(pattern):
        raise _OperandError(
            f"the regular expression {pattern!r} repeats a group that itself repeats without "
            "bound (like (a+)+): matching can take exponential time",
            hint="rewrite it without a repeat inside a repeat, e.g. a+ instead of (a+)+",
        )
    return compiled


@lru_cache(maxsize=1024)
def _nested_repeat(pattern: str) -> bool:
    # Python's re backtracks without a time limit: an unbounded repeat inside another is the
    # classic catastrophic pattern ('(a+)+$' on 30 a's and a '!' runs for minutes).
    try:
        parser: Any = importlib.import_module("re._parser")
    except ImportError:  # Python 3.10
        parser = importlib.import_module("sre_parse")
    try:
        return _repeats_nested(parser.parse(pattern), False, parser.MAXREPEAT)
    except Exception:  # re.compile accepted it; anything odd in its parse is no finding
        return False


def _repeats_nested(items: Any, inside: bool, unbounded: int) -> bool:
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            if arg[1] == unbounded and _bare_repeat(arg[2], unbounded):
                return True
            if _repeats_nested(arg[2], inside, unbounded):
                return True
        elif any(_repeats_nested(sub, inside, unbounded) for sub in _parts(name, arg)):
            return True
    return False


def _bare_repeat(items: Any, unbounded: int) -> bool:
    """The body of a repeat is an unbounded repeat plus only parts that may match nothing, so
    one text splits between iterations in exponentially many ways: ``(a+)+``, ``(\\s*\\w+)*``.
    A delimiter, as in ``(\\d+,)*``, makes the split unique: not reported."""
    found = False
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            found = found or arg[1] == unbounded
            if arg[1] != unbounded and arg[0] > 0:
                return False
        elif name in ("SUBPATTERN", "BRANCH"):
            if not any(_bare_repeat(sub, unbounded) for sub in _parts(name, arg)):
                return False
            found = True
        elif name != "AT":  # anchors match nothing; anything else needs a character
            return False
    return found


def _parts(name: str, arg: Any) -> list[Any]:
    """The sub-patterns of a group, an alternation or a lookaround."""
    if name == "SUBPATTERN":
        return [arg[-1]]
    if name == "BRANCH":
        return list(arg[1])
    return [arg[1]] if name in ("ASSERT", "ASSERT_NOT") else []


def _matches(text: Any, pattern: Any) -> bool:
    if text is None or pattern is None:
        return False
    return _search(_regex(pattern), text)


def _negated(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda left, right: not test(left, right)


_TESTS: Final[Mapping[str, Callable[[Any, Any], bool]]] = MappingProxyType(
    {
        "==": operator.eq,
        "!=": operator.ne,
        **{symbol: _ordered(symbol) for symbol in _ORDER},
        "in": _contains,
        "not in": _negated(_contains),
        "matches": _matches,
        "not matches": _negated(_matches),
    }
)


# --------------------------------------------------------------------------------------------
# The whitelisted functions. Each is pure and deterministic (which is why they may be folded at
# compile time) and returns null for a null subject.


def _text_arg(function: str, value: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{function}() expects text, got {_kind(value)}")


def _list_arg(function: str, value: object) -> list[Any] | tuple[Any, ...] | set[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value) if isinstance(value, frozenset) else value
    raise TypeError(f"{function}() expects a list, got {_kind(value)}")


def _fn_len(value: Any) -> int | None:
    return None if value is None else len(value)


def _fn_lower(text: Any) -> str | None:
    return None if text is None else _text_arg("lower", text).lower()


def _fn_upper(text: Any) -> str | None:
    return None if text is None else _text_arg("upper", text).upper()


def _fn_strip(text: Any) -> str | None:
    return None if text is None else _text_arg("strip", text).strip()


def _fn_contains(container: Any, item: Any) -> bool | None:
    if container is None:
        return None
    if isinstance(container, str):
        return item is not None and _text_arg("contains", item) in container
    return item in container


def _affixes(function: str, value: Any) -> str | tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(_text_arg(function, item) for item in value)
    return _text_arg(function, value)


def _fn_startswith(text: Any, prefix: Any) -> bool | None:
    if text is None:
        return None
    return _text_arg("startswith", text).startswith(_affixes("startswith", prefix))


def _fn_endswith(text: Any, suffix: Any) -> bool | None:
    if text is None:
        return None
    return _text_arg("endswith", text).endswith(_affixes("endswith", suffix))


def _fn_abs(value: Any) -> Any:
    return None if value is None else abs(value)


def _fn_round(value: Any, digits: int | None = None) -> Any:
    if value is None:
        return None
    return round(value) if digits is None else round(value, digits)


def _present(values: tuple[Any, ...]) -> list[Any]:
    single = values[0] if len(values) == 1 else None
    items = single if isinstance(single, (list, tuple, set, frozenset)) else values
    return [item for item in items if item is not None]


def _fn_min(first: Any, *rest: Any) -> Any:
    items = _present((first, *rest))
    return min(items) if items else None


def _fn_max(first: Any, *rest: Any) -> Any:
    items = _present((first, *rest))
    return max(items) if items else None


def _fn_sum(values: Any) -> Any:
    if values is None:
        return None
    return sum(item for item in _list_arg("sum", values) if item is not None)


def _fn_any(values: Any) -> bool | None:
    return None if values is None else any(_list_arg("any", values))


def _fn_all(values: Any) -> bool | None:
    return None if values is None else all(_list_arg("all", values))


_NO_VALUE: Final = object()


def _fn_count(values: Any, value: Any = _NO_VALUE) -> int | None:
    if values is None:
        return None
    if isinstance(values, str):
        return values.count(_text_arg("count", value)) if value is not _NO_VALUE else len(values)
    items = _list_arg("count", values)
    if value is _NO_VALUE:
        return sum(1 for item in items if item is not None)
    return sum(1 for item in items if item == value)


def _fn_int(value: Any) -> int | None:
    if value is None:
        return None
    return int(value.strip()) if isinstance(value, str) else int(value)


def _fn_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _fn_str(value: Any) -> str | None:
    return None if value is None else str(value)


_TRUTHY: Final = frozenset({"true", "yes", "1", "on", "y", "t"})
_FALSY: Final = frozenset({"false", "no", "0", "off", "n", "f", ""})


def _fn_bool(value: Any) -> bool:
    if not isinstance(value, str):
        return bool(value)
    word = value.strip().lower()
    if word in _TRUTHY or word in _FALSY:
        return word in _TRUTHY
    raise ValueError(f"bool() does not understand the text {value!r}; use true/false, yes/no")


def _fn_date(value: Any) -> _dt.date | None:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    text = _text_arg("date", value).strip()
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return _dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"date() expects an ISO date like '2024-01-31', got {value!r}") from None


def _fn_datetime(value: Any) -> _dt.datetime | None:
    if value is None or isinstance(value, _dt.datetime):
        return value
    if isinstance(value, _dt.date):
        return _dt.datetime.combine(value, _dt.time())
    text = _text_arg("datetime", value).strip()
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"datetime() expects ISO text like '2024-01-31T10:30:00', got {value!r}"
        ) from None


def _fn_days_between(start: Any, end: Any) -> int | None:
    first, last = _fn_date(start), _fn_date(end)
    if first is None or last is None:
        return None
    return (last - first).days


def _fn_year(value: Any) -> int | None:
    day = _fn_date(value)
    return None if day is None else day.year


def _fn_month(value: Any) -> int | None:
    day = _fn_date(value)
    return None if day is None else day.month


def _fn_day(value: Any) -> int | None:
    day = _fn_date(value)
    return None if day is None else day.day


def _fn_match(pattern: Any, text: Any) -> bool:
    return _matches(text, pattern)


def _fn_coalesce(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _fn_pluck(items: Any, key: Any) -> list[Any] | None:
    # Rules need to test a field across every fact of a kind: 'fraud' in pluck(facts.flag, 'name').
    if items is None:
        return None
    return [_read_item(item, key) for item in _list_arg("pluck", items)]


BUILTIN_FUNCTIONS: Final[Mapping[str, Callable[..., Any]]] = MappingProxyType(
    {
        "abs": _fn_abs,
        "all": _fn_all,
        "any": _fn_any,
        "bool": _fn_bool,
        "coalesce": _fn_coalesce,
        "pluck": _fn_pluck,
        "contains": _fn_contains,
        "count": _fn_count,
        "date": _fn_date,
        "datetime": _fn_datetime,
        "day": _fn_day,
        "days_between": _fn_days_between,
        "endswith": _fn_endswith,
        "float": _fn_float,
        "int": _fn_int,
        "len": _fn_len,
        "lower": _fn_lower,
        "match": _fn_match,
        "max": _fn_max,
        "min": _fn_min,
        "month": _fn_month,
        "round": _fn_round,
        "startswith": _fn_startswith,
        "str": _fn_str,
        "strip": _fn_strip,
        "sum": _fn_sum,
        "upper": _fn_upper,
        "year": _fn_year,
    }
)
"""The functions every expression may call, by name (read-only)."""


# --------------------------------------------------------------------------------------------
# Compilation into closures. Each node kind, and the common operator shapes, get their own
# closure so that evaluation does no dispatching; subtrees of constants are computed once.


@dataclass(frozen=True)
class _Code:
    fn: Evaluator
    const: bool = False
    value: Any = None
    path: tuple[str, str] | None = None  # (root, key) when ``fn`` reads ``root.key``


def _constant(value: Any) -> _Code:
    if isinstance(value, list):
        # Hand each evaluation its own list so a caller cannot change the constant.
        items = tuple(value)
        return _Code(lambda env: list(items), True, value)
    return _Code(lambda env: value, True, value)


_Failure: TypeAlias = Callable[[_OperandError], EvaluationError]


class _Compiler:
    def __init__(
        self, source: str, functions: Mapping[str, Callable[..., Any]], location: Location | None
    ) -> None:
        self.source = source
        self.functions = functions
        self.not_mapping = _env_failure(source, location)
        # Every node's result, by node identity: the code generator (_codegen) reads which
        # subtrees folded to constants, so both evaluators fold exactly the same way.
        self.codes: dict[int, _Code] = {}

    def failure(self, node: Node) -> _Failure:
        source, location = self.source, node.location

        def fail(exc: _OperandError) -> EvaluationError:
            return EvaluationError(exc.message, source, location, exc.hint)

        return fail

    def fold(self, fn: Evaluator, *parts: _Code) -> _Code:
        if not all(part.const for part in parts):
            return _Code(fn)
        try:
            value = fn(_EMPTY_ENV)
        except EvaluationError:
            return _Code(fn)  # keep the error for evaluation time, where it is documented
        return _constant(value)

    def compile(self, node: Node) -> _Code:
        code = self._compile(node)
        self.codes[id(node)] = code
        return code

    def _compile(self, node: Node) -> _Code:
        if isinstance(node, Literal):
            return _constant(node.value)
        if isinstance(node, Name):
            return _Code(_name_reader(node.name, self.not_mapping))
        if isinstance(node, GetAttr):
            return self._getattr(node)
        if isinstance(node, GetItem):
            return self._getitem(node)
        if isinstance(node, Unary):
            return self._unary(node)
        if isinstance(node, Binary):
            return self._binary(node)
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, BoolOp):
            return self._bool_op(node)
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, ListExpr):
            items = [self.compile(item) for item in node.items]
            fns = tuple(item.fn for item in items)
            return self.fold(lambda env: [fn(env) for fn in fns], *items)
        if isinstance(node, Conditional):
            return self._conditional(node)
        raise TypeError(f"not an expression node: {node!r}")

    def _getattr(self, node: GetAttr) -> _Code:
        key, fail = node.name, self.failure(node)
        if isinstance(node.obj, Name):
            # The most common shape, ``fact.field``: one closure for both steps.
            root = node.obj.name
            return _Code(_root_field(root, key, fail, self.not_mapping), path=(root, key))
        inner = self.compile(node.obj)
        obj_fn = inner.fn

        def get(env: Env) -> Any:
            obj = obj_fn(env)
            if type(obj) is dict:
                return obj.get(key)
            try:
                return _read_field(obj, key)
            except _OperandError as exc:
                raise fail(exc) from None

        return self.fold(get, inner)

    def _getitem(self, node: GetItem) -> _Code:
        obj, index, fail = self.compile(node.obj), self.compile(node.index), self.failure(node)
        obj_fn, index_fn = obj.fn, index.fn

        def get(env: Env) -> Any:
            try:
                return _read_item(obj_fn(env), index_fn(env))
            except _OperandError as exc:
                raise fail(exc) from None

        return self.fold(get, obj, index)

    def _unary(self, node: Unary) -> _Code:
        operand = self.compile(node.operand)
        fn, symbol, fail = operand.fn, node.op, self.failure(node)
        if symbol == "not":
            return self.fold(lambda env: not fn(env), operand)

        def sign(env: Env) -> Any:
            try:
                return _sign(symbol, fn(env))
            except _OperandError as exc:
                raise fail(exc) from None

        return self.fold(sign, operand)

    def _binary(self, node: Binary) -> _Code:
        left, right = self.compile(node.left), self.compile(node.right)
        apply, fail = _ARITHMETIC[node.op], self.failure(node)
        left_fn, right_fn = left.fn, right.fn

        def arithmetic(env: Env) -> Any:
            try:
                return apply(left_fn(env), right_fn(env))
            except _OperandError as exc:
                raise fail(exc) from None

        return self.fold(arithmetic, left, right)

    def _compare(self, node: Compare) -> _Code:
        left = self.compile(node.left)
        rights = [self.compile(item) for item in node.comparators]
        for op, right, item in zip(node.ops, rights, node.comparators, strict=True):
            if op.endswith("matches") and right.const:
                self._pattern(right.value, item)  # reject a bad literal pattern now
        if len(node.ops) == 1:
            fn = self._compare_one(node.ops[0], left, rights[0], node)
        else:
            tests = (_TESTS[op] for op in node.ops)
            pairs = tuple(zip(tests, (right.fn for right in rights), strict=True))
            fn = _chain(left.fn, pairs, self.failure(node))
        return self.fold(fn, left, *rights)

    def _pattern(self, pattern: Any, node: Node) -> re.Pattern[str] | None:
        if pattern is None:
            return None
        try:
            return _regex(pattern)
        except _OperandError as exc:
            raise ExpressionError(
                exc.message, node.location, hint="check the pattern's syntax (Python re)"
            ) from None

    def _compare_one(self, op: str, left: _Code, right: _Code, node: Compare) -> Evaluator:
        fail = self.failure(node)
        if left.const and not right.const and op in _FLIPPED:
            left, right, op = right, left, _FLIPPED[op]
        if right.const and op.endswith("matches"):
            compiled = self._pattern(right.value, node.comparators[0])
            return _matches_constant(left.fn, compiled, op == "not matches", fail)
        if right.const and op.endswith("in"):
            return _in_constant(left.fn, right.value, op == "not in", fail)
        if right.const and op in _FLIPPED and left.path is not None:
            return _field_compare(left.path, op, right.value, left.fn, fail, self.not_mapping)
        if right.const and op in _FLIPPED:
            return _compare_constant(op, left.fn, right.value, fail)
        return _compare_general(_TESTS[op], left.fn, right.fn, fail)

    def _bool_op(self, node: BoolOp) -> _Code:
        values = [self.compile(value) for value in node.values]
        fns = tuple(value.fn for value in values)
        fn = _all_of(fns) if node.op == "and" else _any_of(fns)
        return self.fold(fn, *values)

    def _conditional(self, node: Conditional) -> _Code:
        test, body, orelse = (self.compile(n) for n in (node.test, node.body, node.orelse))
        if test.const:
            return body if test.value else orelse
        test_fn, body_fn, orelse_fn = test.fn, body.fn, orelse.fn
        return _Code(lambda env: body_fn(env) if test_fn(env) else orelse_fn(env))

    def _call(self, node: Call) -> _Code:
        function = self.functions[node.func]
        _check_arity(node, function)
        args = [self.compile(arg) for arg in node.args]
        if function is _fn_match and args[0].const:
            # A literal pattern is compiled (and checked) once, here, not at every call.
            compiled = self._pattern(args[0].value, node.args[0])
            function, args = _bound_search(compiled), args[1:]
        fn = _invoker(node.func, function, tuple(a.fn for a in args), self.failure(node))
        if BUILTIN_FUNCTIONS.get(node.func) is not self.functions[node.func]:
            return _Code(fn)  # functions added by a pipeline may not be pure: never fold them
        return self.fold(fn, *args)


def _env_failure(source: str, location: Location | None) -> Callable[[Any], EvaluationError]:
    def not_mapping(env: Any) -> EvaluationError:
        message = f"the environment must be a mapping of names to values, not {_kind(env)}"
        return EvaluationError(message, source, location)

    return not_mapping


# Only closures that read the environment check that it is a mapping, and only when reading it
# fails: a try block costs nothing until it catches, so the common path stays fast.


def _name_reader(name: str, not_mapping: Callable[[Any], EvaluationError]) -> Evaluator:
    def read(env: Env) -> Any:
        try:
            return env.get(name)
        except AttributeError:
            raise not_mapping(env) from None

    return read


def _root_field(
    root: str, key: str, fail: _Failure, not_mapping: Callable[[Any], EvaluationError]
) -> Evaluator:
    def get(env: Env) -> Any:
        try:
            obj = env.get(root)
        except AttributeError:
            raise not_mapping(env) from None
        if type(obj) is dict:
            return obj.get(key)
        try:
            return _read_field(obj, key)
        except _OperandError as exc:
            raise fail(exc) from None

    return get


_Test: TypeAlias = Callable[[Any, Any], bool]


def _chain(
    first: Evaluator, pairs: tuple[tuple[_Test, Evaluator], ...], fail: _Failure
) -> Evaluator:
    def chain(env: Env) -> bool:
        left = first(env)
        for test, right_fn in pairs:
            right = right_fn(env)
            try:
                if not test(left, right):
                    return False
            except _OperandError as exc:
                raise fail(exc) from None
            left = right
        return True

    return chain


def _compare_general(
    test: Callable[[Any, Any], bool], left: Evaluator, right: Evaluator, fail: _Failure
) -> Evaluator:
    def compare(env: Env) -> bool:
        a, b = left(env), right(env)
        try:
            return test(a, b)
        except _OperandError as exc:
            raise fail(exc) from None

    return compare


def _compare_constant(op: str, left: Evaluator, constant: Any, fail: _Failure) -> Evaluator:
    if op == "==":
        return lambda env: left(env) == constant
    if op == "!=":
        return lambda env: left(env) != constant
    order = _ORDER[op]

    def compare(env: Env) -> Any:
        value = left(env)
        try:
            return order(value, constant)
        except TypeError:
            if value is None or constant is None:
                return False
            raise fail(_comparison_failure(op, value, constant)) from None

    return compare


_COMPARE: Final[Mapping[str, Callable[[Any, Any], Any]]] = MappingProxyType(
    {"==": operator.eq, "!=": operator.ne, **_ORDER}
)


def _field_compare(
    path: tuple[str, str],
    op: str,
    constant: Any,
    read: Evaluator,
    fail: _Failure,
    not_mapping: Callable[[Any], EvaluationError],
) -> Evaluator:
    # ``fact.field > 100`` is the commonest condition of all: read and compare in one closure.
    root, key = path
    compare = _COMPARE[op]

    def field_compare(env: Env) -> Any:
        try:
            obj = env.get(root)
        except AttributeError:
            raise not_mapping(env) from None
        value = obj.get(key) if type(obj) is dict else read(env)
        try:
            return compare(value, constant)
        except TypeError:
            if value is None or constant is None:
                return False
            raise fail(_comparison_failure(op, value, constant)) from None

    return field_compare


def _in_constant(left: Evaluator, container: Any, negate: bool, fail: _Failure) -> Evaluator:
    test = _negated(_contains) if negate else _contains
    items = tuple(container) if isinstance(container, list) else None
    try:
        members = frozenset(items) if items is not None else None
    except TypeError:  # a list literal holding lists: scan it instead
        members = None
    if items is None or members is None:
        return _compare_general(test, left, lambda env: container, fail)

    def contained(env: Env) -> bool:
        value = left(env)
        try:
            found = value in members
        except TypeError:  # an unhashable value (a list, a mapping) is compared item by item
            found = value in items
        return found is not negate

    return contained


def _matches_constant(
    left: Evaluator, pattern: re.Pattern[str] | None, negate: bool, fail: _Failure
) -> Evaluator:
    if pattern is None:
        return lambda env: negate
    search = pattern.search

    def matches(env: Env) -> bool:
        text = left(env)
        if type(text) is str:
            return (search(text) is not None) is not negate
        try:
            return _search(pattern, text) is not negate
        except _OperandError as exc:
            raise fail(exc) from None

    return matches


def _all_of(fns: tuple[Evaluator, ...]) -> Evaluator:
    if len(fns) == 2:
        first, second = fns
        return lambda env: first(env) and second(env)

    def all_of(env: Env) -> Any:
        value: Any = True
        for fn in fns:
            value = fn(env)
            if not value:
                return value
        return value

    return all_of


def _any_of(fns: tuple[Evaluator, ...]) -> Evaluator:
    if len(fns) == 2:
        first, second = fns
        return lambda env: first(env) or second(env)

    def any_of(env: Env) -> Any:
        value: Any = False
        for fn in fns:
            value = fn(env)
            if value:
                return value
        return value

    return any_of


def _bound_search(pattern: re.Pattern[str] | None) -> Callable[[Any], bool]:
    if pattern is None:
        return lambda text: False
    return lambda text: _search(pattern, text)


def _invoker(
    name: str, function: Callable[..., Any], args: tuple[Evaluator, ...], fail: _Failure
) -> Evaluator:
    def failed(exc: Exception) -> EvaluationError:
        detail = exc.message if isinstance(exc, _OperandError) else str(exc)
        return fail(_OperandError(f"{name}() failed: {detail}"))

    if len(args) == 1:
        (arg,) = args

        def call_one(env: Env) -> Any:
            value = arg(env)
            try:
                return function(value)
            except HybridAIError:
                raise
            except Exception as exc:
                raise failed(exc) from exc

        return call_one

    def call(env: Env) -> Any:
        values = [arg(env) for arg in args]
        try:
            return function(*values)
        except HybridAIError:
            raise
        except Exception as exc:
            raise failed(exc) from exc

    return call


def _parameters(signature: inspect.Signature) -> str:
    parts = []
    for param in signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            parts.append(f"{param.name}...")
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            parts.append(param.name if param.default is param.empty else f"[{param.name}]")
    return ", ".join(parts)


def _check_arity(node: Call, function: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # some C functions have no signature; their calls are checked when they run
    try:
        signature.bind(*range(len(node.args)))
    except TypeError as exc:
        raise ExpressionError(
            f"{node.func}() cannot take {len(node.args)} argument(s): {exc}",
            node.location,
            hint=f"call it as {node.func}({_parameters(signature)})",
        ) from None


# --------------------------------------------------------------------------------------------
# The public entry points.


class Expression(partial[Any]):
    """A compiled expression: call it with a mapping of top-level names to values.

    ``source`` is the text, ``ast`` its tree, ``names`` the free top-level variables it reads,
    ``functions_used`` the functions it calls, and ``location`` where it was written.
    ``evaluator`` is the function that does the work (calling the expression calls it directly):
    generated from the tree, or the closure evaluator where the tree is too large for that.
    """

    # A partial subclass, because calling a partial goes straight to the closure in C; a
    # ``__call__`` written in Python would add a frame to every evaluation (about 30% here).

    source: str
    ast: Node
    location: Location | None
    names: frozenset[str]
    functions_used: frozenset[str]
    _recompile: tuple[
        str, Mapping[str, Callable[..., Any]] | None, frozenset[str] | None, Location | None
    ]

    def __new__(
        cls,
        source: str,
        ast: Node,
        evaluator: Evaluator,
        location: Location | None = None,
        *,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        allowed_names: frozenset[str] | None = None,
    ) -> Expression:
        self = super().__new__(cls, evaluator)
        self.source, self.ast, self.location = source, ast, location
        nodes = list(walk(ast))
        self.names = frozenset(n.name for n in nodes if isinstance(n, Name))
        self.functions_used = frozenset(n.func for n in nodes if isinstance(n, Call))
        self._recompile = (source, functions, allowed_names, location)
        return self

    @property
    def evaluator(self) -> Evaluator:
        """The compiled function itself (a little faster to call than the expression)."""
        return cast(Evaluator, self.func)

    def __repr__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"Expression({self.source!r}{where})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Closures cannot be pickled; recompiling from the text gives the same expression.
        return (compile_expression, self._recompile)


def _function_table(
    functions: Mapping[str, Callable[..., Any]] | None,
) -> Mapping[str, Callable[..., Any]]:
    if not functions:
        return BUILTIN_FUNCTIONS
    for name, function in functions.items():
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"invalid expression function name {name!r}")
        if not callable(function):
            raise TypeError(f"expression function {name!r} is not callable")
    return {**BUILTIN_FUNCTIONS, **functions}


def _unknown(kind: str, name: str, location: Location, known: Iterable[str]) -> ExpressionError:
    available = sorted(known)
    close = difflib.get_close_matches(name, available, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    listed = ", ".join(available) or "none"
    return ExpressionError(f"unknown {kind} {name!r}", location, hint=f"{guess}available: {listed}")


def _check_references(
    tree: Node, functions: Mapping[str, Callable[..., Any]], names: frozenset[str] | None
) -> None:
    for node in walk(tree):
        if isinstance(node, Name) and names is not None and node.name not in names:
            raise _unknown("name", node.name, node.location, names)
        if isinstance(node, Call) and node.func not in functions:
            raise _unknown("function", node.func, node.location, functions)


def _as_text(source: object) -> str:
    # YAML turns `when: true` or `when: 3` into non-text; they are valid constant expressions.
    if isinstance(source, bool):
        return "true" if source else "false"
    if isinstance(source, (int, float)):
        return repr(source)
    if isinstance(source, str):
        return source
    raise TypeError(f"an expression must be text, got {type(source).__name__}")


def compile_expression(
    source: str,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    names: Collection[str] | None = None,
    location: Location | None = None,
) -> Expression:
    """Parse, check and compile ``source`` once; the result is called with an environment.

    ``functions`` are added to (and may replace) :data:`BUILTIN_FUNCTIONS`. When ``names`` is
    given, a variable outside it is an :class:`ExpressionError`. ``location`` is where the text
    starts in its file, so errors point at ``file:line:column`` of the offending token.
    """
    text = _as_text(source)
    tree = parse_expression(text, location)
    table = _function_table(functions)
    if isinstance(names, str):
        raise TypeError("names must be a collection of names, not one text")
    allowed = None if names is None else frozenset(names)
    _check_references(tree, table, allowed)
    compiler = _Compiler(text, table, location)
    code = compiler.compile(tree)
    evaluator = code.fn
    if not code.const:
        # Imported here: _codegen builds on this module's nodes and run-time helpers.
        from hybrid_ai._codegen import generate

        evaluator = generate(tree, compiler) or code.fn
    extra = dict(functions) if functions else None
    return Expression(
        text, tree, evaluator, location, functions=extra, allowed_names=allowed
    )
