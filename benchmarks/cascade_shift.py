"""Why a cascade sends fewer cases on at test time than on validation: split or refit?

Fits the cheap first stage (``cheap_classifier``) on a stratified 80 % of a dataset's training
split and then on all of it, and reports, per threshold, the share of cases below it on the
held-out fifth and on the test split. The 80 % model's fifth -> test change is the split
itself; its test share against the refit model's is what refitting on more data does.

    .venv/bin/python benchmarks/cascade_shift.py --dataset trec --json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from hybrid_ai.ml import cheap_classifier, load_dataset


def shares(model: Any, texts: list[str], labels: list[str],
           thresholds: list[float]) -> dict[str, Any]:
    proba = model.predict_proba(texts)
    top = proba.max(axis=1)
    right = model.classes_[proba.argmax(axis=1)] == np.asarray(labels)
    return {"accuracy": float(right.mean()),
            "share_below": {str(t): float(np.mean(top < t)) for t in thresholds}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="trec")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.7, 0.8, 0.9])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data = load_dataset(args.dataset)
    x, y = list(data.train_texts), list(data.train_labels)
    xa, xb, ya, yb = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    report: dict[str, Any] = {"dataset": args.dataset}
    for name, (fx, fy) in {"fit_on_80pct": (xa, ya), "refit_on_all": (x, y)}.items():
        started = time.perf_counter()
        model = cheap_classifier().fit(fx, fy)
        report[name] = {"held_out_fifth": shares(model, xb, yb, args.thresholds),
                        "test": shares(model, list(data.test_texts), list(data.test_labels),
                                       args.thresholds),
                        "fit_seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
