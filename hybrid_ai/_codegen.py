"""Code generation for compiled expressions: one Python function per expression, built from our
own syntax tree. Used by :func:`hybrid_ai._expr.compile_expression`::

    evaluator = generate(tree, compiler)  # None: keep the closure evaluator

Why this is safe
================

The security rule is that the user's text is never handed to ``eval``, ``exec`` or ``compile``.
It is not: the text has already been parsed by our grammar into :mod:`hybrid_ai._expr` nodes,
checked (names, functions, arity, literal patterns, depth, length) and compiled into closures
before anything here runs. This module then builds Python ``ast`` objects itself, node by node:

* every value from the expression (numbers, text, field and key names, function names in
  messages) becomes an ``ast.Constant`` or an object we bind, never an identifier or source text;
* every Python identifier in the generated function is one of ours: the parameter ``env``,
  temporaries ``_tN``, bound objects ``_gN`` (our helpers, the whitelisted function objects, the
  exception classes we catch) and the handler's ``_e``; the only attribute read is ``.get`` of a
  mapping. :func:`_check_code` verifies that on the compiled code object (the names its
  bytecode can reach) before the function is made;
* the function runs with ``{"__builtins__": {}}`` plus the bound objects as its globals, and is
  made with ``types.FunctionType`` from the compiled code object: no ``exec`` either.

Nothing changes what an expression may reach: field reads, indexing, arithmetic, comparisons,
patterns and calls go through the same guard helpers of ``_expr`` as the closures (declared
fields only, no repetition, catastrophic patterns refused, type errors turned into
:class:`~hybrid_ai._expr.EvaluationError` with the node's ``file:line:col``), and the closure
compiler's constant folding is reused, so results and errors are the same, only faster (one
frame per evaluation instead of one closure call per node). Where Python cannot compile the
generated function (a tree too large, the compiler's own recursion limit), the caller keeps the
closure evaluator. Generating costs about 0.3-0.5 ms per condition, so the function made for a
parse tree (parsing caches trees by text and location) and its called functions is reused.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any, Final, TypedDict

from hybrid_ai._errors import HybridAIError
from hybrid_ai._expr import (
    _ARITHMETIC,
    _FLIPPED,
    _TESTS,
    Binary,
    BoolOp,
    Call,
    Compare,
    Conditional,
    EvaluationError,
    Evaluator,
    GetAttr,
    GetItem,
    ListExpr,
    Literal,
    Name,
    Node,
    Unary,
    _bound_search,
    _comparison_failure,
    _Compiler,
    _fn_match,
    _OperandError,
    _read_field,
    _read_item,
    _regex,
    _search,
    _sign,
    walk,
)

__all__ = ["MAX_NODES", "generate"]

MAX_NODES: Final = 2_000
"""Trees with more nodes keep the closure evaluator: Python's compiler needs time and memory
in proportion to the generated code, and such trees are data dumps more than conditions."""

_FILENAME: Final = "<hybrid_ai expression>"
_ORDERED: Final = frozenset({"<", "<=", ">", ">="})
_CMP_OPS: Final = {
    "==": ast.Eq, "!=": ast.NotEq, "<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE,
}
_INLINE_TYPES: Final = (bool, int, float, str)


class _Position(TypedDict):
    lineno: int
    col_offset: int
    end_lineno: int
    end_col_offset: int


# Every generated node sits at line 1: tracebacks point at the expression's own location,
# which EvaluationError carries; setting it here spares a walk of the tree.
_AT: Final = _Position(lineno=1, col_offset=0, end_lineno=1, end_col_offset=0)


# --------------------------------------------------------------------------------------------
# Run-time helpers called by generated code on its slow paths. Each mirrors one closure of
# _expr exactly, including which errors become an EvaluationError at the node's location.

_Fail = Callable[[_OperandError], EvaluationError]


def _field(obj: Any, key: str, fail: _Fail) -> Any:
    try:
        return _read_field(obj, key)
    except _OperandError as exc:
        raise fail(exc) from None


def _item(obj: Any, key: Any, fail: _Fail) -> Any:
    try:
        return _read_item(obj, key)
    except _OperandError as exc:
        raise fail(exc) from None


def _signed(symbol: str, value: Any, fail: _Fail) -> Any:
    try:
        return _sign(symbol, value)
    except _OperandError as exc:
        raise fail(exc) from None


def _arithmetic(apply: Callable[[Any, Any], Any], left: Any, right: Any, fail: _Fail) -> Any:
    try:
        return apply(left, right)
    except _OperandError as exc:
        raise fail(exc) from None


def _checked(test: Callable[[Any, Any], bool], left: Any, right: Any, fail: _Fail) -> bool:
    try:
        return test(left, right)
    except _OperandError as exc:
        raise fail(exc) from None


def _unordered(left: Any, right: Any, symbol: str, fail: _Fail) -> bool:
    """A comparison raised TypeError: false with a null operand, else the typed error."""
    if left is None or right is None:
        return False
    raise fail(_comparison_failure(symbol, left, right)) from None


def _search_other(pattern: re.Pattern[str], text: Any, negate: bool, fail: _Fail) -> bool:
    try:
        return _search(pattern, text) is not negate
    except _OperandError as exc:
        raise fail(exc) from None


def _call_failed(name: str, fail: _Fail, exc: Exception) -> EvaluationError:
    detail = exc.message if isinstance(exc, _OperandError) else str(exc)
    return fail(_OperandError(f"{name}() failed: {detail}"))


# --------------------------------------------------------------------------------------------
# Building the function.


@dataclass
class _Out:
    """A node's code: statements to run first, then an expression giving its value.

    ``atom``: the expression is a constant or a variable, so evaluating it does nothing and
    cannot fail, and it may be used twice or moved after later statements.
    """

    stmts: list[ast.stmt]
    expr: ast.expr
    atom: bool = False


def _const(value: Any) -> ast.Constant:
    return ast.Constant(**_AT, value=value)


def _load(name: str) -> ast.Name:
    return ast.Name(**_AT, id=name, ctx=ast.Load())


def _assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign(**_AT, targets=[ast.Name(**_AT, id=name, ctx=ast.Store())], value=value)


def _get_method(obj: ast.expr) -> ast.Attribute:
    """``obj.get``: the one attribute generated code reads, of a mapping we were given."""
    return ast.Attribute(**_AT, value=obj, attr="get", ctx=ast.Load())


def _call(func: ast.expr, *args: ast.expr) -> ast.Call:
    return ast.Call(**_AT, func=func, args=list(args), keywords=[])


def _compare(left: ast.expr, op: ast.cmpop, right: ast.expr) -> ast.Compare:
    return ast.Compare(**_AT, left=left, ops=[op], comparators=[right])


def _truth(expr: ast.expr) -> ast.IfExp:
    """``True if expr else False``: bool(expr) without calling a builtin."""
    return ast.IfExp(**_AT, test=expr, body=_const(True), orelse=_const(False))


def _guard(body: list[ast.stmt], catch: ast.expr, handler: list[ast.stmt]) -> ast.Try:
    handlers = [ast.ExceptHandler(**_AT, type=catch, name=None, body=handler)]
    return ast.Try(**_AT, body=body, handlers=handlers, orelse=[], finalbody=[])


@dataclass
class _Generator:
    compiler: _Compiler
    namespace: dict[str, Any] = field(default_factory=lambda: {"__builtins__": {}})
    bound: dict[int, ast.Name] = field(default_factory=dict)
    temps: int = 0

    def bind(self, obj: object) -> ast.Name:
        """A global of the generated function holding ``obj`` (a helper, a value, a class)."""
        name = self.bound.get(id(obj))
        if name is None:
            name = self.bound[id(obj)] = _load(f"_g{len(self.bound)}")
            self.namespace[name.id] = obj  # also keeps obj alive, so its id stays unique
        return name

    def temp(self) -> str:
        self.temps += 1
        return f"_t{self.temps}"

    def fail(self, node: Node) -> ast.Name:
        return self.bind(self.compiler.failure(node))

    def value(self, value: Any) -> ast.expr:
        """A constant as an operand (the object itself, even a list)."""
        if value is None or type(value) in _INLINE_TYPES:
            return _const(value)
        return self.bind(value)

    def constant(self, value: Any) -> _Out:
        """A folded constant as a result: a list is copied so no caller can change it."""
        if isinstance(value, list):
            items = ast.Starred(**_AT, value=self.bind(tuple(value)), ctx=ast.Load())
            return _Out([], ast.List(**_AT, elts=[items], ctx=ast.Load()))
        return _Out([], self.value(value), atom=True)

    def atom(self, out: _Out, stmts: list[ast.stmt]) -> ast.expr:
        """Emit ``out``'s statements into ``stmts``; its value as a constant or a variable."""
        stmts.extend(out.stmts)
        if out.atom:
            return out.expr
        name = self.temp()
        stmts.append(_assign(name, out.expr))
        return _load(name)

    def sequence(self, outs: Sequence[_Out]) -> tuple[list[ast.stmt], list[ast.expr]]:
        """Operands evaluated left to right: a value is stored before later statements run."""
        stmts: list[ast.stmt] = []
        exprs: list[ast.expr] = []
        later, seen = [], False  # later[i]: an operand after i has statements
        for out in reversed(outs):
            later.append(seen)
            seen = seen or bool(out.stmts)
        for out, moved in zip(outs, reversed(later), strict=True):
            if moved:
                exprs.append(self.atom(out, stmts))
            else:
                stmts.extend(out.stmts)
                exprs.append(out.expr)
        return stmts, exprs

    def gen(self, node: Node) -> _Out:
        # The closure compiler fuses ``root.key`` and records no code for that ``root``.
        code = self.compiler.codes.get(id(node))
        if code is not None and code.const:
            return self.constant(code.value)
        if isinstance(node, Name):
            return self.name(node.name)
        if isinstance(node, GetAttr):
            return self.attribute(node)
        if isinstance(node, GetItem):
            stmts, (obj, key) = self.sequence([self.gen(node.obj), self.gen(node.index)])
            return _Out(stmts, _call(self.bind(_item), obj, key, self.fail(node)))
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, BoolOp):
            return self.bool_op(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Conditional):
            return self.conditional(node)
        return self.other(node)

    def other(self, node: Node) -> _Out:
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, ListExpr):
            stmts, items = self.sequence([self.gen(item) for item in node.items])
            return _Out(stmts, ast.List(**_AT, elts=items, ctx=ast.Load()))
        if isinstance(node, Literal):  # always folded by the closure compiler
            return self.constant(node.value)
        raise TypeError(f"not an expression node: {node!r}")

    def name(self, name: str) -> _Out:
        # A non-mapping environment fails at its first read, as with the closures.
        target = self.temp()
        read = _call(_get_method(_load("env")), _const(name))
        raised = ast.Raise(**_AT, exc=_call(self.bind(self.compiler.not_mapping), _load("env")),
                           cause=_const(None))
        stmts: list[ast.stmt] = [
            _guard([_assign(target, read)], self.bind(AttributeError), [raised])
        ]
        return _Out(stmts, _load(target), atom=True)

    def attribute(self, node: GetAttr) -> _Out:
        stmts: list[ast.stmt] = []
        obj = self.atom(self.gen(node.obj), stmts)
        is_dict = _compare(_call(self.bind(type), obj), ast.Is(), self.bind(dict))
        fast = _call(_get_method(obj), _const(node.name))
        slow = _call(self.bind(_field), obj, _const(node.name), self.fail(node))
        return _Out(stmts, ast.IfExp(**_AT, test=is_dict, body=fast, orelse=slow))

    def unary(self, node: Unary) -> _Out:
        operand = self.gen(node.operand)
        if node.op == "not":
            return _Out(operand.stmts, ast.UnaryOp(**_AT, op=ast.Not(), operand=operand.expr))
        args = (_const(node.op), operand.expr, self.fail(node))
        return _Out(operand.stmts, _call(self.bind(_signed), *args))

    def binary(self, node: Binary) -> _Out:
        stmts, (a, b) = self.sequence([self.gen(node.left), self.gen(node.right)])
        apply = self.bind(_ARITHMETIC[node.op])
        return _Out(stmts, _call(self.bind(_arithmetic), apply, a, b, self.fail(node)))

    # -- comparisons: the same choice of shapes as _Compiler._compare_one and _chain ----------

    def compare(self, node: Compare) -> _Out:
        if len(node.ops) > 1:
            return self.chain(node)
        left, right, op = node.left, node.comparators[0], node.ops[0]
        codes = self.compiler.codes
        if codes[id(left)].const and not codes[id(right)].const and op in _FLIPPED:
            left, right, op = right, left, _FLIPPED[op]
        constant = codes[id(right)]
        if constant.const and op.endswith("matches"):
            return self.matches_constant(node, left, constant.value, op == "not matches")
        if constant.const and op.endswith("in"):
            return self.in_constant(node, left, constant.value, op == "not in")
        if constant.const and op in _FLIPPED:
            path = isinstance(left, GetAttr) and isinstance(left.obj, Name)
            return self.compare_constant(node, op, self.gen(left), constant.value, path)
        stmts, (a, b) = self.sequence([self.gen(left), self.gen(right)])
        return self.test(node, op, a, b, stmts)

    def compare_constant(
        self, node: Compare, op: str, left: _Out, constant: Any, path: bool
    ) -> _Out:
        right = self.value(constant)
        if op in ("==", "!=") and not path:
            return _Out(left.stmts, _compare(left.expr, _CMP_OPS[op](), right))
        # ``root.key == c`` catches TypeError like the closure's _field_compare does.
        stmts: list[ast.stmt] = []
        value = self.atom(left, stmts)
        return self.ordered(node, op, value, right, stmts, _compare(value, _CMP_OPS[op](), right))

    def ordered(
        self, node: Node, op: str, a: ast.expr, b: ast.expr, stmts: list[ast.stmt],
        expr: ast.expr,
    ) -> _Out:
        """``target = expr``, where a TypeError means false with a null operand, else an error."""
        target = self.temp()
        recover = _call(self.bind(_unordered), a, b, _const(op), self.fail(node))
        stmts.append(_guard([_assign(target, expr)], self.bind(TypeError),
                            [_assign(target, recover)]))
        return _Out(stmts, _load(target), atom=True)

    def test(
        self, node: Compare, op: str, a: ast.expr, b: ast.expr, stmts: list[ast.stmt]
    ) -> _Out:
        """``_TESTS[op](a, b)`` with its errors at ``node``; ``a`` and ``b`` already evaluated."""
        if op in ("==", "!="):
            return _Out(stmts, _compare(a, _CMP_OPS[op](), b))
        if op in _ORDERED:
            if not isinstance(a, (ast.Name, ast.Constant)):
                a = self.atom(_Out([], a), stmts)
            if not isinstance(b, (ast.Name, ast.Constant)):
                b = self.atom(_Out([], b), stmts)
            return self.ordered(node, op, a, b, stmts, _truth(_compare(a, _CMP_OPS[op](), b)))
        checked = _call(self.bind(_checked), self.bind(_TESTS[op]), a, b, self.fail(node))
        return _Out(stmts, checked)

    def chain(self, node: Compare) -> _Out:
        stmts: list[ast.stmt] = []
        previous = self.atom(self.gen(node.left), stmts)
        ok = self.temp()
        for i, (op, item) in enumerate(zip(node.ops, node.comparators, strict=True)):
            block: list[ast.stmt] = []
            current = self.atom(self.gen(item), block)
            result = self.test(node, op, previous, current, block)  # appends to block
            block.append(_assign(ok, _truth(result.expr)))
            # Flat ``if ok:`` blocks, not nested ones: a long chain must not nest deeply.
            if i == 0:
                stmts.extend(block)
            else:
                stmts.append(ast.If(**_AT, test=_load(ok), body=block, orelse=[]))
            previous = current
        return _Out(stmts, _load(ok), atom=True)

    def matches_constant(self, node: Compare, left: Node, pattern: Any, negate: bool) -> _Out:
        if pattern is None:
            return _Out([], _const(negate), atom=True)  # the closure reads nothing either
        compiled = _regex(pattern)  # checked when the closures were compiled: cannot fail now
        stmts: list[ast.stmt] = []
        text = self.atom(self.gen(left), stmts)
        found = _compare(_call(self.bind(compiled.search), text),
                         ast.Is() if negate else ast.IsNot(), _const(None))
        slow = _call(self.bind(_search_other), self.bind(compiled), text,
                     _const(negate), self.fail(node))
        is_text = _compare(_call(self.bind(type), text), ast.Is(), self.bind(str))
        return _Out(stmts, ast.IfExp(**_AT, test=is_text, body=found, orelse=slow))

    def in_constant(self, node: Compare, left: Node, container: Any, negate: bool) -> _Out:
        items = tuple(container) if isinstance(container, list) else None
        try:
            members = frozenset(items) if items is not None else None
        except TypeError:  # a list literal holding lists: scanned, as by the closure
            members = None
        op = "not in" if negate else "in"
        operand = self.gen(left)
        if items is None or members is None:
            return self.test(node, op, operand.expr, self.value(container), operand.stmts)
        stmts: list[ast.stmt] = []
        value = self.atom(operand, stmts)
        target = self.temp()
        ast_op: ast.cmpop = ast.NotIn() if negate else ast.In()
        # An unhashable value (a list, a mapping) is compared item by item instead.
        stmts.append(_guard([_assign(target, _compare(value, ast_op, self.bind(members)))],
                            self.bind(TypeError),
                            [_assign(target, _compare(value, ast_op, self.bind(items)))]))
        return _Out(stmts, _load(target), atom=True)

    # -- logic, conditionals and calls -------------------------------------------------------

    def bool_op(self, node: BoolOp) -> _Out:
        outs = [self.gen(value) for value in node.values]
        op: ast.boolop = ast.And() if node.op == "and" else ast.Or()
        if not any(out.stmts for out in outs[1:]):
            return _Out(outs[0].stmts, ast.BoolOp(**_AT, op=op, values=[o.expr for o in outs]))
        # Runs of operands without statements stay one inline ``and``/``or``; each later run
        # is a flat ``if result:`` (or ``if not result:``) block holding the value decided so far.
        groups: list[list[_Out]] = []
        for out in outs:
            if out.stmts or not groups:
                groups.append([out])
            else:
                groups[-1].append(out)
        target, stmts = self.temp(), []
        for i, group in enumerate(groups):
            exprs = [o.expr for o in group]
            value = exprs[0] if len(exprs) == 1 else ast.BoolOp(**_AT, op=op, values=exprs)
            block = [*group[0].stmts, _assign(target, value)]
            if i == 0:
                stmts.extend(block)
                continue
            test: ast.expr = _load(target)
            if node.op == "or":
                test = ast.UnaryOp(**_AT, op=ast.Not(), operand=test)
            stmts.append(ast.If(**_AT, test=test, body=block, orelse=[]))
        return _Out(stmts, _load(target), atom=True)

    def conditional(self, node: Conditional) -> _Out:
        test_code = self.compiler.codes[id(node.test)]
        if test_code.const:
            return self.gen(node.body if test_code.value else node.orelse)
        test, body, orelse = self.gen(node.test), self.gen(node.body), self.gen(node.orelse)
        if not body.stmts and not orelse.stmts:
            choice = ast.IfExp(**_AT, test=test.expr, body=body.expr, orelse=orelse.expr)
            return _Out(test.stmts, choice)
        target = self.temp()
        branch = ast.If(**_AT, test=test.expr, body=[*body.stmts, _assign(target, body.expr)],
                        orelse=[*orelse.stmts, _assign(target, orelse.expr)])
        return _Out([*test.stmts, branch], _load(target), atom=True)

    def call(self, node: Call) -> _Out:
        function = self.compiler.functions[node.func]
        args = node.args
        first = self.compiler.codes[id(args[0])] if args else None
        if function is _fn_match and first is not None and first.const:
            compiled = None if first.value is None else _regex(first.value)
            function, args = _bound_search(compiled), args[1:]
        # Arguments are evaluated before the try, as in the closure: only the call is guarded.
        stmts: list[ast.stmt] = []
        values = [self.atom(self.gen(arg), stmts) for arg in args]
        target = self.temp()
        failed = _call(self.bind(_call_failed), _const(node.func), self.fail(node), _load("_e"))
        handlers = [
            ast.ExceptHandler(**_AT, type=self.bind(HybridAIError), name=None,
                              body=[ast.Raise(**_AT)]),
            ast.ExceptHandler(**_AT, type=self.bind(Exception), name="_e",
                              body=[ast.Raise(**_AT, exc=failed, cause=_load("_e"))]),
        ]
        body: list[ast.stmt] = [_assign(target, _call(self.bind(function), *values))]
        stmts.append(ast.Try(**_AT, body=body, handlers=handlers, orelse=[], finalbody=[]))
        return _Out(stmts, _load(target), atom=True)


# --------------------------------------------------------------------------------------------
# Compiling and checking the generated function.

_OUR_NAMES: Final = re.compile(r"env|_e|_[gt]\d+")


def _check_code(code: CodeType, namespace: Mapping[str, Any]) -> None:
    """Defence in depth, on what the bytecode can reach: its global and attribute names are our
    bound objects and ``get``, its variables ours, and it defines no nested function."""
    reached = [name for name in code.co_names if name != "get" and name not in namespace]
    local = [name for name in code.co_varnames if not _OUR_NAMES.fullmatch(name)]
    nested = [c for c in code.co_consts if isinstance(c, CodeType)]
    if reached or local or nested:
        raise AssertionError(f"generated code reaches {reached + local} ({len(nested)} nested)")


def _function(body: list[ast.stmt]) -> ast.Module:
    arguments = ast.arguments(posonlyargs=[], args=[ast.arg(**_AT, arg="env")], vararg=None,
                              kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
    definition = ast.FunctionDef(**_AT, name="generated_expression", args=arguments, body=body,
                                 decorator_list=[], returns=None)
    return ast.Module(body=[definition], type_ignores=[])


_CACHE_SIZE: Final = 1024
# Parsing already returns the same tree object for the same text and location, so that object
# and the function objects it calls determine the generated function: reuse it (explain and
# reloads compile the same conditions again and again). Entries hold the tree and the functions,
# so the ids in their keys cannot be reused by other objects while cached.
_cache: dict[tuple[int, ...], tuple[Node, tuple[object, ...], Evaluator | None]] = {}
_cache_lock: Final = threading.Lock()


def generate(tree: Node, compiler: _Compiler) -> Evaluator | None:
    """The generated evaluator of ``tree``, whose closures ``compiler`` has just compiled.

    None where the tree is over :data:`MAX_NODES` or Python cannot compile the function; the
    caller then keeps the closure evaluator, which gives the same results.
    """
    nodes = list(walk(tree))
    used = tuple(compiler.functions[n.func] for n in nodes if isinstance(n, Call))
    key = (id(tree), *map(id, used))
    hit = _cache.get(key)
    if hit is not None and hit[0] is tree:
        return hit[2]
    function = _generate(tree, compiler) if len(nodes) <= MAX_NODES else None
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)), None)  # the oldest entry
        _cache[key] = (tree, used, function)
    return function


def _generate(tree: Node, compiler: _Compiler) -> Evaluator | None:
    generator = _Generator(compiler)
    try:
        out = generator.gen(tree)
        module = _function([*out.stmts, ast.Return(**_AT, value=out.expr)])
        code = compile(module, _FILENAME, "exec", dont_inherit=True)
    except (RecursionError, MemoryError, SyntaxError, ValueError, OverflowError):
        return None
    inner = next(c for c in code.co_consts if isinstance(c, CodeType))
    _check_code(inner, generator.namespace)
    function: Evaluator = FunctionType(inner, generator.namespace, "generated_expression")
    return function
