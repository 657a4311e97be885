"""Rule engine: the "Joins + chaining" workload of PEERS.md, our Rete engine beside CLIPS.

Usage::

    .venv/bin/python benchmarks/rules.py            # readable table
    .venv/bin/python benchmarks/rules.py --json     # one JSON object: machine, raw, ratios
    .venv/bin/python benchmarks/rules.py --sizes 1000x10 5000x20 20000x40 --manners 16 32 64

Workload: N orders (customer id, amount 0-999) and N/10 customers with one of 4 tiers, seeded;
M rule pairs ``flag_k: order(cust ?c, amount > T_k), customer(id ?c, tier TIER_k) => flag`` and
``alert_k: flag(order ?o, rule k), order(id ?o, amount > U_k) => alert``. Timed: asserting
every fact and running to quiescence (rules are compiled before the clock starts, in both
engines). The flag and alert counts of each engine are checked against a plain Python loop.
CLIPS runs through clipspy when it is installed (``pip install clipspy``); otherwise only the
plain loop is the baseline. ``--manners`` adds Miss Manners (see the section near the end).
Medians of ``--repeats`` runs, in wall and in CPU seconds (``*_cpu_s``: on a shared machine the
CPU ratio is the steadier one); each engine gets a fresh environment per run.

``--single M...`` adds single-record evaluation (PEERS.md): M conditions ``amount > T_k and
tier == TIER_k`` on ``--records`` records, as plain lambdas, as our compiled expressions (called
as ``expr(record)``, and through ``expr.evaluator``, the generated function itself, as our
decision tables call it), as one of our COLLECT decision tables with M rows, and through
zen-engine (compiled expressions and its decision table) when it is installed (``pip install
zen-engine``). Rule evaluations per second = M x records / seconds; every engine's count of
true conditions is checked; ``ours_expressions_over_plain`` is the ratio that survives a busy
machine.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from typing import Any

from hybrid_ai.rules._engine import Engine
from hybrid_ai.rules._patterns import compile_rules

TIERS = ("bronze", "silver", "gold", "platinum")


def workload(n: int, seed: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seeded orders and customers."""
    rng = random.Random(seed)
    customers = [{"id": c, "tier": rng.choice(TIERS)} for c in range(max(1, n // 10))]
    orders = [{"id": i, "cust": rng.randrange(len(customers)), "amount": rng.randrange(1000)}
              for i in range(n)]
    return orders, customers


def thresholds(m: int) -> list[tuple[int, str, int]]:
    """(T_k, TIER_k, U_k) for each rule pair."""
    return [((k * 97) % 800, TIERS[k % 4], (k * 97) % 800 + 100) for k in range(m)]


def plain(orders: list[dict[str, Any]], customers: list[dict[str, Any]],
          m: int) -> tuple[int, int]:
    """The expected flag and alert counts, by a direct loop."""
    tier = {c["id"]: c["tier"] for c in customers}
    flags = alerts = 0
    for t, name, u in thresholds(m):
        for o in orders:
            if o["amount"] > t and tier[o["cust"]] == name:
                flags += 1
                alerts += o["amount"] > u
    return flags, alerts


def our_rules(m: int) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for k, (t, name, u) in enumerate(thresholds(m)):
        rules.append({"id": f"flag_{k}", "when": [
            {"order": {"id": "?o", "cust": "?c", "amount": f"> {t}"}},
            {"customer": {"id": "?c", "tier": name}}],
            "then": [{"insert": {"flag": {"order": "?o", "rule": k}}}]})
        rules.append({"id": f"alert_{k}", "when": [
            {"flag": {"order": "?o", "rule": k}},
            {"order": {"id": "?o", "amount": f"> {u}"}}],
            "then": [{"insert": {"alert": {"order": "?o", "rule": k}}}]})
    return rules


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def _start() -> Timing:
    # Every run starts from a collected heap: the previous engine's cyclic garbage (our token
    # trees) is not left for the collector to sweep in the middle of the next timing.
    gc.collect()
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    # CPU time too: on a shared machine wall time counts the waits for a core, CPU time not.
    return time.perf_counter() - start[0], time.process_time() - start[1]


def run_ours(orders: list[dict[str, Any]], customers: list[dict[str, Any]],
             m: int) -> tuple[Timing, tuple[int, int]]:
    engine = Engine(compile_rules(our_rules(m)), strategy="depth", max_fires=10_000_000,
                    max_facts=10**9, timeout_s=None)
    start = _start()
    engine.insert_all([("customer", c) for c in customers] + [("order", o) for o in orders])
    engine.run()
    seconds = _since(start)
    return seconds, (len(engine.facts("flag")), len(engine.facts("alert")))


def clips_env(m: int) -> Any:
    import clips  # type: ignore[import-untyped]

    env = clips.Environment()
    for template in ("(deftemplate order (slot id) (slot cust) (slot amount))",
                     "(deftemplate customer (slot id) (slot tier))",
                     "(deftemplate flag (slot order) (slot rule))",
                     "(deftemplate alert (slot order) (slot rule))"):
        env.build(template)
    for k, (t, name, u) in enumerate(thresholds(m)):
        env.build(f"(defrule flag_{k} (order (id ?o) (cust ?c) (amount ?a&:(> ?a {t}))) "
                  f"(customer (id ?c) (tier {name})) => (assert (flag (order ?o) (rule {k}))))")
        env.build(f"(defrule alert_{k} (flag (order ?o) (rule {k})) "
                  f"(order (id ?o) (amount ?a&:(> ?a {u}))) => "
                  f"(assert (alert (order ?o) (rule {k}))))")
    return env


def run_clips(orders: list[dict[str, Any]], customers: list[dict[str, Any]],
              m: int) -> tuple[Timing, tuple[int, int]]:
    import clips

    env = clips_env(m)
    customer, order = env.find_template("customer"), env.find_template("order")
    start = _start()
    for c in customers:
        customer.assert_fact(id=c["id"], tier=clips.Symbol(c["tier"]))
    for o in orders:
        order.assert_fact(**o)
    env.run()
    seconds = _since(start)
    counts = [0, 0]
    for fact in env.facts():
        name = fact.template.name
        counts[0] += name == "flag"
        counts[1] += name == "alert"
    return seconds, (counts[0], counts[1])


def have_clips() -> bool:
    try:
        import clips  # noqa: F401
    except ImportError:
        return False
    return True


def measure(n: int, m: int, repeats: int, clips_on: bool) -> dict[str, Any]:
    orders, customers = workload(n)
    expected = plain(orders, customers, m)
    ours: list[Timing] = []
    theirs: list[Timing] = []
    for _ in range(repeats):
        seconds, counts = run_ours(orders, customers, m)
        assert counts == expected, (counts, expected)
        ours.append(seconds)
        if clips_on:
            seconds, counts = run_clips(orders, customers, m)
            assert counts == expected, ("clips", counts, expected)
            theirs.append(seconds)
    start = time.perf_counter()
    plain(orders, customers, m)
    row: dict[str, Any] = {"orders": n, "pairs": m, "flags": expected[0], "alerts": expected[1],
                           "plain_loop_s": time.perf_counter() - start}
    return row | _medians(ours, theirs)


def _medians(ours: list[Timing], theirs: list[Timing]) -> dict[str, Any]:
    """Median wall and CPU seconds of each engine, and our ratios to CLIPS in both."""
    row = {"ours_s": statistics.median(t[0] for t in ours),
           "ours_cpu_s": statistics.median(t[1] for t in ours)}
    if theirs:
        row["clips_s"] = statistics.median(t[0] for t in theirs)
        row["clips_cpu_s"] = statistics.median(t[1] for t in theirs)
        row["ours_over_clips"] = row["ours_s"] / row["clips_s"]
        row["ours_over_clips_cpu"] = row["ours_cpu_s"] / row["clips_cpu_s"]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sizes", nargs="*", default=["1000x10", "5000x20"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--manners", nargs="*", type=int, default=[16, 32],
                        help="Miss Manners guest counts (none: skip)")
    parser.add_argument("--single", nargs="*", type=int, default=[20],
                        help="single-record evaluation with M conditions (none: skip)")
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args(argv)
    machine = {"python": sys.version.split()[0], "platform": platform.platform(),
               "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    clips_on = have_clips()
    rows = [measure(int(n), int(m), args.repeats, clips_on)
            for n, m in (s.split("x") for s in args.sizes)]
    manners = [measure_manners(n, args.repeats, clips_on) for n in args.manners]
    single = [measure_single(m, args.records, args.repeats) for m in args.single]
    report = {"machine": machine, "clips": clips_on, "repeats": args.repeats, "rows": rows,
              "manners": manners, "single": single}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for row in single:
        print(f"single-record, {row['conditions']} conditions x {row['records']} records "
              f"(M evaluations/s): " + "  ".join(
                  f"{k[:-8]} {v / 1e6:.2f}" for k, v in row.items() if k.endswith("_evals_s")))
    for row in rows:
        clips_text = (f"  clips {row['clips_s']:.3f}s  ratio {row['ours_over_clips']:.2f}"
                      if "clips_s" in row else "  (clipspy not installed)")
        print(f"{row['orders']}x{row['pairs']}: flags {row['flags']} alerts {row['alerts']}  "
              f"ours {row['ours_s']:.3f}s{clips_text}  plain loop {row['plain_loop_s']:.4f}s")
    for row in manners:
        print(f"manners {row['guests']}: ours {row['ours_s']:.3f}s  "
              f"clips {row.get('clips_s', float('nan')):.3f}s  "
              f"ratio {row.get('ours_over_clips', float('nan')):.2f}")
    return 0


def measure_manners(n: int, repeats: int, clips_on: bool) -> dict[str, Any]:
    """Median seconds of Miss Manners in each engine; every answer is checked."""
    people = manners_guests(n)
    ours: list[Timing] = []
    theirs: list[Timing] = []
    for _ in range(repeats):
        seconds, seating = manners_ours(people)
        assert manners_valid(people, seating), ("ours", seating)
        ours.append(seconds)
        if clips_on:
            seconds, seating = manners_clips(people)
            assert manners_valid(people, seating), ("clips", seating)
            theirs.append(seconds)
    return {"guests": n} | _medians(ours, theirs)


# ---- Miss Manners: N guests, alternating sex, each with 2-3 of 5 hobbies; seat them so
# neighbours alternate sex and share a hobby (depth-first search driven by a context fact and a
# counter modified every step). The same 6 rules in both engines; every answer is verified.
Guest = tuple[str, str, list[int]]


def manners_guests(n: int, seed: int = 3) -> list[Guest]:
    """N guests: (name, sex, hobbies)."""
    rng = random.Random(seed)
    return [(f"g{i}", "m" if i % 2 else "f", rng.sample(range(1, 6), rng.choice((2, 3))))
            for i in range(n)]


MANNERS_RULES: list[dict[str, Any]] = [
    {"id": "assign_first_seat",
     "when": [{"context": {"state": "start"}, "as": "?ctx"}, {"guest": {"name": "?n"}},
              {"count": {"c": "?c"}, "as": "?cnt"}],
     "then": [{"insert": {"seating": {"seat1": 1, "name1": "?n", "name2": "?n", "seat2": 1,
                                      "id": "?c", "pid": 0, "path_done": True}}},
              {"insert": {"path": {"id": "?c", "name": "?n", "seat": 1}}},
              {"modify": {"?cnt": {"c": "=?c + 1"}}},
              {"modify": {"?ctx": {"state": "assign_seats"}}}]},
    {"id": "find_seating",
     "when": [{"context": {"state": "assign_seats"}, "as": "?ctx"},
              {"seating": {"seat2": "?seat2", "name2": "?n2", "id": "?id", "path_done": True}},
              {"guest": {"name": "?n2", "sex": "?s1", "hobby": "?h1"}},
              {"guest": {"name": "?g2", "sex": "!= ?s1", "hobby": "?h1"}},
              {"count": {"c": "?c"}, "as": "?cnt"},
              {"not": {"path": {"id": "?id", "name": "?g2"}}},
              {"not": {"chosen": {"id": "?id", "name": "?g2", "hobby": "?h1"}}}],
     "then": [{"insert": {"seating": {"seat1": "?seat2", "name1": "?n2", "name2": "?g2",
                                      "seat2": "=?seat2 + 1", "id": "?c", "pid": "?id",
                                      "path_done": False}}},
              {"insert": {"path": {"id": "?c", "name": "?g2", "seat": "=?seat2 + 1"}}},
              {"insert": {"chosen": {"id": "?id", "name": "?g2", "hobby": "?h1"}}},
              {"modify": {"?cnt": {"c": "=?c + 1"}}},
              {"modify": {"?ctx": {"state": "make_path"}}}]},
    {"id": "make_path", "salience": 1,
     "when": [{"context": {"state": "make_path"}},
              {"seating": {"id": "?id", "pid": "?pid", "path_done": False}},
              {"path": {"id": "?pid", "name": "?n1", "seat": "?s"}},
              {"not": {"path": {"id": "?id", "name": "?n1"}}}],
     "then": [{"insert": {"path": {"id": "?id", "name": "?n1", "seat": "?s"}}}]},
    {"id": "path_done",
     "when": [{"context": {"state": "make_path"}, "as": "?ctx"},
              {"seating": {"path_done": False}, "as": "?st"}],
     "then": [{"modify": {"?st": {"path_done": True}}},
              {"modify": {"?ctx": {"state": "check_done"}}}]},
    {"id": "are_we_done", "salience": 1,
     "when": [{"context": {"state": "check_done"}, "as": "?ctx"},
              {"last_seat": {"seat": "?l"}}, {"seating": {"seat2": "?l"}}],
     "then": [{"modify": {"?ctx": {"state": "done"}}}]},
    {"id": "continue",
     "when": [{"context": {"state": "check_done"}, "as": "?ctx"}],
     "then": [{"modify": {"?ctx": {"state": "assign_seats"}}}]},
]


def _manners_facts(people: list[Guest]) -> list[tuple[str, dict[str, Any]]]:
    facts = [("guest", {"name": n, "sex": s, "hobby": h}) for n, s, hs in people for h in hs]
    return [*facts, ("last_seat", {"seat": len(people)}), ("count", {"c": 1}),
            ("context", {"state": "start"})]


def manners_ours(people: list[Guest]) -> tuple[Timing, list[tuple[int, str]]]:
    engine = Engine(compile_rules(MANNERS_RULES), strategy="depth", max_fires=10_000_000,
                    max_facts=10**9, timeout_s=None)
    start = _start()
    engine.insert_all(_manners_facts(people))
    engine.run()
    seconds = _since(start)
    return seconds, _manners_answer([f.fields for f in engine.facts("seating")],
                            [f.fields for f in engine.facts("path")], len(people))


def _manners_answer(seatings: list[Any], paths: list[Any], n: int) -> list[tuple[int, str]]:
    final = next((s for s in seatings if s["seat2"] == n), None)
    if final is None:
        return []
    return sorted((p["seat"], p["name"]) for p in paths if p["id"] == final["id"])


MANNERS_CLIPS = """
(deftemplate guest (slot name) (slot sex) (slot hobby))
(deftemplate last_seat (slot seat))
(deftemplate seating (slot seat1) (slot name1) (slot name2) (slot seat2) (slot id) (slot pid)
  (slot path_done))
(deftemplate context (slot state))
(deftemplate path (slot id) (slot name) (slot seat))
(deftemplate chosen (slot id) (slot name) (slot hobby))
(deftemplate count (slot c))
(defrule assign_first_seat ?ctx <- (context (state start)) (guest (name ?n))
  ?cnt <- (count (c ?c)) =>
  (assert (seating (seat1 1) (name1 ?n) (name2 ?n) (seat2 1) (id ?c) (pid 0) (path_done yes)))
  (assert (path (id ?c) (name ?n) (seat 1)))
  (modify ?cnt (c (+ ?c 1))) (modify ?ctx (state assign_seats)))
(defrule find_seating ?ctx <- (context (state assign_seats))
  (seating (seat2 ?seat2) (name2 ?n2) (id ?id) (path_done yes))
  (guest (name ?n2) (sex ?s1) (hobby ?h1)) (guest (name ?g2) (sex ~?s1) (hobby ?h1))
  ?cnt <- (count (c ?c)) (not (path (id ?id) (name ?g2)))
  (not (chosen (id ?id) (name ?g2) (hobby ?h1))) =>
  (assert (seating (seat1 ?seat2) (name1 ?n2) (name2 ?g2) (seat2 (+ ?seat2 1)) (id ?c)
    (pid ?id) (path_done no)))
  (assert (path (id ?c) (name ?g2) (seat (+ ?seat2 1))))
  (assert (chosen (id ?id) (name ?g2) (hobby ?h1)))
  (modify ?cnt (c (+ ?c 1))) (modify ?ctx (state make_path)))
(defrule make_path (declare (salience 1)) (context (state make_path))
  (seating (id ?id) (pid ?pid) (path_done no)) (path (id ?pid) (name ?n1) (seat ?s))
  (not (path (id ?id) (name ?n1))) => (assert (path (id ?id) (name ?n1) (seat ?s))))
(defrule path_done ?ctx <- (context (state make_path)) ?st <- (seating (path_done no)) =>
  (modify ?st (path_done yes)) (modify ?ctx (state check_done)))
(defrule are_we_done (declare (salience 1)) ?ctx <- (context (state check_done))
  (last_seat (seat ?l)) (seating (seat2 ?l)) => (modify ?ctx (state done)))
(defrule continue ?ctx <- (context (state check_done)) => (modify ?ctx (state assign_seats)))
"""


def manners_clips(people: list[Guest]) -> tuple[Timing, list[tuple[int, str]]]:
    import clips

    env = clips.Environment()
    env.build("(defmodule MAIN (export ?ALL))")
    for construct in _constructs(MANNERS_CLIPS):
        env.build(construct)
    start = _start()
    for kind, fields in _manners_facts(people):
        values = {k: clips.Symbol(v) if isinstance(v, str) else v for k, v in fields.items()}
        env.find_template(kind).assert_fact(**values)
    env.run()
    seconds = _since(start)
    rows = [(f.template.name, dict(f)) for f in env.facts()]
    seatings = [d for name, d in rows if name == "seating"]
    paths = [{**d, "name": str(d["name"])} for name, d in rows if name == "path"]
    return seconds, _manners_answer(seatings, paths, len(people))


def _constructs(text: str) -> list[str]:
    out, depth, current = [], 0, ""
    for ch in text:  # split top-level parenthesised forms
        if depth or ch == "(":
            current += ch
        depth += (ch == "(") - (ch == ")")
        if not depth and current:
            out.append(current)
            current = ""
    return out


def manners_valid(people: list[Guest], seating: list[tuple[int, str]]) -> bool:
    """N seats, each guest once, neighbours of opposite sex sharing a hobby."""
    info = {n: (s, set(h)) for n, s, h in people}
    names = [name for _, name in seating]
    if [seat for seat, _ in seating] != list(range(1, len(people) + 1)) or \
            sorted(names) != sorted(info):
        return False
    return all(info[a][0] != info[b][0] and info[a][1] & info[b][1]
               for a, b in itertools.pairwise(names))




# ---- single-record evaluation ---------------------------------------------------------------
def single_workload(m: int, records: int, seed: int = 11) -> tuple[
        list[dict[str, Any]], list[tuple[int, str]]]:
    """Seeded records and the M (threshold, tier) conditions."""
    rng = random.Random(seed)
    rows = [{"amount": rng.randrange(1000), "tier": rng.choice(TIERS)} for _ in range(records)]
    return rows, [((k * 97) % 800, TIERS[k % 4]) for k in range(m)]


def _evals_per_s(fn: Any, m: int, records: int, repeats: int, expected: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - start)
        assert got == expected, (fn, got, expected)
    return m * records / statistics.median(times)


def _single_plain(rows: list[dict[str, Any]], conds: list[tuple[int, str]]) -> Any:
    checks = [(lambda r, t=t, n=n: r["amount"] > t and r["tier"] == n) for t, n in conds]
    return lambda: sum(1 for r in rows for check in checks if check(r))


def _single_expressions(rows: list[dict[str, Any]], conds: list[tuple[int, str]]) -> Any:
    from hybrid_ai._expr import compile_expression

    exprs = [compile_expression(f"amount > {t} and tier == '{n}'") for t, n in conds]
    return lambda: sum(1 for r in rows for e in exprs if e(r))


def _single_evaluators(rows: list[dict[str, Any]], conds: list[tuple[int, str]]) -> Any:
    from hybrid_ai._expr import compile_expression

    fns = [compile_expression(f"amount > {t} and tier == '{n}'").evaluator for t, n in conds]
    return lambda: sum(1 for r in rows for f in fns if f(r))


def single_table_text(conds: list[tuple[int, str]]) -> str:
    """Our COLLECT table: one row per condition."""
    body = "".join(f"> {t},'{n}',{k}\n" for k, (t, n) in enumerate(conds))
    return f"# hit: COLLECT\nin: amount,in: tier,out: rule\n{body}"


def _single_table(rows: list[dict[str, Any]], conds: list[tuple[int, str]]) -> Any:
    from hybrid_ai.rules import parse_table

    table = parse_table(single_table_text(conds))
    return lambda: sum(len(table.evaluate(r)) for r in rows)


def _zen_expressions(rows: list[dict[str, Any]], conds: list[tuple[int, str]]) -> Any:
    import zen

    exprs = [zen.compile_expression(f'amount > {t} and tier == "{n}"') for t, n in conds]
    return lambda: sum(1 for r in rows for e in exprs if e.evaluate(r))


def zen_table_content(conds: list[tuple[int, str]]) -> str:
    """The same table as zen-engine JDM (collect hit policy)."""
    rules = [{"_id": f"r{k}", "i1": f"> {t}", "i2": f'"{n}"', "o1": str(k)}
             for k, (t, n) in enumerate(conds)]
    table = {"hitPolicy": "collect", "rules": rules,
             "inputs": [{"id": "i1", "name": "amount", "field": "amount"},
                        {"id": "i2", "name": "tier", "field": "tier"}],
             "outputs": [{"id": "o1", "name": "rule", "field": "rule"}]}
    at = {"x": 0, "y": 0}
    nodes = [{"id": "in", "type": "inputNode", "name": "in", "position": at},
             {"id": "dt", "type": "decisionTableNode", "name": "t", "position": at,
              "content": table},
             {"id": "out", "type": "outputNode", "name": "out", "position": at}]
    edges = [{"id": "e1", "sourceId": "in", "targetId": "dt", "type": "edge"},
             {"id": "e2", "sourceId": "dt", "targetId": "out", "type": "edge"}]
    return json.dumps({"nodes": nodes, "edges": edges})


def _zen_table(rows: list[dict[str, Any]], conds: list[tuple[int, str]]) -> Any:
    import zen

    decision = zen.ZenEngine().create_decision(zen_table_content(conds))

    def run() -> int:
        total = 0
        for r in rows:
            result = decision.evaluate(r)["result"]
            total += len(result) if isinstance(result, list) else bool(result)
        return total

    return run


def have_zen() -> bool:
    try:
        import zen  # noqa: F401
    except ImportError:
        return False
    return True


def measure_single(m: int, records: int, repeats: int) -> dict[str, Any]:
    """Rule evaluations per second of each way to evaluate M conditions per record."""
    rows, conds = single_workload(m, records)
    expected = sum(1 for r in rows for t, n in conds if r["amount"] > t and r["tier"] == n)
    makers = {"plain_lambdas": _single_plain, "ours_expressions": _single_expressions,
              "ours_evaluators": _single_evaluators, "ours_table": _single_table}
    if have_zen():
        makers |= {"zen_expressions": _zen_expressions, "zen_table": _zen_table}
    out: dict[str, Any] = {"conditions": m, "records": records, "true": expected}
    for name, make in makers.items():
        out[f"{name}_evals_s"] = _evals_per_s(make(rows, conds), m, records, repeats, expected)
    if "zen_table_evals_s" in out:
        out["zen_table_ms_per_call"] = 1000 * m / out["zen_table_evals_s"]
        out["ours_table_over_zen_table"] = out["ours_table_evals_s"] / out["zen_table_evals_s"]
        out["ours_expressions_over_zen_expressions"] = (
            out["ours_expressions_evals_s"] / out["zen_expressions_evals_s"])
    out["ours_table_ms_per_call"] = 1000 * m / out["ours_table_evals_s"]
    out["ours_expressions_over_plain"] = (
        out["ours_expressions_evals_s"] / out["plain_lambdas_evals_s"])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
