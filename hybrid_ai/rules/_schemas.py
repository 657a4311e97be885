"""Typed fact schemas declared in a rule file, checked when the file is loaded.

    schemas:
      order: {id: int, amount: number, tier: text, placed: date}
      customer: {id: int, vip: bool}

Types: ``text`` (or ``str``), ``int``, ``float``, ``number`` (int or float), ``bool``, ``date``,
``datetime``, ``list``, ``mapping`` (or ``dict``), ``any``. For a declared kind, every field a
rule reads or writes must be declared (``order.amout`` is an error with the nearest name), and a
literal compared with a field, tested in a pattern or written into it must have the field's type
(``order.amount > 'x'`` is an error). Kinds without a schema are not checked. Each problem is
reported at file:line:column.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .._errors import Location, Problem
from .._expr import Compare, Expression, GetAttr, ListExpr, Literal, Name, Node, walk
from .._yaml import LineDict

__all__ = ["TYPES", "Schemas", "check_chaining", "check_expression", "check_fields",
           "parse_schemas"]

Schemas = dict[str, dict[str, str]]
_ALIASES = {"str": "text", "dict": "mapping", "string": "text", "integer": "int"}
TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,), "int": (int,), "float": (float, int), "number": (int, float),
    "bool": (bool,), "date": (_dt.date, str), "datetime": (_dt.datetime, str),
    "list": (list, tuple), "mapping": (Mapping,), "any": (object,)}
_LITERAL_TEST = re.compile(r"\s*(?:==|!=|<=|>=|<|>)\s*(-?\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\")\s*$")


def parse_schemas(raw: Any, file: str, problems: list[Problem]) -> Schemas:
    """Read the ``schemas`` section: kind -> field -> type name."""
    if raw is None:
        return {}
    where = getattr(raw, "location", Location(file))
    if not isinstance(raw, Mapping):
        problems.append(Problem("`schemas` must map kinds to {field: type}", where))
        return {}
    out: Schemas = {}
    for kind, fields in raw.items():
        at = raw.location_of(kind) if isinstance(raw, LineDict) else where
        if not isinstance(fields, Mapping):
            problems.append(Problem(f"schema {kind!r} must map fields to types", at))
            continue
        out[str(kind)] = {str(f): _type(t, _at(fields, f, at), problems)
                          for f, t in fields.items()}
    return out


def _type(name: Any, where: Location, problems: list[Problem]) -> str:
    text = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if text not in TYPES:
        close = difflib.get_close_matches(text, list(TYPES), n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        problems.append(Problem(f"unknown type {name!r}", where,
                                f"{guess}use one of {', '.join(TYPES)}"))
        return "any"
    return text


def _at(node: Any, key: Any, default: Location) -> Location:
    return node.value_location_of(key) if isinstance(node, LineDict) else default


def _fits(value: Any, type_name: str) -> bool:
    if value is None or type_name == "any":
        return True
    if isinstance(value, bool) and type_name in ("int", "float", "number"):
        return False
    return isinstance(value, TYPES[type_name])


def check_fields(schemas: Schemas, kind: str, values: Mapping[str, Any], where: Location,
                 problems: list[Problem], what: str = "writes") -> None:
    """Fields written into (or matched on) a fact of ``kind``: declared, literals of their type."""
    schema = schemas.get(kind)
    if schema is None:
        return
    for name, value in values.items():
        at = _at(values, name, where)
        if name not in schema:
            key_at = values.location_of(name) if isinstance(values, LineDict) else at
            problems.append(_unknown(kind, str(name), schema, key_at))
        elif not _is_variable_or_expr(value):
            literal = _test_literal(value)
            if not _fits(literal, schema[name]):
                problems.append(Problem(
                    f"{kind}.{name} is {schema[name]}, but the rule {what} {literal!r}", at,
                    f"write a {schema[name]} value or change the schema"))


def _is_variable_or_expr(value: Any) -> bool:
    return isinstance(value, str) and (value.strip().startswith(("?", "=", "in ", "not ",
                                                                  "matches ")))


def _test_literal(value: Any) -> Any:
    """The literal of a pattern test ``"> 500"`` (500), else the value itself."""
    if isinstance(value, str) and (m := _LITERAL_TEST.match(value)):
        text = m.group(1)
        return text[1:-1] if text[0] in "'\"" else float(text) if "." in text else int(text)
    if isinstance(value, str) and re.match(r"\s*(==|!=|<=|>=|<|>)", value):
        return None  # compares with a variable or an expression: not a literal
    return value


def _unknown(kind: str, name: str, schema: Mapping[str, str], where: Location) -> Problem:
    close = difflib.get_close_matches(name, list(schema), n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return Problem(f"{kind} has no field {name!r} in its schema", where,
                   f"{guess}fields: {', '.join(schema)}")


def check_expression(schemas: Schemas, expr: Expression, problems: list[Problem]) -> None:
    """``kind.field`` reads in an expression: the field declared, compared literals typed."""
    if not schemas:
        return
    for node in walk(expr.ast):
        field = _kind_field(node, schemas)
        if field is not None and field[1] not in schemas[field[0]]:
            problems.append(_unknown(field[0], field[1], schemas[field[0]], node.location))
        if isinstance(node, Compare):
            _check_compare(node, schemas, problems)


def _kind_field(node: Node, schemas: Schemas) -> tuple[str, str] | None:
    if isinstance(node, GetAttr) and isinstance(node.obj, Name) and node.obj.name in schemas:
        return node.obj.name, node.name
    return None


def _check_compare(node: Compare, schemas: Schemas, problems: list[Problem]) -> None:
    operands = [node.left, *node.comparators]
    for op, (a, b) in zip(node.ops, itertools.pairwise(operands), strict=False):
        for side, other in ((a, b), (b, a)):
            field = _kind_field(side, schemas)
            if field is None or field[1] not in schemas[field[0]]:
                continue
            declared = schemas[field[0]][field[1]]
            for value in _literals(other, op):
                if not _fits(value, "text" if op.endswith("matches") else declared):
                    problems.append(Problem(
                        f"{field[0]}.{field[1]} is {declared}, but it is compared with "
                        f"{value!r}", other.location, f"compare it with a {declared} value"))


def _literals(node: Node, op: str) -> Iterator[Any]:
    if isinstance(node, Literal) and not op.endswith("in"):
        yield node.value
    elif isinstance(node, ListExpr) and op.endswith("in"):
        yield from (i.value for i in node.items if isinstance(i, Literal))


def check_chaining(schemas: Schemas, raws: list[Any], problems: list[Problem]) -> None:
    """Patterns and inserted facts of chaining rules against the schemas."""
    if not schemas:
        return
    for raw in raws:
        if not isinstance(raw, Mapping):
            continue
        where = getattr(raw, "location", Location())
        for element in raw.get("when") or ():
            _check_element(schemas, element, where, problems)
        for action in raw.get("then") or ():
            _check_action(schemas, action, where, problems)


def _check_element(schemas: Schemas, element: Any, where: Location,
                   problems: list[Problem]) -> None:
    if not isinstance(element, Mapping):
        return
    for head, body in element.items():
        at = getattr(element, "location", where)
        if head in ("not", "exists", "forall"):
            for inner in (body if isinstance(body, list) else [body]):
                _check_element(schemas, inner, at, problems)
        elif head not in ("as", "test") and isinstance(body, Mapping):
            check_fields(schemas, str(head), body, at, problems, what="tests it against")


def _check_action(schemas: Schemas, action: Any, where: Location,
                  problems: list[Problem]) -> None:
    if not isinstance(action, Mapping):
        return
    for head in ("insert", "logical"):
        body = action.get(head)
        if isinstance(body, Mapping):
            for kind, fields in body.items():
                if isinstance(fields, Mapping):
                    check_fields(schemas, str(kind), fields,
                                 getattr(action, "location", where), problems)
