"""The LLM stage measured side by side: encoder throughput against sentence-transformers, the
embedding cache, zero-/few-shot accuracy, fine-tuning gain, and generative extraction.

Usage: ``.venv/bin/python benchmarks/llm.py --json`` (about 20 minutes on 2 busy cores), or
``--quick`` (a few minutes), ``--only throughput cache classify finetune extract``.

Data: ../shared/data/text with the splits of its README (``hybrid_ai.ml.load_dataset``). Test
sets are subsampled (seeded) where said in the output, to keep the run short. Throughput runs are
interleaved and the order flips every round, so load drift lands on both sides alike; medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_ai import Blackboard, Case, StageError
from hybrid_ai.llm import EmbeddingCache, Encoder, default_model_path
from hybrid_ai.llm._finetune import sample_per_class, tune_encoder
from hybrid_ai.llm._generative import Generator
from hybrid_ai.llm._stages import LabelSimilarity
from hybrid_ai.llm._tasks import ExtractStage, label_descriptions
from hybrid_ai.ml import load_dataset

TREC_DESCRIPTIONS = {
    "ABBR": "What does this abbreviation or acronym stand for?",
    "DESC": "A question asking for a description, definition, reason or manner.",
    "ENTY": "A question about a thing: an object, animal, colour, food, product or event.",
    "HUM": "A question about a person or group of people: who is it?",
    "LOC": "A question about a place: where is it, which city or country?",
    "NUM": "A question asking for a number, date, amount, distance, or how many.",
}
TREC_WORDS = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "person",
              "LOC": "location", "NUM": "number"}
EXTRACT_FIELDS = {"amount": "float", "currency": "str", "product": "str"}


def _subsample(texts: list[str], labels: list[str], n: int | None,
               seed: int = 0) -> tuple[list[str], list[str]]:
    if n is None or n >= len(texts):
        return texts, labels
    idx = sorted(random.Random(seed).sample(range(len(texts)), n))
    return [texts[i] for i in idx], [labels[i] for i in idx]


def _accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return round(100.0 * float(np.mean(np.array(predicted) == np.array(truth))), 1)


# -- throughput -----------------------------------------------------------------------------------


def _timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _cosine_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    return float(np.max(np.abs(1.0 - cosine)))


def _one_batch_size(texts: list[str], batch_size: int, threads: int, st_model: Any,
                    rounds: int) -> dict[str, Any]:
    # The default runtime ("auto": ONNX Runtime when installed), the torch one, and the default
    # with no token budget (every pass holds batch_size texts, as sentence-transformers' do).
    ours = Encoder(batch_size=batch_size, num_threads=threads).warm_up()
    on_torch = Encoder(batch_size=batch_size, num_threads=threads, runtime="torch").warm_up()
    unbudgeted = Encoder(batch_size=batch_size, num_threads=threads,
                         max_batch_tokens=batch_size * 1024).warm_up()
    runners: dict[str, Callable[[], Any]] = {
        "hybrid_ai": lambda: ours.encode(texts),
        "hybrid_ai_torch": lambda: on_torch.encode(texts),
        "hybrid_ai_no_token_budget": lambda: unbudgeted.encode(texts),
        "sentence_transformers": lambda: st_model.encode(texts, batch_size=batch_size,
                                                         convert_to_numpy=True),
    }
    for run in runners.values():  # first calls pay one-off allocation costs; not measured
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(rounds):
        for name in (list(runners) if r % 2 == 0 else list(runners)[::-1]):
            seconds[name].append(_timed(runners[name]))
    rate = {k: len(texts) / statistics.median(v) for k, v in seconds.items()}
    return {"batch_size": batch_size, "runtime": ours.runtime_in_use,
            "sentences_per_s": {k: round(v, 1) for k, v in rate.items()},
            "ratio": round(rate["hybrid_ai"] / rate["sentence_transformers"], 3),
            "ratio_torch_runtime": round(rate["hybrid_ai_torch"] / rate["sentence_transformers"],
                                         3),
            "ratio_no_token_budget": round(rate["hybrid_ai_no_token_budget"]
                                           / rate["sentence_transformers"], 3),
            "max_cosine_gap": _cosine_gap(ours.encode(texts), runners["sentence_transformers"]())}


def bench_throughput(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)  # sentence-transformers has no knob of its own
    st_model = SentenceTransformer(str(default_model_path()), device="cpu")
    banking, news = load_dataset("banking77"), load_dataset("ag_news")
    sets = {"short (banking77)": banking.test_texts[: args.n_short],
            "long (ag_news)": news.test_texts[: args.n_long]}
    out: dict[str, Any] = {"threads": args.threads, "rounds": args.rounds}
    for name, texts in sets.items():
        rows = [_one_batch_size(texts, bs, args.threads, st_model, args.rounds)
                for bs in args.batch_sizes]
        out[name] = {"texts": len(texts), "results": rows}
    return out


def bench_cache(args: argparse.Namespace) -> dict[str, Any]:
    texts = load_dataset("banking77").test_texts[: args.n_short]
    encoder = Encoder(num_threads=args.threads, cache=EmbeddingCache())
    compute = _timed(lambda: encoder.encode(texts))
    hits = [_timed(lambda: encoder.encode(texts)) for _ in range(5)]
    hit = statistics.median(hits)
    return {"texts": len(texts), "compute_s": round(compute, 3), "hit_s": round(hit, 6),
            "speedup": round(compute / hit, 1)}


# -- classification -------------------------------------------------------------------------------


def _classify_one(name: str, encoder: Encoder, descriptions: dict[str, str],
                  test_n: int | None) -> dict[str, Any]:
    data = load_dataset(name)
    test_x, test_y = _subsample(data.test_texts, data.test_labels, test_n)
    test_vecs = encoder.encode(test_x)
    zero = LabelSimilarity.from_descriptions(encoder, descriptions).predict(test_vecs)
    chosen = sample_per_class(data.train_labels, 8, seed=0)
    train_vecs = encoder.encode([data.train_texts[i] for i in chosen])
    train_y = [data.train_labels[i] for i in chosen]
    centroid = LabelSimilarity.from_examples(train_vecs, train_y).predict(test_vecs)
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(max_iter=2000, C=10.0).fit(train_vecs, train_y)
    return {"test_texts": len(test_x), "of": len(data.test_texts),
            "zero_shot_descriptions": _accuracy(zero, test_y),
            "few_shot_8_centroid": _accuracy(centroid, test_y),
            "few_shot_8_logreg": _accuracy(lr.predict(test_vecs), test_y)}


def _generative_trec(n: int) -> dict[str, Any]:
    from hybrid_ai.llm._tasks import ZeroShotStage

    data = load_dataset("trec")
    test_x, test_y = _subsample(data.test_texts, data.test_labels, n, seed=1)
    stage = ZeroShotStage(labels=TREC_WORDS, method="generative",
                          prompt="What kind of answer does this question ask for: {labels}?\n"
                                 "Question: {text}\nAnswer with one word.")
    stage.warm_up()
    start = time.perf_counter()
    predicted = [stage.process(Blackboard(Case(text=t)))[0].data["label"] for t in test_x]
    return {"test_texts": len(test_x), "accuracy": _accuracy(predicted, test_y),
            "seconds_per_text": round((time.perf_counter() - start) / len(test_x), 3)}


def bench_classify(args: argparse.Namespace) -> dict[str, Any]:
    encoder = Encoder(num_threads=args.threads, cache=EmbeddingCache())
    banking = load_dataset("banking77")
    return {
        "banking77": _classify_one("banking77", encoder,
                                   label_descriptions(sorted(set(banking.train_labels))),
                                   args.test_n),
        "trec": _classify_one("trec", encoder, TREC_DESCRIPTIONS, None),
        "trec_generative_zero_shot": _generative_trec(args.generative_n),
        "peers_supervised_full_train": {"banking77": {"MiniLM+LR": 92.9, "concat+LR": 94.0},
                                        "trec": {"MiniLM+LR": 90.2, "concat+LR": 94.4}},
    }


# -- fine-tuning ----------------------------------------------------------------------------------


def _scores(model: Path | None, threads: int, train: tuple[list[str], list[str]],
            test: tuple[list[str], list[str]]) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    encoder = Encoder(model_path=model, num_threads=threads)
    train_vecs, test_vecs = encoder.encode(train[0]), encoder.encode(test[0])
    centroid = LabelSimilarity.from_examples(train_vecs, train[1]).predict(test_vecs)
    lr = LogisticRegression(max_iter=2000, C=10.0).fit(train_vecs, train[1])
    return {"centroid": _accuracy(centroid, test[1]),
            "logreg": _accuracy(lr.predict(test_vecs), test[1])}


def _tune_at(dataset: str, per_class: int, method: str, args: argparse.Namespace,
             out_dir: Path, frozen_cache: dict[tuple[str, int], dict[str, float]]
             ) -> dict[str, Any]:
    data = load_dataset(dataset)
    chosen = sample_per_class(data.train_labels, per_class, seed=0)
    taken = set(chosen)
    rest = [i for i in range(len(data.train_labels)) if i not in taken]
    val_ids = [rest[i] for i in sample_per_class([data.train_labels[i] for i in rest],
                                                 args.val_per_class, seed=1)]
    train = ([data.train_texts[i] for i in chosen], [data.train_labels[i] for i in chosen])
    val = ([data.train_texts[i] for i in val_ids], [data.train_labels[i] for i in val_ids])
    test = _subsample(data.test_texts, data.test_labels, args.test_n)
    if (dataset, per_class) not in frozen_cache:
        frozen_cache[dataset, per_class] = _scores(None, args.threads, train, test)
    cpu0 = time.process_time()
    report = tune_encoder(*train, out_dir / f"{dataset}-{method}-{per_class}", method=method,  # type: ignore[arg-type]
                          val_texts=val[0], val_labels=val[1], epochs=args.epochs,
                          num_threads=args.threads, learning_rate=args.learning_rate,
                          batch_size=args.batch_size, num_iterations=args.num_iterations,
                          patience=args.patience, train_layers=args.train_layers)
    cpu = time.process_time() - cpu0
    tuned = _scores(report.output, args.threads, train, test)
    frozen = frozen_cache[dataset, per_class]
    return {"dataset": dataset, "per_class": per_class, "method": method,
            "train_texts": len(train[0]),
            "val_texts": len(val[0]), "test_texts": len(test[0]), "frozen": frozen,
            "tuned": tuned, "gain_points": {k: round(tuned[k] - frozen[k], 1) for k in tuned},
            "tune_wall_s": report.seconds, "tune_cpu_s": round(cpu, 1),
            "epochs_run": report.epochs_run, "best_epoch": report.best_epoch,
            "num_iterations": args.num_iterations, "train_layers": args.train_layers,
            "steps": report.steps,
            "best_step": report.best_step, "val_steps": report.val_steps,
            "val_accuracy": report.val_accuracy}


def bench_finetune(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    frozen: dict[tuple[str, int], dict[str, float]] = {}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.finetune_datasets:
            for per_class, method in args.tune_runs:
                runs.append(_tune_at(dataset, per_class, method, args, Path(tmp), frozen))
                # A long section: show each run as it ends (on stderr, so --json stays one object).
                print("finetune run", json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return {"validation": f"{args.val_per_class} per class from the rest of train",
            "runs": runs}


# -- extraction -----------------------------------------------------------------------------------


def _extract_texts(n: int) -> list[str]:
    """Banking77 test texts that mention an amount or a currency (deterministic choice)."""
    words = ("$", "£", "€", "dollar", "euro", "pound", "usd", "gbp", "eur")
    texts = load_dataset("banking77").test_texts
    picked = [t for t in texts if any(ch.isdigit() for ch in t) or
              any(w in t.lower() for w in words)]
    return picked[:n]


def bench_extract(args: argparse.Namespace) -> dict[str, Any]:
    generator = Generator(max_new_tokens=64).warm_up()
    stage = ExtractStage(fields=EXTRACT_FIELDS, generator=generator, retries=2)
    outcomes = {"first_time": 0, "after_local_repair": 0, "after_retry": 0, "failed": 0}
    seconds: list[float] = []
    texts = _extract_texts(args.extract_n)
    for text in texts:
        start = time.perf_counter()
        try:
            (fact,) = stage.process(Blackboard(Case(text=text)))
        except StageError:
            outcomes["failed"] += 1
        else:
            data = fact.data
            key = ("after_retry" if data["attempts"] > 1 else
                   "after_local_repair" if data.get("repaired") else "first_time")
            outcomes[key] += 1
        seconds.append(time.perf_counter() - start)
    n = len(texts)
    return {"calls": n, "fields": EXTRACT_FIELDS, "outcomes": outcomes,
            "valid_first_time": round(outcomes["first_time"] / n, 3),
            "valid_after_repair_or_retry": round((n - outcomes["failed"]) / n, 3),
            "seconds_per_call": round(statistics.mean(seconds), 2),
            "seconds_per_call_max": round(max(seconds), 2)}


# -- main -----------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "throughput": bench_throughput, "cache": bench_cache, "classify": bench_classify,
    "finetune": bench_finetune, "extract": bench_extract}


def _settings(args: argparse.Namespace) -> None:
    if args.quick:
        args.n_short, args.n_long, args.rounds, args.batch_sizes = 96, 48, 1, [32]
        args.test_n, args.generative_n, args.extract_n, args.epochs = 300, 12, 5, 1
        args.tune_runs = [(8, "setfit")]
    else:
        args.n_short, args.n_long, args.rounds, args.batch_sizes = 256, 128, 3, [16, 32, 64]
        args.test_n, args.generative_n, args.extract_n = 1000, 60, 20
        args.tune_runs = [(8, "setfit"), (8, "classify"), (64, args.method_64)]


def _overrides(args: argparse.Namespace) -> None:
    for name in ("n_short", "n_long", "rounds", "batch_sizes", "test_n", "generative_n",
                 "extract_n"):
        value = getattr(args, f"set_{name}")
        if value is not None:
            setattr(args, name, value)
    if args.tune:
        args.tune_runs = [(int(pc), method) for pc, _, method in
                          (item.partition(":") for item in args.tune)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--epochs", type=int, default=None, help="default: 1 setfit, 4 classify")
    parser.add_argument("--patience", type=int, default=2, help="evaluations without gain")
    parser.add_argument("--finetune-datasets", nargs="+", default=["banking77", "trec"])
    parser.add_argument("--train-layers", type=int, default=None,
                        help="tune only the top N transformer layers (default: all)")
    parser.add_argument("--val-per-class", type=int, default=4,
                        help="fine-tuning validation examples per class")
    parser.add_argument("--num-iterations", type=int, default=20,
                        help="setfit pair iterations per example (SetFit's default: 20)")
    parser.add_argument("--method-64", default="classify", choices=["setfit", "classify"])
    parser.add_argument("--learning-rate", type=float, default=2e-5, help="for fine-tuning")
    parser.add_argument("--batch-size", type=int, default=16, help="for fine-tuning")
    for name in ("n_short", "n_long", "rounds", "test_n", "generative_n", "extract_n"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=f"set_{name}", type=int)
    parser.add_argument("--batch-sizes", dest="set_batch_sizes", type=int, nargs="+")
    parser.add_argument("--tune", nargs="+", help="runs as PER_CLASS:METHOD, e.g. 8:setfit")
    args = parser.parse_args()
    _settings(args)
    _overrides(args)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "loadavg_start": os.getloadavg()[0]}
    report: dict[str, Any] = {"machine": machine, "quick": args.quick}
    for name in args.only:
        start = time.perf_counter()
        report[name] = SECTIONS[name](args)
        report[name]["section_s"] = round(time.perf_counter() - start, 1)
        if not args.json:
            print(name, json.dumps(report[name], indent=1), flush=True)
    report["machine"]["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
