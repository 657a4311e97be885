"""Scores the example applications on their held-out data, through their own pipelines.

    python examples/evaluate.py support-triage             # Banking77 official test split
    python examples/evaluate.py market-sentiment-monitor   # Financial PhraseBank test split
    python examples/evaluate.py support-triage --limit 200 --json

For the text applications it reports the accuracy of the fused label (``intent`` or
``sentiment``) against the gold label, the share of cases that needed the transformer (the
cascade's second stage ran), the routing decisions, and for the monitor the alerts raised when
the whole test split is replayed as a stream (in file order, one sentence a minute). The
credit application scores itself: ``python examples/credit-decision/evaluate.py``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_ai import Engine, Result
from hybrid_ai.ml import load_dataset

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class App:
    """Where an application's pipeline and held-out data are, and what it predicts."""

    pipeline: Path
    test_csv: Path | str  # a CSV file, or the name of a bundled dataset (its test split)
    label_column: str
    label_kind: str
    transformer_stage: str


APPS = {
    "support-triage": App(HERE / "support-triage" / "pipeline.yaml",
                          DATA / "text" / "banking77" / "test.csv", "category", "intent",
                          "minilm"),
    "market-sentiment-monitor": App(HERE / "market-sentiment-monitor" / "pipeline.yaml",
                                    "financial_phrasebank",
                                    "label", "sentiment", "minilm"),
}


def load_cases(app: App, limit: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The test split as cases (one a minute from a fixed start, in file order) and gold labels."""
    rows = _test_rows(app)[:limit]
    start = dt.datetime(2026, 3, 2, 9, 0)
    cases = [{"id": f"test-{i + 1}", "text": row["text"],
              "fields": {"ts": (start + dt.timedelta(minutes=i)).isoformat()}}
             for i, row in enumerate(rows)]
    return cases, [row[app.label_column] for row in rows]


def _test_rows(app: App) -> list[dict[str, str]]:
    if isinstance(app.test_csv, str):
        data = load_dataset(app.test_csv)
        return [{"text": t, app.label_column: y}
                for t, y in zip(data.test_texts, data.test_labels, strict=True)]
    with app.test_csv.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def score(app: App, results: Sequence[Result], gold: Sequence[str]) -> dict[str, Any]:
    """Accuracy of the fused label, transformer share, decisions and alerts."""
    labels = [_label(r, app.label_kind) for r in results]
    deep = [_ran(r, app.transformer_stage) for r in results]
    cheap_right = [p == g for p, g, d in zip(labels, gold, deep, strict=True) if not d]
    decisions = Counter(str(r.decision) for r in results)
    alerts = [r for r in results if r.decision == "alert"]
    return {
        "cases": len(results),
        "failed": sum(not r.ok for r in results),
        "accuracy": _mean([p == g for p, g in zip(labels, gold, strict=True)]),
        "transformer_share": _mean(deep),
        "accuracy_without_transformer": _mean(cheap_right),
        "decisions": dict(decisions.most_common(8)),
        "vetoes": sum(_strength(r) == "veto" for r in results),
        "alerts": [{"case": r.case.id, "reason": _reason(r)} for r in alerts][:20],
    }


def run(name: str, limit: int | None = None, concurrency: int = 1) -> dict[str, Any]:
    """Build the application's engine, run its test split, and score it."""
    app = APPS[name]
    cases, gold = load_cases(app, limit)
    began = time.perf_counter()
    with Engine.from_yaml(app.pipeline) as engine:
        engine.warm_up()
        warm = time.perf_counter() - began
        results = engine.run_batch(cases, concurrency=concurrency)
    report = score(app, results, gold)
    report.update(application=name, warm_up_seconds=round(warm, 1),
                  run_seconds=round(time.perf_counter() - began - warm, 1))
    return report


def _label(result: Result, kind: str) -> str | None:
    facts = result.of(kind)
    return str(facts[-1].data.get("label")) if facts else None


def _ran(result: Result, stage: str) -> bool:
    return any(t.stage == stage and t.status in ("ok", "cached") for t in result.trace)


def _strength(result: Result) -> Any:
    fact = result.decision_fact
    return fact.data.get("strength") if fact is not None else None


def _reason(result: Result) -> Any:
    fact = result.decision_fact
    return fact.data.get("reason") if fact is not None else None


def _mean(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python examples/evaluate.py NAME [--limit N] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(APPS))
    parser.add_argument("--limit", type=int, default=None, help="only the first N test cases")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    report = run(args.name, args.limit, args.concurrency)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
