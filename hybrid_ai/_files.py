"""Reading users' text files: UTF-8 (a leading byte-order mark dropped), errors naming the spot.

    text = read_text(Path("pipeline.yaml"), "pipeline")      # ConfigError if unreadable
    line = decode_utf8(raw, "cases.jsonl", InputError, first_line=7)  # a batch line
"""

from __future__ import annotations

from pathlib import Path

from ._errors import ConfigError, HybridAIError, Location, Problem

__all__ = ["decode_utf8", "read_text"]

_RESAVE = "re-save it as UTF-8"


def read_text(path: Path, what: str = "file",
              error: type[HybridAIError] = ConfigError) -> str:
    """The whole file as text; a missing, unreadable or non-UTF-8 file raises ``error``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}; check the path") from None
    return decode_utf8(data, str(path), error, what)


def decode_utf8(data: bytes, where: str, error: type[HybridAIError] = ConfigError,
                what: str = "file", first_line: int = 1) -> str:
    """``data`` (starting at line ``first_line`` of ``where``) as text; bytes that are not
    UTF-8 raise ``error`` naming their line and column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = Problem(f"byte 0x{data[exc.start]:02x} is not UTF-8",
                          Location(where, line, column), _RESAVE)
        if issubclass(error, ConfigError):
            raise error(f"{where}: the {what} is not UTF-8 text", [problem]) from None
        raise error(str(problem)) from None
