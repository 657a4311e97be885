"""``hybrid-ai rules ...``: check, test, explain and watch rule files.

    hybrid-ai rules check rules/ --pipeline examples/support-triage/pipeline.yaml
    hybrid-ai rules test rules/support_triage.tests.yaml
    hybrid-ai rules explain rules/support_triage.yaml --facts facts.json --rule route_by_knowledge
    hybrid-ai rules watch rules/ --interval 1

Exit status: 0 when all is well, 1 when ``check`` found an error (with ``--strict`` a warning
too) or a test failed, 2 when a file could not be read or is not valid.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from .._errors import ConfigError, HybridAIError
from .._plugins import _ACTIVE, Plugins
from .._yaml import load_yaml_file
from ._casetests import TestReport, find_tests, run_tests
from ._check import LintReport, check_paths, rule_files
from ._explain import explain_rules

__all__ = ["app", "watch_paths"]

app = typer.Typer(name="rules", no_args_is_help=True, add_completion=False,
                  help="Author rule files: check (lint), test, explain, watch.")

JsonOpt = typer.Option(False, "--json", help="print JSON")
PluginOpt = typer.Option([], "--plugin", "-p",
                         help="plugin module whose rule functions the rules call (repeatable)")
TrustOpt = typer.Option(False, "--trust-code", help="let the --pipeline's `plugins:` import "
                        "modules kept beside it (only for code you trust)")


@contextmanager
def _plugins(modules: Sequence[str]) -> Iterator[None]:
    """Make plugin modules' rule functions visible to every rule file loaded meanwhile."""
    if not modules:
        yield
        return
    try:
        plugins = Plugins.default().with_modules(list(modules), search=[Path.cwd()])
    except HybridAIError as exc:
        _problem(exc)
    token = _ACTIVE.set(plugins)  # what a pipeline's graph does with its own `plugins:`
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _problem(exc: HybridAIError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _dump(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def check(
    paths: list[Path] = typer.Argument(None, help="rule files or directories (default: "
                                       "those the --pipeline's rules stages read)",
                                       show_default=False),
    pipeline: Path | None = typer.Option(None, "--pipeline",
                                         help="pipeline whose stages make the facts rules read"),
    kind: list[str] = typer.Option([], "--kind", help="a fact kind made outside (repeatable)"),
    strict: bool = typer.Option(False, "--strict", help="warnings fail the check too"),
    notes: bool = typer.Option(False, "--notes", help="also print notes (severity info)"),
    as_json: bool = JsonOpt,
    plugin: list[str] = PluginOpt,
    trust_code: bool = TrustOpt,
) -> None:
    """Parse, type-check and lint rule files; exit status 1 on errors."""
    if not paths and pipeline is None:
        typer.echo("error: name rule files or directories, or a --pipeline", err=True)
        raise typer.Exit(2)
    with _plugins(plugin):
        report = check_paths(paths or [], pipeline=pipeline, kinds=kind, trust_code=trust_code)
    _dump(report.to_dict()) if as_json else typer.echo(report.text(notes))
    raise typer.Exit(_check_status(report, strict))


def _check_status(report: LintReport, strict: bool) -> int:
    failing = ("error", "warning") if strict else ("error",)
    return 1 if any(f.severity in failing for f in report.findings) else 0


@app.command()
def test(
    path: Path = typer.Argument(..., help="a .tests.yaml file, a rule file next to one, or a "
                                "directory", show_default=False),
    as_json: bool = JsonOpt,
    plugin: list[str] = PluginOpt,
) -> None:
    """Run rule test cases; print pass/fail with diffs and the rules no case fired."""
    try:
        with _plugins(plugin):
            reports = [run_tests(p) for p in find_tests(path)]
    except HybridAIError as exc:
        _problem(exc)
    if as_json:
        _dump([r.to_dict() for r in reports])
    else:
        typer.echo("\n".join(r.text() for r in reports) or f"{path}: no tests files found")
    raise typer.Exit(0 if reports and all(r.passed for r in reports) else 1)


@app.command()
def explain(
    rules: Path = typer.Argument(..., help="rule file", show_default=False),
    facts: Path = typer.Option(..., "--facts", help='JSON: {"text", "fields", "facts": '
                               '{KIND: {...} or [{...}]}}', show_default=False),
    rule: str | None = typer.Option(None, "--rule", help="explain only this rule"),
    as_json: bool = JsonOpt,
    plugin: list[str] = PluginOpt,
) -> None:
    """Why each rule fired (with bindings), or why one did not (the condition that failed)."""
    try:
        given = json.loads(facts.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _problem(ConfigError(f"cannot read facts from {facts}: {exc}"))
    if not isinstance(given, dict):
        _problem(ConfigError(f"{facts}: expected a JSON object with text, fields and facts"))
    try:
        with _plugins(plugin):
            result = explain_rules(rules, given, rule)
    except HybridAIError as exc:
        _problem(exc)
    _dump(result.to_dict()) if as_json else typer.echo(result.text())


@app.command()
def watch(
    paths: list[Path] = typer.Argument(..., help="rule / tests files or directories",
                                       show_default=False),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="seconds between polls"),
    once: bool = typer.Option(False, "--once", help="check and test once, then exit"),
    max_iterations: int | None = typer.Option(None, "--max-iterations", min=1,
                                              help="stop after this many polls"),
    pipeline: Path | None = typer.Option(None, "--pipeline", help="as for check"),
    plugin: list[str] = PluginOpt,
    trust_code: bool = TrustOpt,
) -> None:
    """Re-run check and the tests whenever a watched file changes (polls mtimes)."""
    with _plugins(plugin):
        status = watch_paths(paths, interval=interval, trust_code=trust_code,
                             max_iterations=1 if once else max_iterations, pipeline=pipeline)
    raise typer.Exit(status)


def _is_tests(path: Path) -> bool:
    return path.name.endswith((".tests.yaml", ".tests.yml"))


def _rules_to_check(paths: Sequence[Path]) -> list[Path]:
    files = [p for p in rule_files(paths) if not _is_tests(p)]
    for tests in _tests_for(paths):
        try:
            raw = load_yaml_file(tests)
        except HybridAIError:
            continue
        named = raw.get("rules") if isinstance(raw, dict) else None
        if isinstance(named, str) and (tests.parent / named) not in files:
            files.append(tests.parent / named)
    return files


def _watched(paths: Sequence[Path]) -> list[Path]:
    return sorted({*_rules_to_check(paths), *_tests_for(paths)})


def _stamp(files: Iterable[Path]) -> dict[Path, tuple[int, int]]:
    out = {}
    for path in files:
        try:
            info = path.stat()
            out[path] = (info.st_mtime_ns, info.st_size)
        except OSError:
            out[path] = (-1, -1)  # gone: coming back counts as a change
    return out


def _round(paths: Sequence[Path], pipeline: Path | None, echo: Callable[[str], None],
           trust_code: bool = False) -> int:
    report = check_paths(_rules_to_check(paths), pipeline=pipeline, trust_code=trust_code)
    echo(report.text(notes=False))
    status = _check_status(report, strict=False)
    for test_file in _tests_for(paths):
        try:
            result: TestReport = run_tests(test_file)
        except HybridAIError as exc:
            echo(f"error: {exc}")
            status = 1
            continue
        echo(result.text())
        status = status or (0 if result.passed else 1)
    return status


def _tests_for(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        try:
            found += [p for p in find_tests(path) if p not in found]
        except ConfigError:
            continue  # a rule file without tests is still checked
    return found


def watch_paths(paths: Sequence[Path | str], *, interval: float = 1.0,
                max_iterations: int | None = None, pipeline: Path | None = None,
                echo: Callable[[str], None] = typer.echo,
                sleep: Callable[[float], None] = time.sleep, trust_code: bool = False) -> int:
    """Check and test now, then again after every change; returns the last round's status.

    ``max_iterations`` bounds the polls (1: run once); None polls until interrupted.
    """
    roots = [Path(p) for p in paths]
    seen = _stamp(_watched(roots))
    status = _round(roots, pipeline, echo, trust_code)
    polls = 1
    while max_iterations is None or polls < max_iterations:
        sleep(interval)
        polls += 1
        now = _stamp(_watched(roots))
        if now != seen:
            changed = sorted(str(p) for p in set(now) | set(seen) if now.get(p) != seen.get(p))
            echo(f"--- changed: {', '.join(changed)}")
            seen = now
            status = _round(roots, pipeline, echo, trust_code)
    return status
