"""Commands: run, batch, validate, plan, plugins, schema (and whatever plugins add)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer

from .._config import PipelineSpec, read_pipeline
from .._engine import Engine
from .._errors import ConfigError, HybridAIError, InputError
from .._plugins import Plugins
from .._result import Result
from ._io import Record, parse_case_json, read_jsonl

__all__ = ["app", "main"]

app = typer.Typer(name="hybrid-ai", no_args_is_help=True, add_completion=False,
                  help="Run and inspect hybrid-ai pipelines.")
F = TypeVar("F", bound=Callable[..., Any])

PipelineArg = typer.Argument(..., help="pipeline YAML file", show_default=False)
PluginOpt = typer.Option([], "--plugin", "-p", help="plugin module to load (repeatable)")
TrustOpt = typer.Option(False, "--trust-code", help="let the pipeline's `plugins:` import "
                        "modules kept beside it (only for code you trust)")


def _fail(exc: BaseException, code: int = 1) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code)


def _engine(pipeline: Path, plugins: Sequence[str], trust_code: bool = False) -> Engine:
    spec = read_pipeline(pipeline, trust_code=trust_code)
    spec.plugins.extend(p for p in plugins if p not in spec.plugins)
    return Engine(spec)


def guarded(func: F) -> F:
    """Turn hybrid-ai errors into a message on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HybridAIError as exc:
            _fail(exc)

    return wrapper  # type: ignore[return-value]


def _print_result(result: Result, as_json: bool, explain: bool) -> None:
    if as_json:
        data = result.explain().to_dict() if explain else result.to_dict()
        typer.echo(json.dumps(data, default=str))
    elif explain:
        typer.echo(result.explain().text())
    else:
        conf = f"{result.confidence:.2f}" if result.confidence is not None else "-"
        status = result.decision if result.ok else f"FAILED: {result.error}"
        typer.echo(f"{result.case.id}\t{status}\t{conf}")


@app.command()
@guarded
def run(
    pipeline: Path = PipelineArg,
    text: str | None = typer.Option(None, "--text", "-t", help="the case's text"),
    input: str | None = typer.Option(None, "--input", "-i", help="one case as JSON"),
    file: Path | None = typer.Option(None, "--file", "-f", help="cases as JSON Lines"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    explain: bool = typer.Option(False, "--explain", help="print each explanation"),
    plugin: list[str] = PluginOpt,
    trust_code: bool = TrustOpt,
) -> None:
    """Run cases through a pipeline and print each decision."""
    given = [x for x in (text, input, file) if x is not None]
    if len(given) != 1:
        _fail(HybridAIError("give exactly one of --text, --input or --file"), 2)
    with _engine(pipeline, plugin, trust_code) as engine:
        if file is not None:
            failed = _run_file(engine, file, as_json, explain)
            raise typer.Exit(1 if failed else 0)
        case = text if text is not None else parse_case_json(str(input))
        result = engine.run(case, errors="return")
        _print_result(result, as_json, explain)
        raise typer.Exit(0 if result.ok else 1)


def _run_file(engine: Engine, file: Path, as_json: bool, explain: bool) -> int:
    records = list(read_jsonl(file))
    results = _results(engine, records, progress=False)
    for record, result in zip(records, results, strict=True):
        if explain and not as_json:
            typer.echo(f"--- {file}:{record.line}")
        _print_result(result, as_json, explain)
    return sum(not r.ok for r in results)


def _results(engine: Engine, records: list[Record], progress: bool,
             concurrency: int = 4) -> list[Result]:
    good = [r for r in records if r.error is None]
    ran = iter(engine.run_batch([r.case for r in good], concurrency=concurrency,
                                progress=progress))
    out = []
    for record in records:
        if record.error is None:
            out.append(next(ran))
        else:
            out.append(_error_result(engine, record))
    return out


def _error_result(engine: Engine, record: Record) -> Result:
    from .._facts import Case

    return Result(Case(id=record.case_id or f"line-{record.line}"), (), (), engine.name,
                  engine.version, record.error)


@app.command()
@guarded
def batch(
    pipeline: Path = PipelineArg,
    input: Path = typer.Option(..., "--input", "-i", help="cases as JSON Lines"),
    output: Path = typer.Option(..., "--output", "-o", help="results as JSON Lines"),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    plugin: list[str] = PluginOpt,
    trust_code: bool = TrustOpt,
) -> None:
    """Run a JSON Lines file; every input line gets one output row, failures included.
    Exit status 1 when any record failed."""
    records = list(read_jsonl(input))
    part = _writable(output, input)
    try:
        with _engine(pipeline, plugin, trust_code) as engine:
            results = _results(engine, records, progress, concurrency)
        with part.open("w", encoding="utf-8") as handle:
            for record, result in zip(records, results, strict=True):
                handle.write(json.dumps({"line": record.line, **result.to_dict()},
                                        default=str) + "\n")
        part.replace(output)  # whole or not at all: a failed run leaves an old output intact
    finally:
        part.unlink(missing_ok=True)
    failed = sum(not r.ok for r in results)
    typer.echo(f"{len(results)} record(s), {failed} failed -> {output}", err=True)
    raise typer.Exit(1 if failed else 0)


def _writable(output: Path, source: Path) -> Path:
    """Where the rows are written before they replace ``output``; checked before any work."""
    if output.resolve() == source.resolve():
        raise InputError(f"--output {output} would overwrite --input; choose another file")
    part = output.with_name(output.name + ".part")
    try:
        part.touch()
    except OSError as exc:
        raise InputError(f"cannot write --output {output}: {exc.strerror}; check that its "
                         "folder exists and is writable") from None
    return part


@app.command()
def validate(pipeline: Path = PipelineArg, plugin: list[str] = PluginOpt,
             trust_code: bool = TrustOpt) -> None:
    """Check a pipeline file: every problem is listed with file:line; exit status 1 if any."""
    try:
        engine = _engine(pipeline, plugin, trust_code)
    except ConfigError as exc:
        if not exc.problems:  # e.g. the file cannot be read: the message says it all
            _fail(exc)
        typer.echo(f"{pipeline}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from None
    except HybridAIError as exc:
        _fail(exc)
    typer.echo(f"{pipeline}: ok ({len(engine.graph.stages())} stages)")
    engine.close()


@app.command()
@guarded
def plan(pipeline: Path = PipelineArg, as_json: bool = typer.Option(False, "--json"),
         plugin: list[str] = PluginOpt, trust_code: bool = TrustOpt) -> None:
    """Show run order, parallel groups, route conditions and cascade thresholds."""
    with _engine(pipeline, plugin, trust_code) as engine:
        if as_json:
            typer.echo(json.dumps(engine.graph.plan(), indent=2, default=str))
        else:
            typer.echo(engine.explain_plan())


@app.command()
@guarded
def plugins(as_json: bool = typer.Option(False, "--json")) -> None:
    """List installed plugins, their distributions and what they provide."""
    infos = Plugins.default().info()
    if as_json:
        typer.echo(json.dumps([i.__dict__ for i in infos], indent=2, default=list))
        return
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "(local)"
        typer.echo(f"{info.name}  [{dist}]")
        for kind, names in info.provides.items():
            typer.echo(f"    {kind}: {', '.join(names)}")


@app.command()
def schema() -> None:
    """Print the JSON schema of pipeline files (for editors)."""
    typer.echo(json.dumps(PipelineSpec.model_json_schema(by_alias=True), indent=2))


def _add_plugin_commands() -> None:
    try:
        commands = Plugins.default().cli_commands.items()
    except HybridAIError as exc:
        typer.echo(f"warning: plugin commands unavailable: {exc}", err=True)
        return
    for name, command in commands:
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)


def main() -> None:
    """Entry point of the ``hybrid-ai`` script."""
    _add_plugin_commands()
    app(prog_name="hybrid-ai")


if __name__ == "__main__":  # pragma: no cover
    main()
