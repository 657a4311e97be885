"""Decision tables in CSV, with the DMN hit policies, compiled to the safe expression language.

    table = load_table("pricing.csv")            # or `tables: [pricing.csv]` in a rule file
    hits = table.evaluate({"fields": {"age": 30, "country": "DE"}})
    findings = table.check()                     # gaps and overlaps, each with file:line

File format (UTF-8 CSV, comma separated, ``"`` quotes a cell as usual)::

    # hit: UNIQUE
    # id: pricing
    in: fields.age,in: fields.country,out: label,out: discount,# why
    < 18,-,minor,0,no discounts for minors
    [18..65),"'DE','FR'",standard,10,
    >= 65,-,senior,=fields.base * 0.2,

Leading lines ``# key: value`` are directives (a ``#`` line with another text is a comment):

``hit``
    ``UNIQUE`` (the default, as in DMN: at most one row may match), ``FIRST`` (the first matching
    row in file order), ``PRIORITY`` (the matching row whose outputs come first in the output
    columns' value lists), ``ANY`` (several rows may match if their outputs agree), ``COLLECT``
    (every matching row, in file order), or ``COLLECT SUM`` / ``MIN`` / ``MAX`` / ``COUNT`` (one
    result aggregating the single output column over the matching rows; ``COUNT`` counts the
    rows). The DMN letters ``U F P A C C+ C< C> C#`` work too.
``id``
    The table's name in provenance (default: the file name without ``.csv``).
``kind``
    The kind of fact each result becomes (default ``decision``).
``strength``, ``salience``, ``confidence``
    For decisions: ``veto`` / ``override`` / ``advise`` (default), the salience the ``decide``
    stage ranks by, and the confidence the decision carries (an output column named
    ``confidence`` sets it per row instead).

The header row names the columns: ``in: EXPRESSION`` is an input (any expression of the safe
language over the facts, e.g. ``fields.age`` or ``intent.label``), ``out: NAME`` an output
field, a header starting with ``#`` an annotation (the row's reason). An input or output header
may end with a value list in parentheses, ``in: fields.country ('DE', 'FR', 'US')``: for an
input it is the domain the gap check covers, for an output the order of ``PRIORITY`` (first =
highest).

Input cells (DMN-like unary tests; the row matches when every input cell does):

==================  ====================================================================
``-`` or empty      any value
``42``, ``'gold'``  equal to it (text in single or double quotes; a bare word that starts
                    with a letter, ``gold``, is text too)
``< 5``  ``>= 600``  compared with it (also ``<=``, ``>``, ``=``, ``!=``)
``[1..5]``          in the interval; ``(`` / ``)`` or ``]1..5[`` leave an end out
``'a', 'b', < 0``   any of them (a cell holding commas must be quoted in the CSV:
                    ``"'a','b'"``; spreadsheets do it when exporting)
``not('x', 'y')``   none of them
``true``, ``null``  equal to true / null
==================  ====================================================================

Output cells: a literal as above, ``-`` or empty (null), or ``=EXPRESSION`` computed from the
facts when the row is chosen. Every cell becomes a compiled expression of the safe language
(``18 <= this < 65``, with ``this`` the input's value); the row's whole condition is kept as
``row.condition``, one expression over the facts, for explanations and lints.

Evaluation reads each input once and intersects per-column sets of matching rows (hashed for
equalities, bisected for numeric comparisons and intervals), so a record costs about the same
whatever the number of rows. A table that breaks its policy at run time (UNIQUE matching two
rows, ANY rows disagreeing) raises :class:`DecisionTableError` naming the rows.
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._errors import ConfigError, ExpressionError, HybridAIError, Location, Problem
from .._expr import EvaluationError, Expression, Literal, compile_expression, walk

__all__ = [
    "DecisionTable",
    "DecisionTableError",
    "TableFinding",
    "TableHit",
    "TableRow",
]

HIT_POLICIES = ("UNIQUE", "FIRST", "PRIORITY", "ANY", "COLLECT")
AGGREGATIONS = ("SUM", "MIN", "MAX", "COUNT")
_LETTERS = {"U": "UNIQUE", "F": "FIRST", "P": "PRIORITY", "A": "ANY", "C": "COLLECT",
            "C+": "COLLECT SUM", "C<": "COLLECT MIN", "C>": "COLLECT MAX", "C#": "COLLECT COUNT"}
DIRECTIVES = ("confidence", "hit", "id", "kind", "salience", "strength")
_DIRECTIVE = re.compile(r"#\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$")
_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_STR = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_LIT = rf"{_NUM}|{_STR}"
_INTERVAL = re.compile(rf"([\[(\]])\s*({_LIT})\s*\.\.\s*({_LIT})\s*([\])\[])")
_COMPARISON = re.compile(r"(<=|>=|!=|<|>|=)\s*(.+)")
_BARE = re.compile(r"[^\W\d][^'\"\[\]()<>=!,]*")  # a word starting with a letter
_NOT = re.compile(r"not\s*\((.*)\)\s*", re.DOTALL)
_WORDS = {"true": True, "false": False, "null": None}
_HEADER = re.compile(r"(in|out)\s*:\s*(.*?)\s*(?:\(([^()]*)\))?\s*")
_CELL_HELP = ("write -, a value (42, 'gold'), a comparison (>= 600), an interval ([1..5]), "
              "a list of those (\"'a','b'\") or not(...)")
Functions = Mapping[str, Callable[..., Any]]
Env = Mapping[str, Any]


class DecisionTableError(HybridAIError):
    """A table broke its hit policy at run time: UNIQUE matched several rows, ANY rows disagree."""


class _CellError(Exception):
    def __init__(self, message: str, offset: int = 0, hint: str = _CELL_HELP) -> None:
        super().__init__(message)
        self.message, self.offset, self.hint = message, offset, hint


# ---- reading the CSV with positions -----------------------------------------------------------
@dataclass(frozen=True)
class _Cell:
    text: str
    line: int
    column: int  # 1-based character column where the cell starts
    quoted: bool


def _split_line(line: str, number: int) -> list[_Cell]:
    """One CSV record on one line, each cell with its column (quoted cells may not span lines)."""
    cells: list[_Cell] = []
    pos, size = 0, len(line)
    while True:
        start = pos
        if pos < size and line[pos] == '"':
            text, pos = _quoted(line, pos, number)
            cells.append(_Cell(text, number, start + 1, True))
        else:
            end = line.find(",", pos)
            end = size if end < 0 else end
            cells.append(_Cell(line[pos:end].strip(), number, start + 1, False))
            pos = end
        if pos >= size:
            return cells
        if line[pos] != ",":
            raise ConfigError("CSV syntax", [Problem(
                "text after a closing quote", Location(None, number, pos + 1),
                'a quoted cell ends at its closing quote; write "" for a quote inside it')])
        pos += 1


def _quoted(line: str, pos: int, number: int) -> tuple[str, int]:
    out: list[str] = []
    pos += 1
    while pos < len(line):
        char = line[pos]
        if char == '"' and line[pos + 1:pos + 2] == '"':
            out.append('"')
            pos += 2
        elif char == '"':
            return "".join(out).strip(), pos + 1
        else:
            out.append(char)
            pos += 1
    raise ConfigError("CSV syntax", [Problem(
        "a quoted cell is not closed on its line", Location(None, number, pos + 1),
        "close the quote; a cell cannot span lines")])


# ---- cells --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alternative:
    """One unary test of a cell: ``op`` is ``==`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` or ``..``."""

    op: str
    value: Any
    high: Any = None
    low_open: bool = False
    high_open: bool = False

    def render(self, subject: str) -> str:
        if self.op == "..":
            low, high = ("<" if self.low_open else "<="), ("<" if self.high_open else "<=")
            return f"{_lit(self.value)} {low} {subject} {high} {_lit(self.high)}"
        return f"{subject} {self.op} {_lit(self.value)}"

    @property
    def numeric(self) -> bool:
        return _is_number(self.value) and (self.op != ".." or _is_number(self.high))


@dataclass(frozen=True)
class CellTest:
    """An input cell: alternatives (any of them; none = any value), maybe negated."""

    text: str
    alternatives: tuple[Alternative, ...]
    negated: bool
    location: Location

    @property
    def is_any(self) -> bool:
        return not self.alternatives and not self.negated

    def render(self, subject: str) -> str:
        """The cell as a condition of the safe language on ``subject``."""
        alts = self.alternatives
        if not alts:
            body = "true"
        elif len(alts) > 1 and all(a.op == "==" for a in alts):
            body = f"{subject} in [{', '.join(_lit(a.value) for a in alts)}]"
        else:
            body = " or ".join(_paren(a.render(subject), len(alts) > 1) for a in alts)
        return f"not ({body})" if self.negated else body


def _paren(text: str, needed: bool) -> str:
    return f"({text})" if needed else text


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _lit(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return repr(value)


def _literal(text: str, offset: int) -> Any:
    text = text.strip()
    if re.fullmatch(_NUM, text):
        try:
            number = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:  # thousands of digits
            raise _CellError("this number is too long", offset) from None
        if number in (math.inf, -math.inf):
            raise _CellError("this number is too large", offset)
        return number
    if re.fullmatch(_STR, text):
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), text[1:-1])
    if text in _WORDS:
        return _WORDS[text]
    if _BARE.fullmatch(text):
        return text
    raise _CellError(f"cannot read the value {text!r}", offset,
                     "write a number, text in quotes ('gold'), true, false or null")


def _split_items(text: str) -> Iterator[tuple[str, int]]:
    """Items separated by top-level commas (not inside quotes or brackets), with offsets."""
    depth, quote, start = 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote and text[i - 1] != "\\" else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])" and depth:
            depth -= 1
        elif char == "," and depth == 0:
            yield text[start:i], start
            start = i + 1
    yield text[start:], start


def _item(text: str, offset: int) -> Alternative:
    stripped = text.strip()
    offset += len(text) - len(text.lstrip())
    if not stripped:
        raise _CellError("an empty item in a list", offset)
    if interval := _INTERVAL.fullmatch(stripped):
        opening, low, high, closing = interval.groups()
        return Alternative("..", _literal(low, offset), _literal(high, offset),
                           low_open=opening != "[", high_open=closing != "]")
    if stripped[0] in "[(]":
        raise _CellError(f"cannot read the interval {stripped!r}", offset,
                         "write [1..5] (ends included), (1..5) or ]1..5[ (left out)")
    if comparison := _COMPARISON.fullmatch(stripped):
        op, operand = comparison.groups()
        value = _literal(operand, offset + comparison.start(2))
        return Alternative("==" if op == "=" else op, value)
    return Alternative("==", _literal(stripped, offset))


def parse_cell(text: str, location: Location) -> CellTest:
    """Parse an input cell (raises ExpressionError at the cell's file:line:column)."""
    try:
        return _parse_cell(text, location)
    except _CellError as exc:
        column = (location.column or 1) + exc.offset
        raise ExpressionError(f"input cell {text!r}: {exc.message}",
                              Location(location.file, location.line, column), exc.hint) from None


def _parse_cell(text: str, location: Location) -> CellTest:
    stripped = text.strip()
    if stripped in ("", "-"):
        return CellTest(text, (), False, location)
    negated = _NOT.fullmatch(stripped)
    body, offset = (negated.group(1), negated.start(1)) if negated else (stripped, 0)
    alternatives = tuple(_item(item, offset + at) for item, at in _split_items(body))
    return CellTest(text, alternatives, negated is not None, location)


# ---- the table ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputColumn:
    """``in: EXPRESSION (domain...)``."""

    expression: Expression
    domain: tuple[Any, ...] | None
    location: Location


@dataclass(frozen=True)
class OutputColumn:
    """``out: NAME (values in priority order...)``."""

    name: str
    values: tuple[Any, ...] | None
    location: Location


@dataclass(frozen=True)
class TableRow:
    """A row: its number (1 = first data row), line, input cells, outputs and whole condition."""

    number: int
    line: int
    cells: tuple[CellTest, ...]
    tests: tuple[Expression, ...]
    outputs: Mapping[str, Callable[[Env], Any]]
    output_text: tuple[str, ...]
    annotation: str
    condition: Expression
    location: Location

    def __repr__(self) -> str:
        return f"TableRow({self.number}, line {self.line}, {self.condition.source!r})"

    def values(self, env: Env) -> dict[str, Any]:
        """The row's outputs, computed over ``env``."""
        return {name: value(env) for name, value in self.outputs.items()}


@dataclass(frozen=True)
class TableHit:
    """The result of one evaluation: the row(s) chosen and the output values."""

    table: DecisionTable = field(repr=False)
    rows: tuple[TableRow, ...]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class TableFinding:
    """A static-check finding: ``code`` is ``gap`` or ``overlap``; every row involved located."""

    code: str
    severity: str  # error | warning
    message: str
    locations: tuple[Location, ...]
    hint: str = ""

    def __str__(self) -> str:
        where = ", ".join(str(loc) for loc in self.locations)
        return f"{where}: {self.severity}: {self.message}" + (f" ({self.hint})" if self.hint
                                                                  else "")

    def as_problem(self) -> Problem:
        """The finding as a :class:`Problem` at its first location."""
        return Problem(f"{self.code}: {self.message}", self.locations[0], self.hint or None)


@dataclass
class DecisionTable:
    """A compiled table; ``evaluate(env)`` applies the hit policy, ``check()`` finds gaps."""

    id: str
    path: str
    version: str
    hit: str
    aggregation: str | None
    kind: str
    strength: str
    salience: int
    confidence: float | None
    inputs: tuple[InputColumn, ...]
    outputs: tuple[OutputColumn, ...]
    rows: tuple[TableRow, ...]
    location: Location
    _columns: tuple[_Column, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        self._columns = tuple(_Column(col.expression, [r.cells[i] for r in self.rows],
                                      [r.tests[i] for r in self.rows])
                              for i, col in enumerate(self.inputs))
        self._all = (1 << len(self.rows)) - 1
        # A row whose outputs are all literals always gives the same (immutable) hit: made once.
        self._hits = [TableHit(self, (row,), MappingProxyType(row.values({})))
                      if all(hasattr(v, "value") for v in row.outputs.values()) else None
                      for row in self.rows]

    @property
    def names(self) -> frozenset[str]:
        """The top-level names the inputs and output expressions read."""
        return frozenset().union(*(c.expression.names for c in self.inputs),
                                 *(r.condition.names for r in self.rows[:1]))

    def match_mask(self, env: Env) -> int:
        """Bit i set = row i matches (every input read once)."""
        mask = self._all
        for column in self._columns:
            mask &= column.match(column.read(env))
            if not mask:
                return 0
        return mask

    def matching(self, env: Env) -> list[TableRow]:
        """Every row whose inputs all match, in file order (no hit policy applied)."""
        return [self.rows[i] for i in _bits(self.match_mask(env))]

    def evaluate(self, env: Env) -> list[TableHit]:
        """Apply the hit policy: no hit, one hit, or (COLLECT) one per matching row."""
        mask = self.match_mask(env)
        if not mask:
            return []
        if self.aggregation is None and (self.hit in ("FIRST", "COLLECT")
                                         or not mask & (mask - 1)):
            if self.hit == "FIRST":
                mask &= -mask
            hits = []
            while mask:
                low = mask & -mask
                mask ^= low
                index = low.bit_length() - 1
                hit = self._hits[index]
                if hit is None:
                    row = self.rows[index]
                    hit = TableHit(self, (row,), row.values(env))
                hits.append(hit)
            return hits
        rows = [self.rows[i] for i in _bits(mask)]
        if self.hit == "FIRST":
            rows = rows[:1]
        return _POLICIES[self.hit](self, rows, env)

    def check(self) -> list[TableFinding]:
        """Static gaps (UNIQUE/ANY/FIRST/PRIORITY) and overlaps (UNIQUE, and ANY when the
        overlapping rows' outputs differ)."""
        from ._tablecheck import check_table

        return check_table(self)

    def _aggregate(self, rows: list[TableRow], env: Env) -> TableHit:
        name = self.outputs[0].name
        if self.aggregation == "COUNT":
            return TableHit(self, tuple(rows), {name: len(rows)})
        values = [v for r in rows if (v := r.outputs[name](env)) is not None]
        fn = _AGGREGATE[str(self.aggregation)]
        try:
            total = fn(values) if values else None
        except TypeError:
            raise DecisionTableError(
                f"{self.location}: table {self.id!r} cannot {self.aggregation} the values "
                f"{values!r} of {name!r}; aggregated outputs must be numbers") from None
        return TableHit(self, tuple(rows), {name: total})


_AGGREGATE: dict[str, Callable[[list[Any]], Any]] = {"SUM": sum, "MIN": min, "MAX": max}


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _lines(rows: Sequence[TableRow]) -> str:
    return ", ".join(f"row {r.number} (line {r.line})" for r in rows)


def _unique(table: DecisionTable, rows: list[TableRow], env: Env) -> list[TableHit]:
    raise DecisionTableError(
        f"{table.location}: UNIQUE table {table.id!r} matched {len(rows)} rows: {_lines(rows)}; "
        "make the rows exclusive (`hybrid-ai rules check` lists overlaps) or use hit FIRST, "
        "PRIORITY, ANY or COLLECT")


def _any(table: DecisionTable, rows: list[TableRow], env: Env) -> list[TableHit]:
    values = [r.values(env) for r in rows]
    if any(v != values[0] for v in values[1:]):
        raise DecisionTableError(
            f"{table.location}: ANY table {table.id!r} matched rows with different outputs: "
            f"{_lines(rows)}; make their outputs equal or the rows exclusive")
    return [TableHit(table, tuple(rows), values[0])]


def _priority(table: DecisionTable, rows: list[TableRow], env: Env) -> list[TableHit]:
    scored = [(table_priority(table, values), i, values)
              for i, values in enumerate(r.values(env) for r in rows)]
    _, best, values = min(scored, key=lambda s: (s[0], s[1]))
    return [TableHit(table, (rows[best],), values)]


def table_priority(table: DecisionTable, values: Mapping[str, Any]) -> tuple[int, ...]:
    """The PRIORITY rank of output values (lower first; unlisted values last)."""
    ranks = []
    for column in table.outputs:
        if column.values is not None:
            value = values.get(column.name)
            ranks.append(column.values.index(value) if value in column.values
                         else len(column.values))
    return tuple(ranks)


def _collect(table: DecisionTable, rows: list[TableRow], env: Env) -> list[TableHit]:
    if table.aggregation is not None:
        return [table._aggregate(rows, env)]
    return [TableHit(table, (r,), r.values(env)) for r in rows]


_POLICIES: dict[str, Callable[[DecisionTable, list[TableRow], Env], list[TableHit]]] = {
    "FIRST": _collect, "UNIQUE": _unique, "ANY": _any, "PRIORITY": _priority, "COLLECT": _collect}


class _Column:
    """One input's rows, indexed: '-' rows always match, equality rows are hashed, numeric
    comparison rows are bisected over the cells' bounds, anything else is tested row by row."""

    def __init__(self, read: Expression, cells: list[CellTest], tests: list[Expression]) -> None:
        self.read = read.evaluator
        self.any = 0
        self.equal: dict[Any, int] = {}
        self.equal_rows: list[tuple[int, Expression]] = []
        self.slow: list[tuple[int, Expression]] = []
        numeric: list[tuple[int, Expression]] = []
        for i, (cell, test) in enumerate(zip(cells, tests, strict=True)):
            self._place(1 << i, cell, test, numeric)
        self.bounds, self.segments = _segments(numeric)
        self.numeric = numeric

    def _place(self, bit: int, cell: CellTest, test: Expression,
               numeric: list[tuple[int, Expression]]) -> None:
        if cell.is_any:
            self.any |= bit
        elif not cell.negated and all(a.op == "==" for a in cell.alternatives) \
                and _hashable(cell.alternatives):
            for alt in cell.alternatives:
                self.equal[alt.value] = self.equal.get(alt.value, 0) | bit
            self.equal_rows.append((bit, test))
        elif all(a.numeric for a in cell.alternatives):
            numeric.append((bit, test))
        else:
            self.slow.append((bit, test))

    def match(self, value: Any) -> int:
        mask = self.any
        if self.equal:
            try:
                mask |= self.equal.get(value, 0)
            except TypeError:  # an unhashable value: ask each equality row
                mask |= _tested(self.equal_rows, value)
        if self.numeric:
            if (type(value) is int or type(value) is float) and value == value:
                i = bisect.bisect_left(self.bounds, value)
                at = i < len(self.bounds) and self.bounds[i] == value
                mask |= self.segments[2 * i + 1 if at else 2 * i]
            else:
                mask |= _tested(self.numeric, value)
        if self.slow:
            mask |= _tested(self.slow, value)
        return mask


def _hashable(alternatives: tuple[Alternative, ...]) -> bool:
    try:
        hash(tuple(a.value for a in alternatives))
    except TypeError:
        return False
    return True


def _tested(rows: list[tuple[int, Expression]], value: Any) -> int:
    env = {"this": value}
    mask = 0
    for bit, test in rows:
        if test(env):
            mask |= bit
    return mask


def numeric_points(bounds: Sequence[float]) -> list[float]:
    """One representative per elementary segment: below, each bound, between, above."""
    if not bounds:
        return [0]
    points: list[float] = [bounds[0] - 1]
    for low, high in zip(bounds, [*bounds[1:], None], strict=True):
        points.append(low)
        points.append(low + 1 if high is None else (low + high) / 2)
    return points


def _segments(rows: list[tuple[int, Expression]]) -> tuple[list[float], list[int]]:
    bounds: set[float] = set()
    for _, test in rows:
        bounds.update(_numbers(test))
    ordered = sorted(bounds)
    masks = [_tested(rows, point) for point in numeric_points(ordered)]
    return ordered, masks


def _numbers(test: Expression) -> list[Any]:
    return [n.value for n in walk(test.ast) if isinstance(n, Literal) and _is_number(n.value)]


# ---- helpers shared with loading and checking ---------------------------------------------------
def table_version(text: str) -> str:
    """The content hash that versions a table (the same scheme as rule files)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``did you mean 'x'? use one of ...`` for error hints."""
    close = difflib.get_close_matches(word, options, n=1)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return f"{guess}use one of {', '.join(options)}"


def compile_cell_test(cell: CellTest, functions: Functions) -> Expression:
    """The cell as a compiled expression over ``this``."""
    return compile_expression(cell.render("this"), functions=functions, names={"this"},
                              location=cell.location)


def safe_test(test: Expression, value: Any) -> bool:
    """A cell test that treats a type mismatch as no match (for the static check only)."""
    try:
        return bool(test({"this": value}))
    except EvaluationError:
        return False
