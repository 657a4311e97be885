"""Expected cost of the credit decisions on the held-out split (200 applicants).

    python examples/credit-decision/evaluate.py [--json]

Runs the whole pipeline (policy vetoes, the cost-aware risk model, pricing) on the test part of
the example's split (stratified 80/20, random_state=0) and reports the mean cost per applicant
under the documented matrix (bad approved 5, good declined 1) next to three baselines: approve
everyone, the same model at the 0.5 threshold, and the model alone at its cost threshold. A
``refer`` (an underwriter decides) is counted as a decline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import credit_model as cm  # noqa: E402  (the example's own plugin module, beside this file)

from hybrid_ai import Engine  # noqa: E402

DATA = HERE.parent.parent.parent / "shared" / "data" / "german_credit" / "german.data"


def run(limit: int | None = None) -> dict[str, Any]:
    """Score the pipeline and the baselines on the held-out applicants."""
    _, _, test_x, test_y = cm.split(*cm.read_german(DATA))
    test_x, test_y = test_x[:limit], test_y[:limit]
    with Engine.from_yaml(HERE / "pipeline.yaml", trust_code=True) as engine:
        results = engine.run_batch([{"id": f"test-{i + 1}", "fields": x}
                                    for i, x in enumerate(test_x)], concurrency=2)
    decisions = [str(r.decision) for r in results]
    p_bad = [float(r.of("risk")[-1].data["p_bad"]) for r in results]
    threshold = float(results[0].of("risk")[-1].data["threshold"])
    as_cost = ["approve" if d == "approve" else "decline" for d in decisions]
    return {
        "applicants": len(test_y), "bad_share": round(test_y.count("bad") / len(test_y), 3),
        "threshold": threshold,
        "expected_cost": {
            "pipeline": round(cm.expected_cost(test_y, as_cost), 3),
            "model_at_cost_threshold": round(cm.expected_cost(
                test_y, ["decline" if p >= threshold else "approve" for p in p_bad]), 3),
            "model_at_0.5": round(cm.expected_cost(
                test_y, ["decline" if p >= 0.5 else "approve" for p in p_bad]), 3),
            "approve_everyone": round(cm.expected_cost(test_y, ["approve"] * len(test_y)), 3),
        },
        "decisions": dict(Counter(decisions)),
        "by_rule": dict(Counter(str(r.decision_fact.data.get("rule")) for r in results
                                if r.decision_fact is not None)),
        "tiers": dict(Counter(str(r.decision_fact.data.get("tier")) for r in results
                              if r.decision == "approve" and r.decision_fact is not None)),
        "failed": sum(not r.ok for r in results),
    }


def main() -> None:
    """Command line: ``python examples/credit-decision/evaluate.py [--json]``."""
    parser = argparse.ArgumentParser(description="expected cost on the held-out split")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    report = run(args.limit)
    print(json.dumps(report, indent=2) if args.json else
          "\n".join(f"{k}: {v}" for k, v in report.items()))


if __name__ == "__main__":
    main()
