"""Throughput of hybrid_ai.llm.Encoder against sentence-transformers on the same model and data.

Usage: ``.venv/bin/python benchmarks/llm_encoder.py --rounds 7``  (prints one JSON object).

Both run in this process on the bundled all-MiniLM-L6-v2, float32, CPU, with the same thread
count. Runs are interleaved and the order flips every round, so drift in machine load (turbo,
noisy neighbours) lands on both sides alike; the median of the rounds is reported.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_ai.llm import Encoder, default_model_path

DATA = Path("/work/shared/data/text/banking77/test.csv")


def load_texts(path: Path, limit: int) -> list[str]:
    """The first ``limit`` texts of a banking77 csv: ``load_texts(DATA, 512)``."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["text"] for _, row in zip(range(limit), csv.DictReader(handle), strict=False)]


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_batch_size(
    texts: Sequence[str], batch_size: int, threads: int, st_model: Any, rounds: int
) -> dict[str, Any]:
    ours = Encoder(batch_size=batch_size, num_threads=threads).warm_up()
    runners: dict[str, Callable[[], Any]] = {
        "hybrid_ai": lambda: ours.encode(texts),
        "sentence_transformers": lambda: st_model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True
        ),
    }
    for run in runners.values():  # first calls pay one-off allocation costs; not measured
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(rounds):
        names = list(runners) if r % 2 == 0 else list(runners)[::-1]
        for name in names:
            seconds[name].append(timed(runners[name]))
    # Median is the headline; best-of is reported too because a shared CPU only ever slows runs.
    median = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
    best = {name: len(texts) / min(s) for name, s in seconds.items()}
    return {
        "batch_size": batch_size,
        "sentences_per_s_median": {k: round(v, 1) for k, v in median.items()},
        "sentences_per_s_best": {k: round(v, 1) for k, v in best.items()},
        "ratio_median": round(median["hybrid_ai"] / median["sentence_transformers"], 3),
        "ratio_best": round(best["hybrid_ai"] / best["sentence_transformers"], 3),
        "seconds_per_round": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "max_cosine_gap": _cosine_gap(ours.encode(texts), runners["sentence_transformers"]()),
    }


def _cosine_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    return float(np.max(np.abs(1.0 - cosine)))


def cpu_pressure() -> str | None:
    """Linux PSI line for CPU: high "some" averages mean other work was competing for the CPU."""
    psi = Path("/proc/pressure/cpu")
    return psi.read_text().splitlines()[0] if psi.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)  # sentence-transformers has no knob of its own
    texts = load_texts(args.data, args.n)
    st_model = SentenceTransformer(str(default_model_path()), device="cpu")
    pressure_before = cpu_pressure()
    results = [
        bench_batch_size(texts, bs, args.threads, st_model, args.rounds) for bs in args.batch_sizes
    ]
    report = {
        "texts": len(texts),
        "distinct_texts": len(set(texts)),
        "threads": args.threads,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_pressure_before": pressure_before,
        "cpu_pressure_after": cpu_pressure(),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
