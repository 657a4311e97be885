"""Reading cases for the CLI: one from --text/--input, many from JSON Lines with line numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import InputError
from .._facts import Case
from .._files import decode_utf8

__all__ = ["Record", "parse_case_json", "read_jsonl"]


@dataclass(frozen=True)
class Record:
    """One line of an input file: the parsed case, or why it could not be parsed."""

    line: int
    case: Any
    error: str | None = None
    case_id: str | None = None  # the id a line that failed still gave, for its output row


def parse_case_json(text: str, where: str = "--input") -> Any:
    """A case from JSON text: an object (``{"text": ..., "fields": ...}``) or a JSON string."""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: invalid JSON at column {exc.colno}: {exc.msg}; "
                         'pass e.g. \'{"text": "...", "fields": {}}\'') from None
    if not isinstance(value, (dict, str)):
        raise InputError(f"{where}: expected a JSON object or string, got {type(value).__name__}")
    return value


def _not_json(word: str) -> Any:
    raise json.JSONDecodeError(f"{word} is not JSON (write null, or the number as text)", word, 0)


def read_jsonl(path: Path) -> Iterator[Record]:
    """Every non-blank line of a JSON Lines file; a bad line becomes a Record with an error.

    Lines are decoded one by one, so bytes that are not UTF-8 fail only their own line.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}; check the path") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = decode_utf8(raw, str(path), InputError, first_line=number)
                if line.strip():
                    yield _record(number, parse_case_json(line, f"{path}:{number}"), path)
            except InputError as exc:
                yield Record(number, None, str(exc))


def _record(number: int, value: Any, path: Path) -> Record:
    # Checked here, not in the batch, so that a bad case is named by its file and line.
    try:
        return Record(number, Case.coerce(value, where=f"{path}:{number}"))
    except InputError as exc:
        given = value.get("id") if isinstance(value, dict) else None
        return Record(number, None, str(exc), given if isinstance(given, str) else None)
