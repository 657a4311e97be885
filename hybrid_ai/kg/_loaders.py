"""Readers and writers for knowledge files: N-Triples, Turtle, CSV edge lists and JSON.

Every reader yields :class:`Triple` s and reports a bad file as a ``ConfigError`` whose
``Problem`` names the file, line and column. ``LOADERS`` maps a format name to its reader,
so a plugin can add a format by adding an entry; ``load`` picks one from the file extension.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import difflib
import gzip
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import urljoin

from .._errors import ConfigError, Location, Problem, UnknownComponentError
from ._store import Triple, TripleStore
from ._terms import (
    IRI,
    OWL,
    RDF,
    RDFS,
    SKOS,
    XSD,
    XSD_BOOLEAN,
    XSD_DECIMAL,
    XSD_DOUBLE,
    XSD_INTEGER,
    XSD_STRING,
    BNode,
    Literal,
    Node,
    Term,
)

__all__ = [
    "DEFAULT_BASE",
    "LOADERS",
    "guess_format",
    "load",
    "load_csv",
    "parse_json",
    "parse_ntriples",
    "parse_turtle",
    "read_csv",
    "read_json",
    "read_ntriples",
    "read_turtle",
    "save_json",
    "save_ntriples",
]

PathLike = str | Path
DEFAULT_BASE = "urn:hybrid-ai:"
_DEFAULT_PREFIXES = {
    "rdf": RDF.base,
    "rdfs": RDFS.base,
    "owl": OWL.base,
    "xsd": XSD.base,
    "skos": SKOS.base,
}


# ---- shared helpers ----------------------------------------------------------------------


def _problem(
    message: str,
    source: str | None,
    line: int | None,
    column: int | None = None,
    hint: str | None = None,
) -> ConfigError:
    where = Location(source, line, column)
    return ConfigError(f"cannot load {source or 'knowledge'}", [Problem(message, where, hint)])


@contextlib.contextmanager
def _open_text(path: PathLike, mode: str = "r", newline: str | None = None) -> Iterator[IO[str]]:
    """Open a text file, gzip-compressed when it ends in ``.gz``; I/O errors become ConfigError."""
    path = Path(path)
    encoding = "utf-8-sig" if mode == "r" else "utf-8"  # tolerate a BOM from spreadsheet tools
    try:
        if path.suffix == ".gz":
            with gzip.open(path, mode + "t", encoding=encoding, newline=newline) as zipped:
                yield cast(IO[str], zipped)
        else:
            with open(path, mode, encoding=encoding, newline=newline) as handle:
                yield handle
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start] if exc.start < len(exc.object) else 0
        raise _problem(f"byte 0x{byte:02x} is not UTF-8", str(path), None,
                       hint="re-save it as UTF-8") from None
    except OSError as exc:
        raise _io_error(exc, path, mode) from None


def _io_error(exc: OSError, path: Path, mode: str) -> ConfigError:
    """A failed open, read or write, worded for the direction it went."""
    reason = exc.strerror or str(exc)
    if mode != "r":
        return ConfigError(f"cannot write {path}", [Problem(
            reason, Location(str(path)), "check that the folder exists and is writable")])
    hint = ("a .gz file must be gzip-compressed" if isinstance(exc, gzip.BadGzipFile)
            else "check the path")
    return _problem(reason, str(path), None, hint=hint)


def _read_text(path: PathLike) -> str:
    with _open_text(path) as handle:
        return handle.read()


_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.DOTALL)
_ECHARS = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def _unescape(text: str) -> str:
    """Undo ``\\n``-style and ``\\uXXXX`` escapes; ValueError names a bad one."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(_unescape_one, text)


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2)
    if code is not None:
        return chr(int(code, 16))  # ValueError above U+10FFFF, reported by the caller
    char = match.group(3)
    if char not in _ECHARS:
        raise ValueError(f"unknown escape '\\{char}'")
    return _ECHARS[char]


class _Lines:
    """Offset -> (line, column) for error messages, both 1-based."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index] + 1


# ---- N-Triples ---------------------------------------------------------------------------

_UCHAR = r"\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}"
# Loops are written "unrolled" (run of plain chars, then escape + run) because a per-character
# alternation made the N-Triples fast path twice as slow.
_IRI_CHARS = r"[^\x00-\x20<>\"{}|^`\\]*"
_IRIREF = rf"<({_IRI_CHARS}(?:(?:{_UCHAR}){_IRI_CHARS})*)>"
_BNODE = r"_:(\w(?:[\w.-]*[\w-])?)"
_STRING = r'"([^"\\\n\r]*(?:\\.[^"\\\n\r]*)*)"'
_LANGTAG = r"@([a-zA-Z]+(?:-[a-zA-Z0-9]+)*)"
_NT_LINE = re.compile(
    rf"[ \t]*(?:{_IRIREF}|{_BNODE})[ \t]*{_IRIREF}[ \t]*"
    rf"(?:{_IRIREF}|{_BNODE}|{_STRING}(?:{_LANGTAG}|\^\^{_IRIREF})?)[ \t]*\.[ \t]*(?:#.*)?"
)
_NT_PARTS = (
    ("a subject (<iri> or _:label)", re.compile(rf"(?:{_IRIREF}|{_BNODE})")),
    ("a predicate (<iri>)", re.compile(_IRIREF)),
    ("an object (<iri>, _:label or \"literal\")",
     re.compile(rf"(?:{_IRIREF}|{_BNODE}|{_STRING}(?:{_LANGTAG}|\^\^{_IRIREF})?)")),
    ("'.' to end the triple", re.compile(r"\.")),
    ("the end of the line", re.compile(r"(?:#.*)?$")),
)


class _NTriplesParser:
    """Line-by-line N-Triples; terms are cached by their source text because LUBM-style data
    repeats the same few thousand IRIs, and building a term costs more than a dict lookup."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.iris: dict[str, IRI] = {}
        self.bnodes: dict[str, BNode] = {}
        self.literals: dict[tuple[str, str | None, str | None], Literal] = {}

    def parse(self, lines: Iterable[str]) -> Iterator[Triple]:
        for number, raw in enumerate(lines, start=1):
            line = raw.rstrip("\r\n")
            match = _NT_LINE.fullmatch(line)
            if match is None:
                if line.strip() and not line.lstrip().startswith("#"):
                    raise self._diagnose(line, number)
                continue
            try:
                yield self._triple(match.groups())
            except ValueError as exc:
                raise _problem(str(exc), self.source, number) from None

    def _triple(self, g: tuple[str | Any, ...]) -> Triple:
        subject = self._iri(g[0]) if g[0] is not None else self._bnode(g[1])
        if g[3] is not None:
            obj: Term = self._iri(g[3])
        elif g[4] is not None:
            obj = self._bnode(g[4])
        else:
            obj = self._literal(g[5], g[6], g[7])
        return Triple(subject, self._iri(g[2]), obj)

    def _iri(self, raw: str) -> IRI:
        found = self.iris.get(raw)
        if found is None:
            found = self.iris[raw] = IRI(_unescape(raw))
        return found

    def _bnode(self, label: str) -> BNode:
        found = self.bnodes.get(label)
        if found is None:
            found = self.bnodes[label] = BNode(label)
        return found

    def _literal(self, raw: str, lang: str | None, datatype: str | None) -> Literal:
        key = (raw, lang, datatype)
        found = self.literals.get(key)
        if found is None:
            dtype = self._iri(datatype) if datatype is not None else XSD_STRING
            found = self.literals[key] = Literal(_unescape(raw), dtype, lang)
        return found

    def _diagnose(self, line: str, number: int) -> ConfigError:
        # The one-regex fast path only says "no"; re-scan part by part to say where and why.
        pos = _skip_blanks(line, 0)
        for expected, pattern in _NT_PARTS:
            match = pattern.match(line, pos)
            if match is None:
                found = line[pos : pos + 20] or "end of line"
                return _problem(f"expected {expected}, found {found!r}", self.source, number,
                                pos + 1, hint="each line is: <subject> <predicate> object .")
            pos = _skip_blanks(line, match.end())
        return _problem("malformed triple", self.source, number, 1)


def _skip_blanks(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in " \t":
        pos += 1
    return pos


def parse_ntriples(text: str | Iterable[str], *, source: str | None = None) -> Iterator[Triple]:
    """Triples from N-Triples text: ``list(parse_ntriples('<a:x> <a:p> "v" .'))``."""
    lines = text.split("\n") if isinstance(text, str) else text
    return _NTriplesParser(source).parse(lines)


def read_ntriples(path: PathLike) -> Iterator[Triple]:
    """Triples from an N-Triples file (``.nt`` or ``.nt.gz``): ``list(read_ntriples(p))``."""
    with _open_text(path) as handle:
        yield from _NTriplesParser(str(path)).parse(handle)


# ---- Turtle ------------------------------------------------------------------------------

_PLX = r"%[0-9A-Fa-f]{2}|\\[_~.!$&'()*+,;=/?#@%-]"
_PN_LOCAL = rf"(?:[\w:]|{_PLX})(?:(?:[\w.:-]|{_PLX})*(?:[\w:-]|{_PLX}))?"
_TTL_TOKEN = re.compile(
    "|".join(
        [
            r"(?P<ws>[ \t\r\n]+|#[^\r\n]*)",
            rf"(?P<iri><(?:[^\x00-\x20<>\"{{}}|^`\\]|{_UCHAR})*>)",
            r"(?P<lstring>\"\"\"(?:(?:\"|\"\")?(?:[^\"\\]|\\.))*\"\"\""
            r"|'''(?:(?:'|'')?(?:[^'\\]|\\.))*''')",
            r"(?P<string>\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*')",
            r"(?P<bnode>_:\w(?:[\w.-]*[\w-])?)",
            r"(?P<lang>@[a-zA-Z]+(?:-[a-zA-Z0-9]+)*)",
            r"(?P<dtype>\^\^)",
            r"(?P<number>[+-]?(?:\d+\.\d*[eE][+-]?\d+|\.\d+[eE][+-]?\d+|\d+[eE][+-]?\d+"
            r"|\d*\.\d+|\d+))",
            rf"(?P<pname>(?:[^\W\d_](?:[\w.-]*[\w-])?)?:(?:{_PN_LOCAL})?)",
            r"(?P<word>[A-Za-z]+)",
            r"(?P<punct>[.;,\[\]()])",
        ]
    ),
    re.DOTALL,
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_LOCAL_ESCAPE = re.compile(r"\\(.)")
_parse_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    offset: int


def _tokenize(text: str, source: str | None) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TTL_TOKEN.match(text, pos)
        if match is None:
            line, column = _Lines(text).at(pos)
            raise _problem(_bad_char_message(text[pos]), source, line, column)
        if match.lastgroup != "ws":
            tokens.append(_Token(match.lastgroup or "", match.group(), pos))
        pos = match.end()
    tokens.append(_Token("eof", "", len(text)))
    return tokens


def _bad_char_message(char: str) -> str:
    if char in "\"'":
        return "unterminated string literal"
    if char == "<":
        return "malformed IRI (no closing '>' or a space or forbidden character inside)"
    return f"unexpected character {char!r}"


class _TurtleParser:
    """Recursive descent over the Turtle grammar (W3C REC 2014), minus nothing we need."""

    def __init__(self, text: str, source: str | None, base: str | None) -> None:
        self.text, self.source, self.base = text, source, base
        self.tokens = _tokenize(text, source)
        self.i = 0
        self.prefixes: dict[str, str] = {}
        self.out: list[Triple] = []
        self.genid = f"ttl{next(_parse_counter)}n"
        self.fresh = itertools.count()

    # -- token helpers

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1 if token.kind != "eof" else 0
        return token

    def accept(self, text: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str, context: str) -> None:
        if not self.accept(text):
            raise self.error(f"expected '{text}' {context}")

    def error(
        self, message: str, token: _Token | None = None, hint: str | None = None
    ) -> ConfigError:
        token = token or self.peek()
        line, column = _Lines(self.text).at(token.offset)
        found = "end of file" if token.kind == "eof" else repr(token.text[:30])
        return _problem(f"{message}, found {found}", self.source, line, column, hint)

    # -- statements

    def parse(self) -> list[Triple]:
        while self.peek().kind != "eof":
            self.statement()
        return self.out

    def statement(self) -> None:
        token = self.peek()
        if token.kind == "lang" and token.text in ("@prefix", "@base"):
            self.take()
            self.directive(token.text[1:])
            self.expect(".", f"after the {token.text} directive")
        elif token.kind == "word" and token.text.upper() in ("PREFIX", "BASE"):
            self.take()
            self.directive(token.text.lower())
        else:
            self.triples()
            self.expect(".", "at the end of the statement")

    def directive(self, name: str) -> None:
        if name == "prefix":
            token = self.take()
            if token.kind != "pname" or not token.text.endswith(":"):
                raise self.error("expected a prefix name such as 'ex:'", token)
            self.prefixes[token.text[:-1]] = self.iriref(self.take()).value
        else:
            self.base = self.iriref(self.take()).value

    def triples(self) -> None:
        if self.accept("["):
            subject = self.blank_property_list()
            if self.peek().text != ".":
                self.predicate_objects(subject)
            return
        self.predicate_objects(self.subject())

    def subject(self) -> Node:
        token = self.peek()
        if token.kind in ("iri", "pname"):
            return self.iri(self.take())
        if token.kind == "bnode":
            return BNode(self.take().text[2:])
        if self.accept("("):
            return self.collection()
        raise self.error("expected a subject (IRI, prefixed name or blank node)")

    def predicate_objects(self, subject: Node) -> None:
        while True:
            predicate = self.verb()
            self.emit(subject, predicate, self.object())
            while self.accept(","):
                self.emit(subject, predicate, self.object())
            if not self.accept(";"):
                return
            while self.accept(";"):
                pass
            if self.peek().text in (".", "]") and self.peek().kind == "punct":
                return

    def verb(self) -> IRI:
        token = self.peek()
        if token.kind == "word" and token.text == "a":
            self.take()
            return RDF.type
        if token.kind in ("iri", "pname"):
            return self.iri(self.take())
        raise self.error("expected a predicate (IRI, prefixed name or 'a')")

    def object(self) -> Term:
        token = self.peek()
        if token.kind in ("iri", "pname"):
            return self.iri(self.take())
        if token.kind == "bnode":
            return BNode(self.take().text[2:])
        if self.accept("["):
            return self.blank_property_list()
        if self.accept("("):
            return self.collection()
        return self.literal()

    def blank_property_list(self) -> BNode:
        node = self.new_bnode()
        if not self.accept("]"):
            self.predicate_objects(node)
            self.expect("]", "to close the blank node '['")
        return node

    def collection(self) -> Node:
        items: list[Term] = []
        while not self.accept(")"):
            if self.peek().kind == "eof":
                raise self.error("expected ')' to close the collection")
            items.append(self.object())
        head: Node = RDF.nil
        for item in reversed(items):  # built back to front so each cell can point at its rest
            cell = self.new_bnode()
            self.emit(cell, RDF.first, item)
            self.emit(cell, RDF.rest, head)
            head = cell
        return head

    # -- terms

    def literal(self) -> Literal:
        token = self.take()
        if token.kind in ("string", "lstring"):
            return self.string_literal(token)
        if token.kind == "number":
            return Literal(token.text, _number_type(token.text))
        if token.kind == "word" and token.text in ("true", "false"):
            return Literal(token.text, XSD_BOOLEAN)
        raise self.error("expected an object (IRI, blank node, collection or literal)", token)

    def string_literal(self, token: _Token) -> Literal:
        quote = 3 if token.kind == "lstring" else 1
        try:
            lexical = _unescape(token.text[quote:-quote])
        except ValueError as exc:
            raise self.error(str(exc), token) from None
        if self.peek().kind == "lang":
            return Literal(lexical, lang=self.take().text[1:])
        if self.peek().kind == "dtype":
            self.take()
            return Literal(lexical, self.iri(self.take()))
        return Literal(lexical)

    def iri(self, token: _Token) -> IRI:
        if token.kind == "iri":
            return self.iriref(token)
        if token.kind != "pname":
            raise self.error("expected an IRI or prefixed name", token)
        prefix, _, local = token.text.partition(":")
        if prefix not in self.prefixes:
            raise self.error(f"unknown prefix '{prefix}:'", token,
                             hint=f"declare it: @prefix {prefix}: <http://...> .")
        return IRI(self.prefixes[prefix] + _LOCAL_ESCAPE.sub(r"\1", local))

    def iriref(self, token: _Token) -> IRI:
        if token.kind != "iri":
            raise self.error("expected an IRI in <...>", token)
        try:
            value = _unescape(token.text[1:-1])
        except ValueError as exc:
            raise self.error(str(exc), token) from None
        if self.base and not _SCHEME.match(value):
            value = urljoin(self.base, value)
        return IRI(value)

    def new_bnode(self) -> BNode:
        return BNode(f"{self.genid}{next(self.fresh)}")

    def emit(self, subject: Node, predicate: IRI, obj: Term) -> None:
        self.out.append(Triple(subject, predicate, obj))


def _number_type(text: str) -> IRI:
    if "e" in text or "E" in text:
        return XSD_DOUBLE
    return XSD_DECIMAL if "." in text else XSD_INTEGER


def parse_turtle(text: str, *, source: str | None = None, base: str | None = None) -> list[Triple]:
    """Triples from Turtle text: ``parse_turtle("@prefix ex: <http://x/> . ex:a a ex:B .")``.

    Blank nodes written ``[...]`` or ``(...)`` get labels unique to this parse.
    """
    return _TurtleParser(text, source, base).parse()


def read_turtle(path: PathLike) -> list[Triple]:
    """Triples from a Turtle file (``.ttl`` or ``.ttl.gz``): ``read_turtle("univ-bench.ttl")``."""
    return parse_turtle(_read_text(path), source=str(path))


# ---- references shared by CSV and JSON ---------------------------------------------------


def _resolve(ref: str, base: str, prefixes: Mapping[str, str] = _DEFAULT_PREFIXES) -> Node:
    """``_:x`` a blank node, ``rdfs:label`` a known prefix, ``http:..`` absolute, else base+ref."""
    if ref.startswith("_:"):
        return BNode(ref[2:])
    head, colon, tail = ref.partition(":")
    if colon and head in prefixes:
        return IRI(prefixes[head] + tail)
    if _SCHEME.match(ref):
        return IRI(ref)
    return IRI(base + ref)


def _is_local(ref: str, prefixes: Mapping[str, str]) -> bool:
    """Whether ``ref`` is resolved against the base (rather than being absolute or prefixed)."""
    head, colon, _ = ref.partition(":")
    return not (ref.startswith("_:") or (colon and head in prefixes) or _SCHEME.match(ref))


# ---- CSV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CsvMapping:
    subject: str
    predicate: str | None
    predicate_value: str | None
    object: str
    object_is_literal: bool
    base: str
    delimiter: str = ","


_MAX_ROW_PROBLEMS = 100  # a file that is wrong on every row needs its first rows shown, not all


def read_csv(
    path: PathLike,
    *,
    subject: str = "src",
    predicate: str | None = "rel",
    predicate_value: str | None = None,
    object: str = "dst",
    object_is_literal: bool = False,
    base: str = DEFAULT_BASE,
    delimiter: str = ",",
) -> Iterator[Triple]:
    """Triples from a CSV edge list with a header row: ``read_csv(p, predicate_value="knows")``.

    Each row gives one triple: the ``subject`` column, the ``predicate`` column (or the fixed
    ``predicate_value``) and the ``object`` column, an IRI unless ``object_is_literal``.
    Values are resolved against ``base`` unless absolute (``http://...``) or prefixed.
    Every bad row (a cell too many or too few, an empty cell) is reported together at the end.
    """
    m = _CsvMapping(subject, predicate, predicate_value, object, object_is_literal, base,
                    delimiter)
    source, problems = str(path), list[Problem]()
    with _open_text(path, newline="") as handle:
        rows = _csv_rows(csv.reader(handle, delimiter=delimiter), source, problems)
        header = next(rows, ([], 1))[0]
        _check_csv_header(header, m, source)
        fixed = _csv_predicate(predicate_value, base, source, 1) if predicate_value else None
        for cells, line in rows:
            triple = _csv_row(header, cells, m, fixed, Location(source, line), problems)
            if triple is not None:
                yield triple
    if problems:
        raise ConfigError(f"cannot load {source}: {len(problems)} bad row(s)",
                          _capped(problems))


def _csv_rows(reader: Iterator[list[str]], source: str,
              problems: list[Problem]) -> Iterator[tuple[list[str], int]]:
    """(cells, first line) of each non-blank row; a row the csv module cannot split is a
    problem that ends the file."""
    line_num = cast(Any, reader).line_num
    while True:
        line = line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(Problem(str(exc), Location(source, line),
                                    'quote a cell as a whole: "a, b"; double a quote inside it'))
            return
        line_num = cast(Any, reader).line_num
        if cells:
            yield cells, line


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= _MAX_ROW_PROBLEMS:
        return problems
    rest = len(problems) - _MAX_ROW_PROBLEMS
    return [*problems[:_MAX_ROW_PROBLEMS],
            Problem(f"... and {rest} more bad row(s)", problems[_MAX_ROW_PROBLEMS].location,
                    "fix the rows above and load the file again")]


def _check_csv_header(header: Sequence[str] | None, m: _CsvMapping, source: str) -> None:
    if m.predicate is None and m.predicate_value is None:
        raise _problem("no predicate: give predicate= (a column) or predicate_value=", source, 1)
    wanted = [m.subject] + ([] if m.predicate_value else [m.predicate or ""]) + [m.object]
    columns = list(header or [])
    missing = [name for name in wanted if name not in columns]
    if missing:
        expected = m.delimiter.join(wanted)
        raise _problem(f"missing column(s) {', '.join(map(repr, missing))}; the header has: "
                       f"{', '.join(columns) or 'nothing'}", source, 1,
                       hint=f"make the first line the header {expected}; the command line has "
                            "no column mapping, load_csv() takes one")


def _csv_predicate(value: str, base: str, source: str, line: int) -> IRI:
    node = _resolve(value, base)
    if not isinstance(node, IRI):
        raise _problem(f"predicate {value!r} must be an IRI, not a blank node", source, line)
    return node


def _csv_row(header: list[str], cells: list[str], m: _CsvMapping, fixed: IRI | None,
             where: Location, problems: list[Problem]) -> Triple | None:
    """The row's triple, or None with its problem added to ``problems``."""
    if len(cells) != len(header):
        hint = (f'quote a cell holding {m.delimiter!r} as a whole: "a{m.delimiter} b"'
                if len(cells) > len(header) else "give every row one cell per column")
        problems.append(Problem(f"row has {len(cells)} cells, the header {len(header)}",
                                where, hint))
        return None
    try:
        return _csv_triple(dict(zip(header, cells, strict=True)), m, fixed, where)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _csv_triple(row: Mapping[str, str | None], m: _CsvMapping, fixed: IRI | None,
                where: Location) -> Triple:
    wanted = [m.subject, m.object] + ([] if fixed else [m.predicate or ""])
    empty = [c for c in wanted if not (row.get(c) or "").strip()]
    if empty:
        raise _problem(f"empty {', '.join(map(repr, empty))} cell" + "s" * (len(empty) > 1),
                       where.file, where.line, hint="write a value, or delete the row")

    def cell(column: str) -> str:
        return (row.get(column) or "").strip()

    source, line = where.file or "", where.line or 0
    predicate = fixed or _csv_predicate(cell(m.predicate or ""), m.base, source, line)
    raw_object = cell(m.object)
    obj: Term = Literal(raw_object) if m.object_is_literal else _resolve(raw_object, m.base)
    return Triple(_resolve(cell(m.subject), m.base), predicate, obj)


def load_csv(
    path: PathLike,
    *,
    subject: str = "src",
    predicate: str | None = "rel",
    predicate_value: str | None = None,
    object: str = "dst",
    object_is_literal: bool = False,
    base: str = DEFAULT_BASE,
    delimiter: str = ",",
    store: TripleStore | None = None,
) -> TripleStore:
    """A store from a CSV edge list: ``load_csv("edges.csv", object_is_literal=True)``."""
    target = store if store is not None else TripleStore()
    target.add_many(
        read_csv(path, subject=subject, predicate=predicate, predicate_value=predicate_value,
                 object=object, object_is_literal=object_is_literal, base=base,
                 delimiter=delimiter)
    )
    return target


# ---- JSON --------------------------------------------------------------------------------

_TOP_KEYS = ("base", "prefixes", "nodes", "edges")
_NODE_KEYS = ("id", "type", "label", "aliases", "properties")
_EDGE_KEYS = ("source", "predicate", "target")
_VALUE_KEYS = ("@id", "@value", "@type", "@language")
_JSON_SPAN = re.compile(r'"(?:[^"\\]|\\.)*"|\{')


class _Obj(dict[str, Any]):
    """A JSON object that remembers its key/value pairs as written and where it starts."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs
        self.offset = 0


def _decode_json(text: str, source: str | None) -> Any:
    try:
        root = json.loads(text, object_pairs_hook=_Obj)
    except json.JSONDecodeError as exc:
        raise _problem(exc.msg, source, exc.lineno, exc.colno) from None
    # json keeps no positions, but objects are opened in document order, so the n-th '{'
    # outside a string starts the n-th object of a pre-order walk.
    starts = (m.start() for m in _JSON_SPAN.finditer(text) if m.group() == "{")
    for obj, offset in zip(_preorder(root), starts, strict=False):
        obj.offset = offset
    return root


def _preorder(value: Any) -> Iterator[_Obj]:
    if isinstance(value, _Obj):
        yield value
        for _, child in value.pairs:
            yield from _preorder(child)
    elif isinstance(value, list):
        for child in value:
            yield from _preorder(child)


class _JsonReader:
    """Turns the knowledge JSON shape into triples, collecting every problem before raising."""

    def __init__(self, text: str, source: str | None) -> None:
        self.text, self.source = text, source
        self.lines = _Lines(text)
        self.problems: list[Problem] = []
        self.out: list[Triple] = []
        self.base = DEFAULT_BASE
        self.prefixes: dict[str, str] = dict(_DEFAULT_PREFIXES)
        self.declared: dict[str, int] = {}

    def read(self, root: Any) -> list[Triple]:
        if not isinstance(root, _Obj):
            self.flag("the top level must be an object with 'nodes' and 'edges'", 0)
        else:
            self.document(root)
        if self.problems:
            raise ConfigError(f"invalid knowledge file {self.source or '<string>'}", self.problems)
        return self.out

    def flag(self, message: str, offset: int, hint: str | None = None) -> None:
        line, column = self.lines.at(offset)
        self.problems.append(Problem(message, Location(self.source, line, column), hint))

    def key_offset(self, obj: _Obj, key: str) -> int:
        """Where ``"key":`` is written inside ``obj`` (its first such key at or after its '{')."""
        found = re.compile(re.escape(json.dumps(key)) + r"\s*:").search(self.text, obj.offset)
        return found.start() if found else obj.offset

    def document(self, root: _Obj) -> None:
        self.check_keys(root, _TOP_KEYS, "the top level")
        base = root.get("base", DEFAULT_BASE)
        if isinstance(base, str):
            self.base = base
        else:
            self.flag("'base' must be a string IRI", self.key_offset(root, "base"))
        self.read_prefixes(root)
        nodes, edges = self.objects(root, "nodes"), self.objects(root, "edges")
        for node in nodes:
            self.declare(node)
        for node in nodes:
            self.node(node)
        for edge in edges:
            self.edge(edge)

    def read_prefixes(self, root: _Obj) -> None:
        prefixes = root.get("prefixes", {})
        if not isinstance(prefixes, dict) or not all(isinstance(v, str) for v in prefixes.values()):
            self.flag("'prefixes' must map names to IRIs", self.key_offset(root, "prefixes"))
            return
        self.prefixes.update(prefixes)

    def objects(self, parent: _Obj, key: str) -> list[_Obj]:
        items = parent.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, _Obj) for i in items):
            self.flag(f"'{key}' must be a list of objects", self.key_offset(parent, key))
            return []
        return items

    def check_keys(self, obj: _Obj, allowed: tuple[str, ...], what: str) -> None:
        seen: set[str] = set()
        for key, _ in obj.pairs:
            if key in seen:
                self.flag(f"duplicate key {key!r} in {what}", self.key_offset(obj, key))
            seen.add(key)
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use: {', '.join(allowed)}"
                self.flag(f"unknown field {key!r} in {what}", self.key_offset(obj, key), hint)

    def declare(self, node: _Obj) -> None:
        ident = node.get("id")
        if not isinstance(ident, str):
            return  # reported by node()
        if ident in self.declared:
            first = self.lines.at(self.declared[ident])[0]
            self.flag(f"node {ident!r} is declared twice (first on line {first})", node.offset)
        else:
            self.declared[ident] = node.offset

    def node(self, node: _Obj) -> None:
        self.check_keys(node, _NODE_KEYS, "a node")
        subject = self.required_ref(node, "id", "a node")
        if subject is None:
            return
        for kind in self.strings(node, "type"):
            self.out.append(Triple(subject, RDF.type, self.resolve(kind)))
        for label in self.strings(node, "label"):
            self.out.append(Triple(subject, RDFS.label, Literal(label)))
        for alias in self.strings(node, "aliases"):
            self.out.append(Triple(subject, SKOS.altLabel, Literal(alias)))
        properties = node.get("properties", _Obj([]))
        if not isinstance(properties, _Obj):
            self.flag("'properties' must be an object", self.key_offset(node, "properties"))
            return
        self.properties(subject, properties)

    def properties(self, subject: Node, properties: _Obj) -> None:
        for key, value in properties.pairs:
            predicate = self.predicate(key, self.key_offset(properties, key))
            for item in value if isinstance(value, list) else [value]:
                obj = self.value(item, self.key_offset(properties, key))
                if predicate is not None and obj is not None:
                    self.out.append(Triple(subject, predicate, obj))

    def value(self, item: Any, offset: int) -> Term | None:
        if isinstance(item, (str, bool, int, float)):
            return Literal.from_python(item)
        if isinstance(item, _Obj) and set(item) <= set(_VALUE_KEYS):
            return self.tagged_value(item)
        self.flag("a property value must be a string, number, boolean, {\"@id\": ...} "
                  "or {\"@value\": ...}", offset)
        return None

    def tagged_value(self, item: _Obj) -> Term | None:
        if isinstance(item.get("@id"), str):
            return self.ref(item["@id"], item.offset)
        lexical = item.get("@value")
        if lexical is None or isinstance(lexical, (list, dict)):
            self.flag("a value object needs \"@id\" or a scalar \"@value\"", item.offset)
            return None
        text = json.dumps(lexical) if isinstance(lexical, bool) else str(lexical)
        kind = item.get("@type")
        datatype = self.predicate(kind, item.offset) if isinstance(kind, str) else None
        lang = item.get("@language") if isinstance(item.get("@language"), str) else None
        if lang is not None:
            return Literal(text, lang=lang)
        if datatype is None:
            return Literal.from_python(lexical)
        return Literal(text, datatype)

    def edge(self, edge: _Obj) -> None:
        self.check_keys(edge, _EDGE_KEYS, "an edge")
        subject = self.required_ref(edge, "source", "an edge")
        target = self.required_ref(edge, "target", "an edge")
        name = edge.get("predicate")
        if not isinstance(name, str):
            self.flag("an edge needs a string 'predicate'", edge.offset)
            return
        predicate = self.predicate(name, self.key_offset(edge, "predicate"))
        if subject is not None and target is not None and predicate is not None:
            self.out.append(Triple(subject, predicate, target))

    def required_ref(self, obj: _Obj, key: str, what: str) -> Node | None:
        ref = obj.get(key)
        if not isinstance(ref, str) or not ref:
            self.flag(f"{what} needs a non-empty string {key!r}", obj.offset)
            return None
        return self.ref(ref, self.key_offset(obj, key))

    def ref(self, ref: str, offset: int) -> Node | None:
        # A local id that no node declares is almost always a typo in a hand-written file.
        if _is_local(ref, self.prefixes) and ref not in self.declared:
            close = difflib.get_close_matches(ref, list(self.declared), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "add a node with this id"
            self.flag(f"{ref!r} is not the id of any node", offset, hint)
            return None
        return self.resolve(ref)

    def predicate(self, name: str, offset: int) -> IRI | None:
        node = self.resolve(name)
        if not isinstance(node, IRI):
            self.flag(f"predicate {name!r} must be an IRI, not a blank node", offset)
            return None
        return node

    def resolve(self, ref: str) -> Node:
        return _resolve(ref, self.base, self.prefixes)

    def strings(self, obj: _Obj, key: str) -> list[str]:
        value = obj.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        self.flag(f"{key!r} must be a string or a list of strings", self.key_offset(obj, key))
        return []


def parse_json(text: str, *, source: str | None = None) -> list[Triple]:
    """Triples from knowledge JSON text (``{"base": ..., "nodes": [...], "edges": [...]}``)."""
    return _JsonReader(text, source).read(_decode_json(text, source))


def read_json(path: PathLike) -> list[Triple]:
    """Triples from a knowledge JSON file: ``read_json("knowledge/banking.json")``."""
    return parse_json(_read_text(path), source=str(path))


# ---- the registry and load() -------------------------------------------------------------

LOADERS: dict[str, Callable[[Path], Iterable[Triple]]] = {
    "csv": read_csv,
    "json": read_json,
    "nt": read_ntriples,
    "ttl": read_turtle,
}
_EXTENSIONS = {
    ".nt": "nt",
    ".ntriples": "nt",
    ".ttl": "ttl",
    ".turtle": "ttl",
    ".csv": "csv",
    ".json": "json",
}


def guess_format(path: PathLike) -> str:
    """The format name for a file's extension (``.gz`` looked through): ``"nt"`` for ``x.nt.gz``."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    ext = suffixes[-1] if suffixes else ""
    if ext[1:] in LOADERS:  # a plugin format named after its extension
        return ext[1:]
    if ext not in _EXTENSIONS:
        raise UnknownComponentError("knowledge format for extension", ext or str(path), LOADERS)
    return _EXTENSIONS[ext]


def load(
    path: PathLike, format: str | None = None, *, store: TripleStore | None = None
) -> TripleStore:
    """Load a knowledge file into a (new or given) store: ``store = load("kb.ttl")``.

    ``format`` is a key of ``LOADERS``; without it the extension decides (``.gz`` allowed).
    """
    name = format or guess_format(path)
    reader = LOADERS.get(name)
    if reader is None:
        raise UnknownComponentError("knowledge format", name, LOADERS)
    target = store if store is not None else TripleStore()
    target.add_many(reader(Path(path)))
    return target


# ---- savers ------------------------------------------------------------------------------


def save_ntriples(
    triples: TripleStore | Iterable[Triple], path: PathLike, *, include_inferred: bool = True
) -> int:
    """Write sorted N-Triples (gzip for ``.gz``); returns the count: ``save_ntriples(store, p)``.

    Inferred triples are written too unless ``include_inferred=False``: a dump of a
    materialised graph is the usual reason to save N-Triples.
    """
    lines = sorted(
        f"{s.n3()} {p.n3()} {o.n3()} .\n" for s, p, o in _selected(triples, include_inferred)
    )
    with _open_text(path, "w") as handle:
        handle.writelines(lines)
    return len(lines)


def _selected(triples: TripleStore | Iterable[Triple], include_inferred: bool) -> Iterator[Triple]:
    if include_inferred or not isinstance(triples, TripleStore):
        return iter(triples)
    return (t for t in triples if not triples.is_inferred(*t))


def save_json(
    store: TripleStore, path: PathLike, *, base: str = DEFAULT_BASE, include_inferred: bool = False
) -> None:
    """Write the knowledge JSON shape: ``save_json(store, "kb.json", base="http://x.org/")``.

    Only asserted triples are written unless ``include_inferred``: JSON is the hand-edited
    format, and inferred triples would come back as assertions on the next load.
    """
    document = _JsonWriter(base).document(_selected(store, include_inferred))
    with _open_text(path, "w") as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


class _JsonWriter:
    """Groups triples by subject into nodes; IRI objects become edges, literals properties."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[dict[str, str]] = []

    def document(self, triples: Iterable[Triple]) -> dict[str, Any]:
        for triple in triples:
            self.add(triple)
        for edge in self.edges:  # targets that are local ids must be declared to load again
            if _is_local(edge["target"], _DEFAULT_PREFIXES):
                self.node(edge["target"])
        nodes = [self.nodes[key] for key in sorted(self.nodes)]
        edges = sorted(self.edges, key=lambda e: (e["source"], e["predicate"], e["target"]))
        return _finish({"base": self.base, "nodes": nodes, "edges": edges})

    def node(self, ident: str) -> dict[str, Any]:
        return self.nodes.setdefault(ident, {"id": ident})

    def add(self, triple: Triple) -> None:
        subject, predicate, obj = triple
        node = self.node(self.short(subject))
        if isinstance(obj, Literal):
            self.add_literal(node, predicate, obj)
        elif predicate == RDF.type and isinstance(obj, IRI):
            node.setdefault("type", []).append(self.short(obj))
            node["type"].sort()
        else:
            edge = {"source": node["id"], "predicate": self.short(predicate)}
            self.edges.append({**edge, "target": self.short(obj)})

    def add_literal(self, node: dict[str, Any], predicate: IRI, obj: Literal) -> None:
        plain = obj.datatype == XSD_STRING
        if predicate == RDFS.label and plain and "label" not in node:
            node["label"] = obj.lexical
        elif predicate == SKOS.altLabel and plain:
            node.setdefault("aliases", []).append(obj.lexical)
            node["aliases"].sort()
        else:
            values = node.setdefault("properties", {}).setdefault(self.short(predicate), [])
            values.append(self.json_value(obj))

    def json_value(self, obj: Literal) -> Any:
        if obj.lang is not None:
            return {"@value": obj.lexical, "@language": obj.lang}
        if obj.datatype in (XSD_STRING, XSD_INTEGER, XSD_DOUBLE, XSD_BOOLEAN):
            with contextlib.suppress(ValueError):
                value = obj.to_python()
                if isinstance(value, (str, int, float)) and Literal.from_python(value) == obj:
                    return value  # only when loading it back gives the very same literal
        return {"@value": obj.lexical, "@type": self.short(obj.datatype)}

    def short(self, term: Term) -> str:
        if isinstance(term, BNode):
            return "_:" + term.id
        value = str(term)
        rest = value[len(self.base) :] if value.startswith(self.base) else ""
        if rest and ":" not in rest:
            return rest
        for prefix, namespace in _DEFAULT_PREFIXES.items():
            local = value[len(namespace) :]
            if value.startswith(namespace) and local and re.fullmatch(r"[\w.-]+", local):
                return f"{prefix}:{local}"
        return value


def _finish(document: dict[str, Any]) -> dict[str, Any]:
    """Collapse one-element lists to scalars, which is how people write them."""
    for node in document["nodes"]:
        if len(node.get("type", ())) == 1:
            node["type"] = node["type"][0]
        for key, values in node.get("properties", {}).items():
            node["properties"][key] = values[0] if len(values) == 1 else values
    return document
