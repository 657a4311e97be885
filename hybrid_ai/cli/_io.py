"""Reading cases for the CLI: one from --text/--input, many from JSON Lines with line numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import InputError

__all__ = ["Record", "parse_case_json", "read_jsonl"]


@dataclass(frozen=True)
class Record:
    """One line of an input file: the parsed case, or why it could not be parsed."""

    line: int
    case: Any
    error: str | None = None


def parse_case_json(text: str, where: str = "--input") -> Any:
    """A case from JSON text: an object (``{"text": ..., "fields": ...}``) or a JSON string."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON at column {exc.colno}: {exc.msg}; "
                         'pass e.g. \'{"text": "...", "fields": {}}\'') from None
    if not isinstance(value, (dict, str)):
        raise InputError(f"{where}: expected a JSON object or string, got {type(value).__name__}")
    return value


def read_jsonl(path: Path) -> Iterator[Record]:
    """Every non-blank line of a JSON Lines file; a bad line becomes a Record with an error."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}; check the path") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield Record(number, parse_case_json(line, f"{path}:{number}"))
            except InputError as exc:
                yield Record(number, None, str(exc))
