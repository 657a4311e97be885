"""``hybrid-ai kg``: load, inspect, infer over, query and explain knowledge files.

    hybrid-ai kg load knowledge/banking.json --output /tmp/banking.nt
    hybrid-ai kg stats onto.ttl data.nt.gz --json
    hybrid-ai kg infer onto.ttl data.nt.gz --rules my.rules --output closed.nt.gz
    hybrid-ai kg query onto.ttl data.nt.gz --query "SELECT ?x WHERE { ?x a ub:Student }"
    hybrid-ai kg path knowledge/banking.json --from card_arrival --to "Cards team" --all
    hybrid-ai kg explain "ex:alice a ex:Employee" onto.ttl data.ttl

Exit status: 0 done, 1 a file or query is invalid (the message gives file:line:col),
2 the command line is wrong, 3 nothing found (no path; the triple to explain is absent).
"""

from __future__ import annotations

import functools
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer

from .._errors import HybridAIError
from .._files import read_text
from ._cli_terms import TermResolver
from ._loaders import load, save_json, save_ntriples
from ._query import Query, all_simple_paths
from ._reasoner import Profile, Reasoner, ReasonerStats
from ._rules import Rule, parse_rules
from ._sparql import parse_sparql
from ._store import Triple, TripleStore
from ._terms import RDF, Literal

__all__ = ["app"]

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INVALID, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3

app = typer.Typer(name="kg", no_args_is_help=True, add_completion=False,
                  help="Load, infer over, query and explain knowledge graphs.")

FilesArg = typer.Argument(..., help="knowledge files (.nt .ttl .csv .json, optionally .gz)",
                          show_default=False)
JsonOpt = typer.Option(False, "--json", help="print JSON")
InferOpt = typer.Option(True, "--infer/--no-infer", help="materialize inferences first")
ProfileOpt = typer.Option("owl2rl", "--profile", help="inference profile: owl2rl or rdfs")
RulesOpt = typer.Option(None, "--rules", help="a file of user rules (RULE name {...} => {...})")
FormatOpt = typer.Option(None, "--format", help="force a loader: nt, ttl, csv or json")
PrefixOpt = typer.Option([], "--prefix", help="NAME=IRI for prefixed names (repeatable)")


class _NotFound(HybridAIError):
    """Nothing matched (exit status 3)."""


def _guarded(func: F) -> F:
    """hybrid-ai errors become a message on stderr and an exit status, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _NotFound as exc:
            typer.echo(f"not found: {exc}", err=True)
            raise typer.Exit(EXIT_NOT_FOUND) from None
        except HybridAIError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None

    return wrapper  # type: ignore[return-value]


def _usage(message: str) -> None:
    typer.echo(f"usage error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _load(files: Sequence[Path],
          fmt: str | None = None) -> tuple[TripleStore, list[dict[str, Any]]]:
    """One store from every file, with per-file counts of new triples."""
    store = TripleStore()
    report = []
    for path in files:
        before = len(store)
        start = time.perf_counter()
        load(path, fmt, store=store)
        report.append({"file": str(path), "triples": len(store) - before,
                       "seconds": round(time.perf_counter() - start, 4)})
    return store, report


def _rules(path: Path | None) -> list[Rule]:
    if path is None:
        return []
    return parse_rules(read_text(path, "rules file"), source=str(path))


def _reason(store: TripleStore, infer: bool, profile: str, rules_path: Path | None
            ) -> tuple[Reasoner | None, ReasonerStats | None]:
    if not infer:
        return None, None
    if profile not in ("owl2rl", "rdfs"):
        _usage(f"--profile must be owl2rl or rdfs, not {profile!r}")
    reasoner = Reasoner(store, profile=_profile(profile), rules=_rules(rules_path))
    return reasoner, reasoner.materialize()


def _profile(name: str) -> Profile:
    return "rdfs" if name == "rdfs" else "owl2rl"


def _emit(data: Any, as_json: bool, text: Callable[[], str]) -> None:
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else text())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _save(store: TripleStore, output: Path, include_inferred: bool) -> int:
    suffixes = [s.lower() for s in output.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] == ".json":
        save_json(store, output, include_inferred=include_inferred)
        return len(store) if include_inferred else store.asserted_count
    if not suffixes or suffixes[-1] not in (".nt", ".ntriples", ".ttl", ".turtle"):
        _usage(f"cannot save to {output}: use .nt, .ttl or .json (optionally .gz)")
    # N-Triples is valid Turtle, so .ttl gets the same lines.
    return save_ntriples(store, output, include_inferred=include_inferred)


# ---- load --------------------------------------------------------------------------------


@app.command("load")
@_guarded
def load_command(
    files: list[Path] = FilesArg,
    fmt: str | None = FormatOpt,
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="save the loaded triples (.nt .ttl .json, .gz)"),
    as_json: bool = JsonOpt,
) -> None:
    """Validate knowledge files and report counts; optionally save them in another format."""
    store, per_file = _load(files, fmt)
    data: dict[str, Any] = {"files": per_file, **_counts(store)}
    if output is not None:
        data["saved"] = {"file": str(output), "triples": _save(store, output, False)}

    def text() -> str:
        lines = [f"{f['file']}: {f['triples']:,} triples ({f['seconds']:.2f} s)" for f in per_file]
        lines.append(f"total: {data['triples']:,} triples, {data['subjects']:,} subjects, "
                     f"{data['predicates']:,} predicates, {data['literals']:,} literal objects")
        if output is not None:
            lines.append(f"saved {data['saved']['triples']:,} triples to {output}")
        return "\n".join(lines)

    _emit(data, as_json, text)


def _counts(store: TripleStore) -> dict[str, int]:
    is_literal = store.ids.is_literal
    literal_objects = sum(1 for _, _, o in store.match_ids() if is_literal(o))
    return {"triples": len(store), "subjects": len(store._spo),
            "predicates": len(store._pos), "literals": literal_objects}


# ---- stats -------------------------------------------------------------------------------


@app.command("stats")
@_guarded
def stats_command(
    files: list[Path] = FilesArg,
    infer: bool = InferOpt,
    profile: str = ProfileOpt,
    rules: Path | None = RulesOpt,
    top: int = typer.Option(10, "--top", min=1, help="how many predicates and classes to list"),
    as_json: bool = JsonOpt,
) -> None:
    """Triples asserted and inferred, the busiest predicates and classes, node degrees."""
    store, _ = _load(files)
    _reason(store, infer, profile, rules)
    data = _stats(store, top)
    _emit(data, as_json, lambda: _stats_text(data))


def _stats(store: TripleStore, top: int) -> dict[str, Any]:
    label = store.label
    by_pred = Counter({store.ids.term(p): sum(len(v) for v in objs.values())
                       for p, objs in store._pos.items()})
    type_id = store.ids.id_of(RDF.type)
    classes = Counter({store.ids.term(c): len(s)
                       for c, s in store._pos.get(type_id, {}).items()} if type_id is not None
                      else {})
    return {"triples": len(store), "asserted": store.asserted_count,
            "inferred": store.inferred_count, **_counts(store),
            "classes": len(classes),
            "top_predicates": [{"predicate": str(p), "label": label(p), "triples": n}
                               for p, n in by_pred.most_common(top)],
            "top_classes": [{"class": str(c), "label": label(c), "instances": n}
                            for c, n in classes.most_common(top)],
            "degree": _degrees(store)}


def _degrees(store: TripleStore) -> dict[str, dict[str, float]]:
    """Out- and in-degree summaries over nodes (literals excluded from in-degree)."""
    out = [sum(len(o) for o in by_p.values()) for by_p in store._spo.values()]
    is_literal = store.ids.is_literal
    into = [sum(len(p) for p in by_s.values()) for o, by_s in store._osp.items()
            if not is_literal(o)]
    return {"out": _summary(out), "in": _summary(into)}


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"nodes": 0, "min": 0, "median": 0, "mean": 0, "max": 0}
    return {"nodes": len(values), "min": min(values), "median": statistics.median(values),
            "mean": round(statistics.fmean(values), 3), "max": max(values)}


def _stats_text(data: dict[str, Any]) -> str:
    lines = [f"triples: {data['triples']:,} ({data['asserted']:,} asserted, "
             f"{data['inferred']:,} inferred)",
             f"subjects: {data['subjects']:,}  predicates: {data['predicates']:,}  "
             f"classes: {data['classes']:,}"]
    for way in ("out", "in"):
        d = data["degree"][way]
        lines.append(f"{way}-degree over {d['nodes']:,} nodes: min {d['min']}, median "
                     f"{d['median']}, mean {d['mean']}, max {d['max']}")
    lines += ["", _table(["predicate", "triples"], [(p["label"], f"{p['triples']:,}")
                                                     for p in data["top_predicates"]])]
    lines += ["", _table(["class", "instances"], [(c["label"], f"{c['instances']:,}")
                                                  for c in data["top_classes"]])]
    return "\n".join(lines)


# ---- infer -------------------------------------------------------------------------------


@app.command("infer")
@_guarded
def infer_command(
    files: list[Path] = FilesArg,
    profile: str = ProfileOpt,
    rules: Path | None = RulesOpt,
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="save asserted + inferred triples (.nt .ttl .json)"),
    as_json: bool = JsonOpt,
) -> None:
    """Materialize inferences; report rounds, time and new triples per rule."""
    store, _ = _load(files)
    asserted = len(store)
    _, stats = _reason(store, True, profile, rules)
    assert stats is not None
    data: dict[str, Any] = {"asserted": asserted, "inferred": stats.inferred,
                            "triples": len(store), "rounds": stats.rounds,
                            "seconds": round(stats.seconds, 4),
                            "per_rule": dict(sorted(stats.per_rule.items()))}
    if output is not None:
        data["saved"] = {"file": str(output), "triples": _save(store, output, True)}

    def text() -> str:
        lines = [f"{asserted:,} asserted + {stats.inferred:,} inferred = {len(store):,} triples "
                 f"in {stats.rounds} rounds, {stats.seconds:.2f} s"]
        lines += [f"  {rule:<10} {n:>10,}" for rule, n in data["per_rule"].items()]
        if output is not None:
            lines.append(f"saved {data['saved']['triples']:,} triples to {output}")
        return "\n".join(lines)

    _emit(data, as_json, text)


# ---- query -------------------------------------------------------------------------------


@app.command("query")
@_guarded
def query_command(
    files: list[Path] = FilesArg,
    query: str | None = typer.Option(None, "--query", "-q", help="SPARQL SELECT text"),
    query_file: Path | None = typer.Option(None, "--query-file", "-f", help="a .rq file"),
    infer: bool = InferOpt,
    profile: str = ProfileOpt,
    rules: Path | None = RulesOpt,
    limit: int | None = typer.Option(None, "--limit", min=0, help="at most this many rows"),
    plan: bool = typer.Option(False, "--plan", help="also print the join order chosen"),
    as_json: bool = JsonOpt,
) -> None:
    """Answer a SPARQL subset query (SELECT, basic graph patterns, FILTER)."""
    parsed = _parse_query(query, query_file)
    store, _ = _load(files)
    _reason(store, infer, profile, rules)
    start = time.perf_counter()
    rows = parsed.run(store, limit=limit)
    seconds = time.perf_counter() - start
    names = parsed.select if parsed.select is not None else parsed.variables()
    data: dict[str, Any] = {"variables": names, "count": len(rows), "seconds": round(seconds, 5),
                            "rows": [{n: _cell(t) for n, t in zip(names, row, strict=True)}
                                     for row in rows]}
    if plan:
        data["plan"] = [" ".join(_slot_text(s) for s in p) for p in parsed.explain_plan(store)]

    def text() -> str:
        table = _table(names, [[_show(t, store) for t in row] for row in rows])
        extra = ["", "plan:", *(f"  {i + 1}. {p}" for i, p in enumerate(data["plan"]))] if plan \
            else []
        return "\n".join([table, f"({len(rows)} rows, {seconds:.3f} s)", *extra])

    _emit(data, as_json, text)


def _parse_query(query: str | None, query_file: Path | None) -> Query:
    if (query is None) == (query_file is None):
        _usage("give exactly one of --query TEXT or --query-file FILE")
    if query_file is not None:
        return parse_sparql(read_text(query_file, "query file"), source=str(query_file))
    return parse_sparql(str(query), source="--query")


def _cell(term: Any) -> Any:
    return term.scalar() if isinstance(term, Literal) else str(term)


def _show(term: Any, store: TripleStore) -> str:
    return term.lexical if isinstance(term, Literal) else store.label(term)


def _slot_text(slot: Any) -> str:
    return str(slot) if not hasattr(slot, "n3") else slot.n3()


# ---- path --------------------------------------------------------------------------------


@app.command("path")
@_guarded
def path_command(
    files: list[Path] = FilesArg,
    source: str = typer.Option(..., "--from", help="start node: IRI, prefixed name, id or label"),
    target: str = typer.Option(..., "--to", help="end node: IRI, prefixed name, id or label"),
    via: list[str] = typer.Option([], "--via", help="only follow this predicate (repeatable)"),
    max_length: int = typer.Option(4, "--max-length", min=1, help="most edges on a path"),
    all_paths: bool = typer.Option(False, "--all", help="every simple path, not one shortest"),
    undirected: bool = typer.Option(False, "--undirected",
                                    help="also walk edges backwards (shortest only)"),
    infer: bool = InferOpt,
    profile: str = ProfileOpt,
    prefix: list[str] = PrefixOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Shortest (or all simple) paths between two nodes, with optional predicate limits."""
    if all_paths and undirected:
        _usage("--all follows edges forwards only; drop --undirected or --all")
    store, _ = _load(files)
    _reason(store, infer, profile, None)
    terms = TermResolver(store, prefix)
    start, goal = terms.node(source, "--from"), terms.node(target, "--to")
    predicates = [terms.predicate(v, "--via") for v in via] or None
    if all_paths:
        paths = all_simple_paths(store, start, goal, predicates, max_len=max_length)
    else:
        one = store.shortest_path(start, goal, predicates=predicates, directed=not undirected)
        paths = [one] if one is not None and len(one) <= max_length else []
    if not paths:
        raise _NotFound(f"no path from {store.label(start)} to {store.label(goal)} within "
                        f"{max_length} edges" + (f" via {', '.join(via)}" if via else ""))
    data = {"from": str(start), "to": str(goal),
            "paths": [[_step(store, t) for t in path] for path in paths]}
    _emit(data, as_json, lambda: _paths_text(store, paths))


def _step(store: TripleStore, triple: Triple) -> dict[str, Any]:
    return {"subject": str(triple.subject), "predicate": str(triple.predicate),
            "object": str(triple.object), "inferred": store.is_inferred(*triple),
            "text": f"{store.label(triple.subject)} -{store.label(triple.predicate)}-> "
                    f"{store.label(triple.object)}"}


def _paths_text(store: TripleStore, paths: list[list[Triple]]) -> str:
    lines = []
    for i, path in enumerate(paths, start=1):
        hops = [store.label(path[0].subject)] if path else []
        for t in path:
            mark = "*" if store.is_inferred(*t) else ""
            hops.append(f"-{store.label(t.predicate)}{mark}-> {store.label(t.object)}")
        edges = f"{len(path)} edge" + ("s" if len(path) != 1 else "")
        lines.append(f"{i}. ({edges}) " + " ".join(hops))
    if any(store.is_inferred(*t) for p in paths for t in p):
        lines.append("(* inferred edge: see `hybrid-ai kg explain`)")
    return "\n".join(lines)


# ---- explain -----------------------------------------------------------------------------


@app.command("explain")
@_guarded
def explain_command(
    triple: str = typer.Argument(..., help='the triple: "<s> <p> <o>", "ex:a a ex:B" or labels'),
    files: list[Path] = FilesArg,
    profile: str = ProfileOpt,
    rules: Path | None = RulesOpt,
    prefix: list[str] = PrefixOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Why a triple holds: its derivation tree down to asserted triples, in words."""
    store, _ = _load(files)
    reasoner, _ = _reason(store, True, profile, rules)
    assert reasoner is not None
    wanted = TermResolver(store, prefix).triple(triple)
    if wanted not in store:
        raise _NotFound(f"{' '.join(t.n3() for t in wanted)} is neither asserted nor inferred")
    derivation = reasoner.explain(wanted)
    data = {"inferred": store.is_inferred(*wanted), **derivation.to_dict(store)}
    _emit(data, as_json, lambda: "\n".join(derivation.readable(store)))
