"""Reading a CSV decision table into a :class:`DecisionTable` (the format is in ``_tables``).

    table = load_table("pricing.csv", hit="FIRST")   # options override the file's directives

Every problem in the file is collected and raised at once as a :class:`ConfigError`, each at
file:line:column with the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError, ExpressionError, Location, Problem
from .._expr import Expression, compile_expression
from ._tables import (
    _DIRECTIVE,
    _HEADER,
    _LETTERS,
    AGGREGATIONS,
    DIRECTIVES,
    HIT_POLICIES,
    CellTest,
    DecisionTable,
    InputColumn,
    OutputColumn,
    TableRow,
    _Cell,
    _CellError,
    _literal,
    _split_items,
    _split_line,
    compile_cell_test,
    did_you_mean,
    parse_cell,
    table_version,
)

__all__ = ["load_table", "parse_table"]

Functions = Mapping[str, Callable[..., Any]]
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # expressions cannot read _names
_STRENGTHS = ("veto", "override", "advise")


class _Stop(Exception):
    """The rest of the file cannot be read (no header, say)."""


@dataclass
class _Reader:
    path: str
    text: str
    options: dict[str, Any]
    functions: Functions
    problems: list[Problem] = field(default_factory=list)
    directives: dict[str, tuple[str, Location]] = field(default_factory=dict)

    def at(self, line: int, column: int | None = None) -> Location:
        return Location(self.path, line, column)

    def problem(self, message: str, where: Location, hint: str | None = None) -> None:
        self.problems.append(Problem(message, where, hint))


def load_table(path: str | Path, functions: Functions | None = None,
               **options: Any) -> DecisionTable:
    """Read and compile a CSV decision table; ``options`` (hit, id, kind, strength, salience,
    confidence) override the file's directives. Every problem is reported at once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read decision table {path}: {exc.strerror}") from None
    return parse_table(text, str(path), functions, **options)


def parse_table(text: str, path: str = "<table>", functions: Functions | None = None,
                **options: Any) -> DecisionTable:
    """Compile a decision table from its CSV text."""
    unknown = sorted(set(options) - set(DIRECTIVES))
    if unknown:
        raise ConfigError(f"unknown decision table option(s) {unknown}",
                          [Problem(f"option {unknown[0]!r}", Location(path),
                                   did_you_mean(unknown[0], DIRECTIVES))])
    reader = _Reader(path, text, {k: v for k, v in options.items() if v is not None},
                     functions or {})
    table = None
    with contextlib.suppress(_Stop):
        table = _build(reader)
    if reader.problems or table is None:
        raise ConfigError(f"{path} has {len(reader.problems)} problem(s)", reader.problems)
    return table


def _records(reader: _Reader) -> list[list[_Cell]]:
    """Directive lines are read into ``reader.directives``; the rest split into cells."""
    records: list[list[_Cell]] = []
    for number, line in enumerate(reader.text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            if not records:
                _directive(reader, line, number)
            continue
        try:
            cells = _split_line(line, number)
        except ConfigError as exc:
            reader.problems.extend(Problem(p.message, reader.at(number, p.location.column),
                                           p.hint) for p in exc.problems)
            continue
        records.append([_Cell(c.text, c.line, c.column, c.quoted) for c in cells])
    return records


def _directive(reader: _Reader, line: str, number: int) -> None:
    match = _DIRECTIVE.match(line.strip())
    if match is None:
        return  # a comment
    key, value = match.group(1).lower(), match.group(2)
    if key in reader.directives and key in DIRECTIVES:
        reader.problem(f"directive {key!r} is given twice (first at "
                       f"{reader.directives[key][1]})", reader.at(number, 1),
                       "keep one of them")
    elif key in DIRECTIVES:
        reader.directives[key] = (value, reader.at(number, line.index(value) + 1 if value else 1))
    elif difflib.get_close_matches(key, DIRECTIVES, n=1, cutoff=0.75):
        reader.problem(f"unknown directive {key!r}", reader.at(number, 1),
                       did_you_mean(key, DIRECTIVES))


def _build(reader: _Reader) -> DecisionTable | None:
    records = _records(reader)
    if not records:
        reader.problem("the table has no header row", reader.at(1),
                       "write a header like: in: fields.age,out: label")
        raise _Stop
    header, body = records[0], records[1:]
    inputs, outputs, notes = _header(reader, header)
    if not inputs or not outputs:
        reader.problem("the header needs at least one `in: EXPRESSION` and one `out: NAME` "
                       "column", reader.at(header[0].line, 1))
        raise _Stop
    settings = _settings(reader, header[0].line)
    rows = [row for i, record in enumerate(body, start=1)
            if (row := _row(reader, i, record, header, inputs, outputs, notes)) is not None]
    if not body:
        reader.problem("the table has no rows", reader.at(header[0].line),
                       "add a row under the header")
    _policy_checks(reader, settings, outputs, rows, body)
    if reader.problems:
        return None
    return DecisionTable(
        id=settings["id"], path=reader.path, version=table_version(reader.text),
        hit=settings["hit"], aggregation=settings["aggregation"], kind=settings["kind"],
        strength=settings["strength"], salience=settings["salience"],
        confidence=settings["confidence"], inputs=tuple(inputs.values()),
        outputs=tuple(outputs.values()), rows=tuple(rows),
        location=reader.at(header[0].line, 1))


# ---- header -------------------------------------------------------------------------------------
def _header(reader: _Reader, cells: list[_Cell]) -> tuple[
        dict[int, InputColumn], dict[int, OutputColumn], list[int]]:
    inputs: dict[int, InputColumn] = {}
    outputs: dict[int, OutputColumn] = {}
    notes: list[int] = []
    for index, cell in enumerate(cells):
        where = _cell_at(reader, cell)
        if cell.text.startswith("#"):
            notes.append(index)
            continue
        match = _HEADER.fullmatch(cell.text)
        if match is None:
            reader.problem(f"header cell {cell.text!r} is not a column", where,
                           "write `in: EXPRESSION`, `out: NAME` or `# note`")
            continue
        try:
            _column(reader, index, cell, match, inputs, outputs)
        except ExpressionError as exc:
            reader.problem(exc.message, exc.location, exc.hint)
    names = [c.name for c in outputs.values()]
    for name in {n for n in names if names.count(n) > 1}:
        reader.problem(f"output column {name!r} appears twice", reader.at(cells[0].line, 1))
    return inputs, outputs, notes


def _column(reader: _Reader, index: int, cell: _Cell, match: re.Match[str],
            inputs: dict[int, InputColumn], outputs: dict[int, OutputColumn]) -> None:
    side, body, values = match.group(1), match.group(2), match.group(3)
    where = _cell_at(reader, cell, match.start(2))
    listed = _value_list(values, _cell_at(reader, cell, match.start(3))) if values else None
    if side == "in":
        expr = compile_expression(body, functions=reader.functions, location=where)
        inputs[index] = InputColumn(expr, listed, where)
    elif not _NAME.fullmatch(body):
        raise ExpressionError(f"output name {body!r} is not a name", where,
                              "start with a letter, then letters, digits and _, e.g. out: discount")
    else:
        outputs[index] = OutputColumn(body, listed, where)


def _value_list(text: str, where: Location) -> tuple[Any, ...]:
    try:
        return tuple(_literal(item, at) for item, at in _split_items(text))
    except _CellError as exc:
        raise ExpressionError(f"value list ({text}): {exc.message}", where, exc.hint) from None


def _cell_at(reader: _Reader, cell: _Cell, offset: int = 0) -> Location:
    return reader.at(cell.line, cell.column + offset + (1 if cell.quoted else 0))


# ---- settings -----------------------------------------------------------------------------------
def _settings(reader: _Reader, header_line: int) -> dict[str, Any]:
    raw = {k: v for k, (v, _) in reader.directives.items()}
    raw.update({k: str(v) for k, v in reader.options.items()})
    where = {k: loc for k, (_, loc) in reader.directives.items()}
    default = reader.at(header_line, 1)
    hit, aggregation = _hit(reader, raw.get("hit", "UNIQUE"), where.get("hit", default))
    strength = raw.get("strength", "advise").strip().lower()
    if strength not in _STRENGTHS:
        reader.problem(f"unknown strength {strength!r}", where.get("strength", default),
                       did_you_mean(strength, _STRENGTHS))
    return {"hit": hit, "aggregation": aggregation, "strength": strength,
            "id": raw.get("id") or Path(reader.path).stem,
            "kind": raw.get("kind", "decision").strip() or "decision",
            "salience": _number(reader, raw, "salience", int, where.get("salience", default)),
            "confidence": _confidence(reader, raw, where.get("confidence", default))}


def _hit(reader: _Reader, text: str, where: Location) -> tuple[str, str | None]:
    words = _LETTERS.get(text.strip().upper(), text.strip().upper()).split()
    policy, aggregation = (words[0] if words else ""), (words[1] if len(words) > 1 else None)
    options = [*HIT_POLICIES, *(f"COLLECT {a}" for a in AGGREGATIONS)]
    if policy not in HIT_POLICIES or len(words) > 2 or (
            aggregation is not None and (policy != "COLLECT" or aggregation not in AGGREGATIONS)):
        reader.problem(f"unknown hit policy {text!r}", where, did_you_mean(text.upper(), options))
        return "UNIQUE", None
    return policy, aggregation


def _number(reader: _Reader, raw: Mapping[str, str], key: str, kind: type[int],
            where: Location) -> int:
    try:
        return kind(raw.get(key, "0"))
    except ValueError:
        reader.problem(f"{key} must be a whole number, not {raw[key]!r}", where)
        return 0


def _confidence(reader: _Reader, raw: Mapping[str, str], where: Location) -> float | None:
    if "confidence" not in raw:
        return None
    try:
        value = float(raw["confidence"])
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        reader.problem(f"confidence must be a number from 0 to 1, not {raw['confidence']!r}",
                       where)
        return None
    return value


# ---- rows ---------------------------------------------------------------------------------------
def _row(reader: _Reader, number: int, cells: list[_Cell], header: list[_Cell],
         inputs: dict[int, InputColumn], outputs: dict[int, OutputColumn],
         notes: list[int]) -> TableRow | None:
    line = cells[0].line
    if len(cells) != len(header):
        reader.problem(f"row {number} has {len(cells)} cells, the header {len(header)}",
                       reader.at(line, 1),
                       "a cell holding commas must be quoted as a whole: \"'a','b'\"")
        return None
    if not any(c.text.strip() for c in cells):  # a spreadsheet's trailing ",,," line
        reader.problem(f"row {number} is empty", reader.at(line, 1),
                       "delete it: a row without cells would match every case and output "
                       "nothing; write - in a cell that matches anything")
        return None
    before = len(reader.problems)
    tests = {i: _input_cell(reader, cells[i]) for i in inputs}
    values = {outputs[i].name: _output_cell(reader, cells[i]) for i in outputs}
    if len(reader.problems) > before:
        return None
    cell_tests = tuple(t for t, _ in tests.values() if t is not None)
    compiled = tuple(e for _, e in tests.values() if e is not None)
    condition = _condition(reader, inputs, cell_tests, reader.at(line, 1))
    if condition is None:
        return None
    return TableRow(number, line, cell_tests, compiled, values,
                    tuple(cells[i].text for i in outputs),
                    " ".join(cells[i].text for i in notes if cells[i].text), condition,
                    reader.at(line, 1))


def _input_cell(reader: _Reader, cell: _Cell) -> tuple[CellTest | None, Expression | None]:
    try:
        test = parse_cell(cell.text, _cell_at(reader, cell))
        return test, compile_cell_test(test, reader.functions)
    except ExpressionError as exc:
        reader.problem(exc.message, exc.location, exc.hint)
        return None, None


def _output_cell(reader: _Reader, cell: _Cell) -> Callable[[Mapping[str, Any]], Any]:
    where = _cell_at(reader, cell)
    try:
        if cell.text.startswith("="):
            shifted = Location(where.file, where.line, (where.column or 1) + 1)
            return compile_expression(cell.text[1:], functions=reader.functions,
                                      location=shifted).evaluator
        value = None if cell.text in ("", "-") else _literal(cell.text, 0)
    except ExpressionError as exc:
        reader.problem(exc.message, exc.location, exc.hint)
        value = None
    except _CellError as exc:
        reader.problem(f"output cell {cell.text!r}: {exc.message}", where,
                       f"{exc.hint}, or =EXPRESSION")
        value = None
    return _constant(value)


def _constant(value: Any) -> Callable[[Mapping[str, Any]], Any]:
    def constant(env: Mapping[str, Any]) -> Any:
        return value

    constant.value = value  # type: ignore[attr-defined]  # read by the PRIORITY check
    return constant


def _condition(reader: _Reader, inputs: dict[int, InputColumn], cells: tuple[CellTest, ...],
               where: Location) -> Expression | None:
    parts = [cell.render(_subject(column.expression.source))
             for column, cell in zip(inputs.values(), cells, strict=True) if not cell.is_any]
    text = " and ".join(f"({p})" if " or " in p else p for p in parts) or "true"
    try:
        return compile_expression(text, functions=reader.functions, location=where)
    except ExpressionError as exc:
        reader.problem(f"row condition {text!r}: {exc.message}", where, exc.hint)
        return None


def _subject(source: str) -> str:
    return source.strip() if re.fullmatch(r"\s*[A-Za-z_][\w.]*\s*", source) else f"({source})"


# ---- policy checks ------------------------------------------------------------------------------
def _policy_checks(reader: _Reader, settings: Mapping[str, Any],
                   outputs: dict[int, OutputColumn], rows: list[TableRow],
                   body: list[list[_Cell]]) -> None:
    hit, where = settings["hit"], reader.directives.get("hit", ("", Location(reader.path)))[1]
    if settings["aggregation"] is not None and len(outputs) != 1:
        reader.problem(f"COLLECT {settings['aggregation']} needs exactly one output column, "
                       f"not {len(outputs)}", where, "split the table, or use plain COLLECT")
    if hit != "PRIORITY":
        return
    ranked = [c for c in outputs.values() if c.values is not None]
    if not ranked:
        reader.problem("a PRIORITY table needs an output column with its values in priority "
                       "order", where, "write e.g. out: risk ('high', 'medium', 'low')")
    for row in rows:
        for column in ranked:
            value = getattr(row.outputs[column.name], "value", None)
            assert column.values is not None
            if value is not None and value not in column.values:
                reader.problem(f"row {row.number}: {column.name} {value!r} is not in the "
                               f"priority list {list(column.values)}", row.location,
                               "add it to the list in the header")
