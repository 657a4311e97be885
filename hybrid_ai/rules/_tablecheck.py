"""The static check of a decision table: gaps (inputs no row matches) and overlaps.

    findings = check_table(load_table("pricing.csv"))   # [TableFinding(code="gap", ...), ...]

Each input's values are cut into the pieces its cells can tell apart: for numbers, each bound
and the open intervals between and around them; for other values, the declared domain
(``in: x ('a', 'b')``) or else every value the cells name plus "any other value". The check
walks the product of those pieces with the set of rows still matching, so a piece no row
covers is a *gap* (UNIQUE, ANY, FIRST, PRIORITY; a warning) and a piece two rows cover is an
*overlap* (UNIQUE; ANY only when the rows' outputs differ; an error). Text ranges and
expressions in cells are judged at the named values only, so the check may miss a gap there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._tables import DecisionTable, TableFinding, _lit, numeric_points, safe_test

__all__ = ["check_table"]

_MAX_NODES = 200_000
_MAX_FINDINGS = 50


class _Other:
    def __repr__(self) -> str:
        return "any other value"


_OTHER = _Other()
Piece = tuple[str, int]  # (description, rows that accept it)


def check_table(table: DecisionTable) -> list[TableFinding]:
    """Gaps and overlaps of ``table`` (none for COLLECT tables), each with file:line."""
    if table.hit == "COLLECT" or not table.rows:
        return []
    pieces = [_pieces(table, i) for i in range(len(table.inputs))]
    walk = _Walk(table, pieces, _rest_any(table))
    walk.visit(0, (1 << len(table.rows)) - 1, ())
    if walk.nodes > _MAX_NODES:
        walk.findings.append(TableFinding(
            "incomplete", "warning", f"stopped after {_MAX_NODES} input combinations; "
            "gaps and overlaps past them are not reported", (table.location,),
            "declare smaller input domains, or split the table"))
    return walk.findings


def _rest_any(table: DecisionTable) -> list[int]:
    """rest[c] = rows whose cells are '-' in column c and every column after it."""
    rest = [0] * (len(table.inputs) + 1)
    rest[-1] = (1 << len(table.rows)) - 1
    for c in range(len(table.inputs) - 1, -1, -1):
        anys = sum(1 << i for i, r in enumerate(table.rows) if r.cells[c].is_any)
        rest[c] = rest[c + 1] & anys
    return rest


def _pieces(table: DecisionTable, column: int) -> list[Piece]:
    cells = [r.cells[column] for r in table.rows]
    if all(c.is_any for c in cells):
        return [("", (1 << len(cells)) - 1)]
    domain = table.inputs[column].domain
    alternatives = [a for c in cells for a in c.alternatives]
    if domain is not None:
        points: list[tuple[str, Any]] = [(f"= {_lit(v)}", v) for v in domain]
    elif alternatives and all(a.numeric for a in alternatives):
        points = _numeric(sorted({v for a in alternatives for v in _bounds(a)}))
    else:
        named = dict.fromkeys(v for a in alternatives for v in _bounds(a) if _hashable(v))
        points = [(f"= {_lit(v)}", v) for v in named] + [("is any other value", _OTHER)]
    return [(text, _accepting(table, column, value)) for text, value in points]


def _bounds(alternative: Any) -> list[Any]:
    return [alternative.value] + ([alternative.high] if alternative.op == ".." else [])


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _numeric(bounds: list[Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    last = 2 * len(bounds)
    for j, point in enumerate(numeric_points(bounds)):
        if j == 0:
            text = f"< {bounds[0]}"
        elif j % 2:
            text = f"= {bounds[(j - 1) // 2]}"
        elif j == last:
            text = f"> {bounds[-1]}"
        else:
            text = f"in ({bounds[j // 2 - 1]}..{bounds[j // 2]})"
        out.append((text, point))
    return out


def _accepting(table: DecisionTable, column: int, value: Any) -> int:
    mask = 0
    for i, row in enumerate(table.rows):
        if row.cells[column].is_any or safe_test(row.tests[column], value):
            mask |= 1 << i
    return mask


@dataclass
class _Walk:
    table: DecisionTable
    pieces: list[list[Piece]]
    rest_any: list[int]
    findings: list[TableFinding] = field(default_factory=list)
    pairs: set[tuple[int, int]] = field(default_factory=set)
    nodes: int = 0

    def visit(self, column: int, mask: int, path: tuple[tuple[int, str], ...]) -> None:
        self.nodes += 1
        if self.nodes > _MAX_NODES or len(self.findings) >= _MAX_FINDINGS:
            return
        if column == len(self.pieces) or not mask & ~self.rest_any[column]:
            self.leaf(mask, path)
            return
        gaps = [text for text, rows in self.pieces[column] if not mask & rows]
        if gaps:
            self.gap(path, column, gaps)
        for text, rows in self.pieces[column]:
            if mask & rows:
                self.visit(column + 1, mask & rows, (*path, (column, text)))

    def leaf(self, mask: int, path: tuple[tuple[int, str], ...]) -> None:
        if self.table.hit not in ("UNIQUE", "ANY") or not mask & (mask - 1):
            return
        rows = [i for i in range(len(self.table.rows)) if mask >> i & 1]
        for a_index, a in enumerate(rows):
            for b in rows[a_index + 1:]:
                self.overlap(a, b, path)

    def overlap(self, a: int, b: int, path: tuple[tuple[int, str], ...]) -> None:
        first, second = self.table.rows[a], self.table.rows[b]
        if (a, b) in self.pairs or (
                self.table.hit == "ANY" and first.output_text == second.output_text):
            return
        self.pairs.add((a, b))
        what = "overlap with different outputs" if self.table.hit == "ANY" else "overlap"
        self.findings.append(TableFinding(
            "overlap", "error",
            f"{self.table.hit} table {self.table.id!r}: rows {first.number} and {second.number} "
            f"{what}: both match when {self.describe(path)}", (first.location, second.location),
            "make the rows' conditions exclusive, or use hit FIRST or PRIORITY"))

    def gap(self, path: tuple[tuple[int, str], ...], column: int, texts: list[str]) -> None:
        source = self.table.inputs[column].expression.source
        missing = " or ".join(f"{source} {t}" for t in texts)
        where = f"{self.describe(path)} and {missing}" if path and self.describe(path) != \
            "any input" else missing
        self.findings.append(TableFinding(
            "gap", "warning", f"{self.table.hit} table {self.table.id!r}: no row matches when "
            f"{where}", (self.table.location,),
            "add a row for it (a row of '-' cells catches everything else)"))

    def describe(self, path: tuple[tuple[int, str], ...]) -> str:
        parts = [f"{self.table.inputs[c].expression.source} {text}" for c, text in path if text]
        return " and ".join(parts) or "any input"
