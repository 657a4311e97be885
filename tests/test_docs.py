"""Every ```python block of README.md and docs/*.md runs.

Convention (also stated in docs/embedding.md): the blocks of one file run in order in one
namespace, so a later block may use what an earlier one defined; each file starts fresh; the
working directory is the repository root. Top-level ``await`` is allowed (the block then runs
in ``asyncio.run``). Only blocks fenced as ```python (or ```py) run: ```text, ```yaml,
```bash and the rest are shown, not executed. A block whose first line is
``# doc: no-run`` is shown but not executed (for snippets that need the reader's own data).

Speed: ``Engine.from_yaml`` is memoised for the whole run (one warm engine per pipeline file,
shared by every doc that builds it; ``close()`` on it is a no-op until the session ends), so
the example pipelines' models warm up once, not once per document.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(\s*)```+\s*([\w+-]*)[^\n]*$")
RUNNABLE = {"python", "py"}


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language, first line number and source."""

    language: str
    line: int
    source: str


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/, found anew each run."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def blocks(text: str) -> Iterator[Block]:
    """The fenced blocks of a Markdown text, with the line their code starts on."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, language = match.group(1), match.group(2).lower()
        start = index + 1
        index = start
        while index < len(lines) and not lines[index].strip().startswith("```"):
            index += 1
        body = [line[len(indent):] if line.startswith(indent) else line
                for line in lines[start:index]]
        yield Block(language, start + 1, "\n".join(body) + "\n")
        index += 1


def run_block(block: Block, namespace: dict[str, Any], filename: str) -> None:
    """Execute one block in ``namespace``; top-level await runs in an event loop."""
    padded = "\n" * (block.line - 1) + block.source  # tracebacks point at the Markdown line
    code = compile(padded, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        coroutine = eval(code, namespace)
        asyncio.run(coroutine)
    else:
        exec(code, namespace)


def runnable(path: Path) -> list[Block]:
    """The blocks of ``path`` that the test executes."""
    found = blocks(path.read_text(encoding="utf-8"))
    return [b for b in found if b.language in RUNNABLE
            and not b.source.lstrip().startswith("# doc: no-run")]


def test_the_block_reader_skips_other_languages_and_no_run_blocks(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("a\n```python\nx = 1\n```\n```yaml\nk: v\n```\n```python\n# doc: no-run\n"
                   "boom()\n```\n  ```py\n  y = x + 1\n  ```\n", encoding="utf-8")
    found = runnable(doc)
    assert [(b.line, b.source) for b in found] == [(3, "x = 1\n"), (13, "y = x + 1\n")]
    namespace: dict[str, Any] = {}
    for block in found:
        run_block(block, namespace, str(doc))
    assert namespace["y"] == 2


@pytest.fixture(scope="module")
def shared_engines() -> Iterator[dict[Path, Any]]:
    """Memoise ``Engine.from_yaml`` by resolved path for this module's tests."""
    from hybrid_ai import Engine

    engines: dict[Path, Any] = {}
    original = Engine.__dict__["from_yaml"]

    def from_yaml(cls: type[Engine], path: str | Path, **kwargs: Any) -> Engine:
        key = Path(path).resolve()
        if kwargs or key not in engines:
            engine = original.__func__(cls, path, **kwargs)
            if kwargs:
                return engine  # type: ignore[no-any-return]
            engine.close = lambda: None  # shared: the module closes it at the end
            engines[key] = engine
        return engines[key]  # type: ignore[no-any-return]

    Engine.from_yaml = classmethod(from_yaml)  # type: ignore[assignment,method-assign]
    try:
        yield engines
    finally:
        Engine.from_yaml = original  # type: ignore[method-assign]
        for engine in engines.values():
            type(engine).close(engine)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs(path: Path, monkeypatch: pytest.MonkeyPatch,
                                 shared_engines: dict[Path, Any]) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": f"doc:{path.name}"}
    for block in runnable(path):
        where = f"{path.relative_to(ROOT)}:{block.line}"
        try:
            run_block(block, namespace, str(path))
        except Exception as exc:
            pytest.fail(f"the python block at {where} failed: {type(exc).__name__}: {exc}")
    assert os.getcwd() == str(ROOT)
