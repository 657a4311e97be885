"""LUBM(1): materialization and the 14 LUBM queries, ours against owlrl and reasonable.

Usage::

    .venv/bin/python benchmarks/kg.py                 # readable table (about 3 min with owlrl)
    .venv/bin/python benchmarks/kg.py --json          # one JSON object: machine, raw, ratios
    .venv/bin/python benchmarks/kg.py --no-owlrl      # skip the slow peer (about 1 min)
    .venv/bin/python benchmarks/kg.py --scale 20      # ours only: 20 renamed LUBM(1) copies

``--scale N`` builds an LUBM(N)-like graph of N universities: copy k of LUBM(1) renames every
``UniversityD`` to ``University((D + k) mod 1000)``, so copy k's home university is
University{k} and the copies share the "degree from" universities as LUBM(N) does. It reports
load, materialize and query times with the peak memory (ru_maxrss) of the process, so run it
alone: nothing else is measured in that process.

Workload: ../shared/data/lubm (lubm1.nt.gz + univ-bench.ttl, 100,836 triples). For each system
we time loading and materialization separately; ratios are over materialization time.

- ours: ``load`` into a TripleStore, ``Reasoner(store).materialize()`` (OWL 2 RL subset), then
  the 14 queries of lubm-queries.rq parsed by ``parse_sparql`` and run by our query engine.
- reasonable (Rust OWL 2 RL): ``PyReasoner.load_file`` on the ontology and on the data
  (decompressed once to a temporary file), ``reason()``.
- owlrl (pure Python OWL 2 RL on rdflib): ``Graph.parse`` then
  ``DeductiveClosure(OWLRL_Semantics).expand``; run once (it takes about a minute and a half).
- pyoxigraph answers the 14 queries on each peer's output (and on ours, as a cross-check of
  our query engine), so every system's correctness is judged by the same SPARQL engine.

Ours and reasonable alternate for ``--rounds`` rounds (median reported), order flipped every
round, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import hybrid_ai
from hybrid_ai.kg import Query, Reasoner, TripleStore, load, parse_sparql

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "lubm"
DATA_NT, ONTOLOGY = DATA / "lubm1.nt.gz", DATA / "univ-bench.ttl"
QUERIES = DATA / "lubm-queries.rq"
GOAL_RATIO = 1.0  # issue #4: materialization at most 1.0x the time of reasonable


def read_queries() -> list[tuple[str, int, str]]:
    """(name, expected count, SPARQL text) for Q1..Q14."""
    parts = re.split(r"^#@ (Q\d+) EXPECTED=(\d+)\n", QUERIES.read_text("utf-8"), flags=re.M)
    return [(parts[i], int(parts[i + 1]), parts[i + 2]) for i in range(1, len(parts), 3)]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# ---- ours --------------------------------------------------------------------------------


def run_ours(queries: list[tuple[str, int, str]]) -> dict[str, Any]:
    def load_all() -> TripleStore:
        store = load(DATA_NT)
        return load(ONTOLOGY, store=store)

    store, load_s = timed(load_all)
    asserted = len(store)
    stats, _ = timed(Reasoner(store).materialize)
    answers = answer_ours(store, queries)
    return {"load_s": load_s, "materialize_s": stats.seconds, "asserted": asserted,
            "triples_after": len(store), "rounds": stats.rounds, "per_rule": stats.per_rule,
            "queries": answers, "store": store}


def answer_ours(store: TripleStore, queries: list[tuple[str, int, str]]) -> dict[str, Any]:
    parsed: list[tuple[str, Query]] = [(n, parse_sparql(t, source=n)) for n, _, t in queries]
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for name, query in parsed:
        counts[name], seconds[name] = timed(partial(query.count, store))
    return summarize(counts, seconds, queries)


def summarize(counts: dict[str, int], seconds: dict[str, float],
              queries: list[tuple[str, int, str]]) -> dict[str, Any]:
    correct = [name for name, expected, _ in queries if counts.get(name) == expected]
    return {"counts": counts, "correct": len(correct), "of": len(queries),
            "wrong": [n for n, _, _ in queries if n not in correct],
            "total_s": sum(seconds.values()), "seconds": seconds}


# ---- peers -------------------------------------------------------------------------------


def run_reasonable(plain_nt: Path) -> dict[str, Any]:
    import reasonable  # type: ignore[import-untyped]

    def load_all() -> Any:
        r = reasonable.PyReasoner()
        r.load_file(str(ONTOLOGY))
        r.load_file(str(plain_nt))
        return r

    reasoner, load_s = timed(load_all)
    triples, reason_s = timed(reasoner.reason)
    return {"load_s": load_s, "materialize_s": reason_s, "triples_after": len(triples),
            "output": triples}


def run_owlrl() -> dict[str, Any]:
    import owlrl  # type: ignore[import-untyped]
    import rdflib

    def load_all() -> Any:
        graph = rdflib.Graph()
        graph.parse(str(ONTOLOGY), format="turtle")
        with gzip.open(DATA_NT, "rb") as handle:
            graph.parse(data=handle.read(), format="nt")
        return graph

    graph, load_s = timed(load_all)
    asserted = len(graph)
    _, reason_s = timed(lambda: owlrl.DeductiveClosure(owlrl.OWLRL_Semantics).expand(graph))
    return {"load_s": load_s, "materialize_s": reason_s, "asserted": asserted,
            "triples_after": len(graph), "output": graph}


def oxigraph_answers(lines: Iterable[str], queries: list[tuple[str, int, str]]) -> dict[str, Any]:
    """Count each query's answers with pyoxigraph over N-Triples lines."""
    import pyoxigraph

    store = pyoxigraph.Store()
    store.bulk_load("\n".join(lines).encode("utf-8"), pyoxigraph.RdfFormat.N_TRIPLES)
    counts: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for name, _, text in queries:
        counts[name], seconds[name] = timed(partial(count_rows, store, text))
    return summarize(counts, seconds, queries)


def count_rows(store: Any, text: str) -> int:
    return sum(1 for _ in store.query(text))


def ours_as_nt(store: TripleStore) -> Iterable[str]:
    return (f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in store.triples())


def rdflib_as_nt(triples: Iterable[tuple[Any, Any, Any]]) -> Iterable[str]:
    # owlrl derives literal-subject triples, which N-Triples cannot hold: they are left out.
    import rdflib

    return (f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in triples
            if not isinstance(s, rdflib.Literal))


# ---- the run -----------------------------------------------------------------------------


def peer_available(module: str) -> str | None:
    try:
        __import__(module)
    except ImportError as exc:
        return f"not installed: {exc}"
    return None


def benchmark(rounds: int, with_owlrl: bool) -> dict[str, Any]:
    queries = read_queries()
    missing = {m: why for m in ("reasonable", "pyoxigraph", "owlrl")
               if (why := peer_available(m)) is not None}
    tmp = Path(tempfile.mkdtemp(prefix="lubm-"))
    plain_nt = tmp / "lubm1.ttl"  # N-Triples is Turtle; reasonable picks its parser by suffix
    with gzip.open(DATA_NT, "rb") as src, plain_nt.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    ours_runs: list[dict[str, Any]] = []
    peer_runs: list[dict[str, Any]] = []
    try:
        for i in range(rounds):
            order = ("ours", "reasonable") if i % 2 == 0 else ("reasonable", "ours")
            for who in order:
                if who == "ours":
                    ours_runs.append(run_ours(queries))
                elif "reasonable" not in missing:
                    peer_runs.append(run_reasonable(plain_nt))
        report = assemble(ours_runs, peer_runs, queries, missing)
        if with_owlrl and "owlrl" not in missing:
            report["owlrl"] = owlrl_report(queries, missing)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    add_ratios(report)
    return report


def incremental_check(store: TripleStore, count: int = 50) -> dict[str, Any]:
    """DRed removal and re-adding of asserted triples, each checked against recomputation."""
    asserted = sorted(t for t in store.match_ids() if not store.is_inferred_ids(*t))
    doomed = [store._triple(t) for t in random.Random(0).sample(asserted, count)]
    reasoner = Reasoner(store)
    reasoner.materialize()
    original = set(store.triples())
    removed = reasoner.remove(doomed)
    after_remove = set(store.triples())
    scratch = load(ONTOLOGY, store=load(DATA_NT))
    for t in doomed:
        scratch.remove(*t)
    Reasoner(scratch).materialize()
    added = reasoner.add(doomed)
    return {"triples": count, "remove_s": removed.seconds,
            "remove_equals_recomputation": after_remove == set(scratch.triples()),
            "add_back_s": added.seconds,
            "add_back_equals_original": set(store.triples()) == original}


def assemble(ours_runs: list[dict[str, Any]], peer_runs: list[dict[str, Any]],
             queries: list[tuple[str, int, str]], missing: dict[str, str]) -> dict[str, Any]:
    last = ours_runs[-1]
    ours = {k: v for k, v in last.items() if k != "store"}
    ours["materialize_runs_s"] = [r["materialize_s"] for r in ours_runs]
    ours["materialize_s"] = statistics.median(ours["materialize_runs_s"])
    ours["load_s"] = statistics.median(r["load_s"] for r in ours_runs)
    ours["query_total_runs_s"] = [r["queries"]["total_s"] for r in ours_runs]
    report: dict[str, Any] = {"ours": ours, "missing_peers": missing}
    if "pyoxigraph" not in missing:
        report["ours"]["oxigraph_check"] = oxigraph_answers(ours_as_nt(last["store"]), queries)
    report["ours"]["incremental"] = incremental_check(last["store"])
    if peer_runs:
        peer = {k: v for k, v in peer_runs[-1].items() if k != "output"}
        peer["materialize_runs_s"] = [r["materialize_s"] for r in peer_runs]
        peer["materialize_s"] = statistics.median(peer["materialize_runs_s"])
        peer["load_s"] = statistics.median(r["load_s"] for r in peer_runs)
        if "pyoxigraph" not in missing:
            peer["queries"] = oxigraph_answers(rdflib_as_nt(peer_runs[-1]["output"]), queries)
        report["reasonable"] = peer
    return report


def owlrl_report(queries: list[tuple[str, int, str]], missing: dict[str, str]) -> dict[str, Any]:
    run = run_owlrl()
    result = {k: v for k, v in run.items() if k != "output"}
    if "pyoxigraph" not in missing:
        result["queries"] = oxigraph_answers(rdflib_as_nt(run["output"]), queries)
    return result


def add_ratios(report: dict[str, Any]) -> None:
    ours = report["ours"]["materialize_s"]
    ratios: dict[str, Any] = {}
    for peer in ("reasonable", "owlrl"):
        if peer in report:
            ratios[f"materialize_ours_over_{peer}"] = ours / report[peer]["materialize_s"]
            ratios[f"load_plus_materialize_ours_over_{peer}"] = (
                (ours + report["ours"]["load_s"])
                / (report[peer]["materialize_s"] + report[peer]["load_s"]))
    if "reasonable" in report:
        ratios["goal"] = f"materialization <= {GOAL_RATIO}x reasonable"
        ratios["goal_met"] = ratios["materialize_ours_over_reasonable"] <= GOAL_RATIO
    report["ratios"] = ratios


# ---- output ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    try:
        loadavg: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        loadavg = None
    versions: dict[str, str] = {}
    for module in ("reasonable", "owlrl", "rdflib", "pyoxigraph"):
        try:
            versions[module] = str(getattr(__import__(module), "__version__", "?"))
        except ImportError:
            continue
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "hybrid_ai": hybrid_ai.__version__,
            "peer_versions": versions, "date": time.strftime("%Y-%m-%d %H:%M"),
            "loadavg_start": loadavg}


def text_report(report: dict[str, Any]) -> str:
    rows = ["| system | load s | materialize s | triples after | queries right | query s |",
            "|---|---:|---:|---:|---:|---:|"]
    for name in ("ours", "reasonable", "owlrl"):
        if name not in report:
            continue
        r = report[name]
        q = r.get("queries")
        right = f"{q['correct']}/{q['of']}" if q else "-"
        qs = f"{q['total_s']:.3f}" if q else "-"
        rows.append(f"| {name} | {r['load_s']:.2f} | {r['materialize_s']:.2f} | "
                    f"{r['triples_after']:,} | {right} | {qs} |")
    counts = report["ours"]["queries"]["counts"]
    rows += ["", "ours per query: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
    rows += ["", json.dumps(report["ratios"], indent=1)]
    if report["missing_peers"]:
        rows.append(f"missing peers: {report['missing_peers']}")
    return "\n".join(rows)


# ---- scale -------------------------------------------------------------------------------

_UNIVERSITY = re.compile(r"University(\d+)")


def scaled_lines(copies: int) -> Iterable[str]:
    """LUBM(1) ``copies`` times, copy k with every UniversityD renamed to University(D+k)%1000."""
    for k in range(copies):
        def rename(m: re.Match[str], k: int = k) -> str:
            return f"University{(int(m.group(1)) + k) % 1000}"

        # Streamed, re-read per copy: holding the lines would inflate the peak RSS measured.
        with gzip.open(DATA_NT, "rt", encoding="utf-8") as handle:
            for line in handle:
                line = line.rstrip("\n")
                yield _UNIVERSITY.sub(rename, line) if k else line


def peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def scale_benchmark(copies: int) -> dict[str, Any]:
    """Load, materialize and query an LUBM(copies)-like graph; times and peak memory.

    The graph is written to a temporary N-Triples file first (not timed), so the load time is
    that of reading a file of that size.
    """
    queries = read_queries()
    tmp = Path(tempfile.mkdtemp(prefix="lubm-scale-"))
    data = tmp / f"lubm{copies}.nt"
    try:
        with data.open("w", encoding="utf-8") as handle:
            for line in scaled_lines(copies):
                handle.write(line + "\n")
        base_mb = peak_rss_mb()
        store, load_s = timed(lambda: load(ONTOLOGY, store=load(data)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    asserted, after_load_mb = len(store), peak_rss_mb()
    reasoner = Reasoner(store)
    stats, _ = timed(reasoner.materialize)
    after_infer_mb = peak_rss_mb()
    answers = answer_ours(store, queries)
    del answers["seconds"]
    expected = scaled_expectations(queries, copies)
    wrong = {n: answers["counts"][n] for n, e in expected.items() if answers["counts"][n] != e}
    return {"copies": copies, "asserted": asserted, "triples_after": len(store),
            "inferred": len(store) - asserted, "rounds": stats.rounds, "load_s": load_s,
            "materialize_s": stats.seconds, "queries_total_s": answers.pop("total_s"),
            "query_counts": answers["counts"], "expected_counts": expected,
            "counts_as_expected": not wrong, "unexpected": wrong,
            "peak_rss_mb": {"before": base_mb, "after_load": after_load_mb,
                            "after_materialize": after_infer_mb, "end": peak_rss_mb()},
            "bytes_per_triple": (after_infer_mb - base_mb) * 2**20 / len(store)}


# Q6, Q9 and Q14 range over every university, so they grow with the copies; Q2 and Q13 join
# across universities, which the renaming changes; the rest ask about University0 only.
_GROWS, _UNPREDICTABLE = {"Q6", "Q9", "Q14"}, {"Q2", "Q13"}


def scaled_expectations(queries: list[tuple[str, int, str]], copies: int) -> dict[str, int]:
    """The count each query must give on the scaled graph, where that is predictable."""
    return {name: count * copies if name in _GROWS else count
            for name, count, _ in queries if name not in _UNPREDICTABLE}


def scale_text(report: dict[str, Any]) -> str:
    mem = report["peak_rss_mb"]
    return "\n".join([
        f"LUBM({report['copies']})-like: {report['asserted']:,} asserted, "
        f"{report['triples_after']:,} after inference ({report['rounds']} rounds)",
        f"load {report['load_s']:.1f} s, materialize {report['materialize_s']:.1f} s, "
        f"14 queries {report['queries_total_s']:.2f} s",
        f"peak RSS {mem['end']:,.0f} MB (before {mem['before']:,.0f}, after load "
        f"{mem['after_load']:,.0f}); {report['bytes_per_triple']:.0f} bytes per triple",
        "counts: " + ", ".join(f"{k} {v}" for k, v in report["query_counts"].items()),
        f"counts as expected (12 predictable queries): {report['counts_as_expected']} "
        f"{report['unexpected'] or ''}",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rounds", type=int, default=3, help="ours/reasonable rounds")
    parser.add_argument("--no-owlrl", action="store_true", help="skip owlrl (slow)")
    parser.add_argument("--scale", type=int, default=0, metavar="N",
                        help="ours only, on N renamed copies of LUBM(1) (20 gives 2M triples)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    info = machine()
    if args.scale:
        scaled = scale_benchmark(args.scale)
        scaled["machine"], scaled["wall_s"] = info, time.perf_counter() - start
        print(json.dumps(scaled, indent=2) if args.json else scale_text(scaled))
        return 0
    report = benchmark(args.rounds, not args.no_owlrl)
    info["loadavg_end"] = machine()["loadavg_start"]
    report["machine"], report["wall_s"] = info, time.perf_counter() - start
    print(json.dumps(report, indent=2) if args.json else text_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
