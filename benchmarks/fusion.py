"""Feature groups, the default fused pipeline and the cascade on six datasets, beside PEERS.md.

Usage: ``python benchmarks/fusion.py --json`` (``--datasets trec,sst2`` for a subset;
``--encoder-path DIR`` runs every embedding, the preset's included, on a tuned encoder).

Per dataset, on the splits of ../shared/data/README.md: a logistic regression on each single
feature group (word TF-IDF, char TF-IDF, MiniLM embedding) and on TF-IDF (word + char); our
default fused pipeline, exactly as ``hybrid-ai train --preset text`` builds it (trained through
the pipeline trainer, scored through the engine, one case at a time); and the TF-IDF-first
cascade in front of it: the share of test inputs that reach the transformer-backed model at the
cheapest threshold whose accuracy stays within 0.3 points of the fused pipeline. Training and
prediction times are ours, on this machine. Embeddings are computed once per dataset and kept
under ``~/.cache/hybrid-ai`` (``HYBRID_AI_CACHE_DIR``), so re-runs do not encode again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

from hybrid_ai._facts import Case
from hybrid_ai.ml import (
    EmbeddingStore,
    cascade_curve,
    cascade_pick,
    default_store,
    evaluate,
    load_dataset,
    train,
)
from hybrid_ai.ml._pipeline import LabelledCases, preset_pipeline, train_pipeline

DATASETS = ("sst2", "trec", "banking77", "financial_phrasebank", "sms_spam", "ag_news")

# Accuracy (%) from ../shared/PEERS.md: TF-IDF+LR, MiniLM+LR, best ensemble (the issue's
# target), and the peers' cascade share to the transformer within 0.3 points (None: never).
PEERS: dict[str, dict[str, float | None]] = {
    "sst2": {"tfidf_lr": 81.3, "minilm_lr": 81.7, "target": 85.1, "cascade_share": 52.0},
    "trec": {"tfidf_lr": 88.4, "minilm_lr": 90.2, "target": 94.4, "cascade_share": None},
    "banking77": {"tfidf_lr": 89.4, "minilm_lr": 92.9, "target": 94.1, "cascade_share": 35.5},
    "financial_phrasebank": {"tfidf_lr": 78.2, "minilm_lr": 78.3, "target": 81.9,
                             "cascade_share": 29.0},
    "sms_spam": {"tfidf_lr": 98.4, "minilm_lr": 99.1, "target": 99.4, "cascade_share": 3.5},
    "ag_news": {"tfidf_lr": 85.2, "minilm_lr": 85.7, "target": 88.2, "cascade_share": 28.0},
}
GROUPS = {"word": "word", "char": "char", "embedding": "embedding", "tfidf": "tfidf"}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _preset(name: str, data: Any, encoder_path: str | None) -> tuple[Any, dict[str, float]]:
    """Train the preset pipeline through the pipeline trainer; score it through the engine."""
    from hybrid_ai import Engine

    spec = preset_pipeline("text")
    if encoder_path:
        spec.pipeline.serial[0].with_["encoder_path"] = encoder_path
    cases = LabelledCases([Case(text=t) for t in data.train_texts], list(data.train_labels), name)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        train_pipeline(spec, cases, output=folder)
        fit_seconds = time.perf_counter() - started
        with Engine.from_yaml(f"{folder}/pipeline.yaml") as engine:
            engine.warm_up()
            stage: Any = engine.graph.stages()[0].stage
            started = time.perf_counter()
            results = engine.run_batch(data.test_texts, concurrency=2)
            predict_seconds = time.perf_counter() - started
    right = sum(str(r.decision) == y for r, y in zip(results, data.test_labels, strict=True))
    times = {"accuracy": right / len(results), "train_seconds": round(fit_seconds, 1),
             "predict_ms_per_case": round(1000 * predict_seconds / len(results), 2)}
    return stage.fitted, times


def run_dataset(name: str, limit: int | None = None,
                encoder_path: str | None = None) -> dict[str, Any]:
    """Every figure for one dataset, accuracies as fractions (``limit``: a smoke-test slice)."""
    data = load_dataset(name)
    if limit:
        data = type(data)(*(part[:limit] for part in data))
    started = time.perf_counter()
    store = EmbeddingStore(model_path=encoder_path) if encoder_path else default_store()
    store.matrix(name, list(data.train_texts) + list(data.test_texts))
    embed_seconds = round(time.perf_counter() - started, 1)
    row: dict[str, Any] = {"dataset": name, "embed_seconds": embed_seconds}
    models = {}
    for key, features in GROUPS.items():
        began = time.perf_counter()
        models[key] = train(data.train_texts, data.train_labels, features=features, dataset=name,
                            store=store)
        row[key] = evaluate(models[key], data.test_texts, data.test_labels)["accuracy"]
        row[f"{key}_train_seconds"] = round(time.perf_counter() - began, 1)
        _log(f"{name} {key}: {row[key]:.4f}")
    fused, times = _preset(name, data, encoder_path)
    row["preset"] = times["accuracy"]
    row |= {f"preset_{k}": v for k, v in times.items() if k != "accuracy"}
    _log(f"{name} preset: {row['preset']:.4f} ({times})")
    curve = cascade_curve(models["tfidf"], fused, data.test_texts, data.test_labels)
    pick = cascade_pick(curve, row["preset"])
    best_single = max(GROUPS, key=lambda k: row[k])
    row |= {"cascade_curve": curve, "cascade_pick": pick, "best_single": best_single,
            "beats_best_single": row["preset"] > row[best_single],
            "meets_target": 100 * row["preset"] >= (PEERS[name]["target"] or 0) - 1e-9,
            "seconds": round(time.perf_counter() - started, 1)}
    return row


def _sms_lfs() -> list[Any]:
    from hybrid_ai.ml import lexicon_lf, rule_lf

    return [
        lexicon_lf("prize", ["free", "prize", "won", "win", "winner", "claim", "cash"], "spam"),
        lexicon_lf("txt", ["txt", "text", "reply", "stop", "mobile", "ringtone"], "spam"),
        rule_lf("number", "match('0[0-9]{9,}|[0-9]{5}', text)", "spam"),
        rule_lf("money", "match('£|\\\\$[0-9]', text)", "spam"),
        rule_lf("urgent", "match('urgent|congratulations|guaranteed', lower(text))", "spam"),
        lexicon_lf("chat", ["lol", "haha", "ok", "u", "home", "later", "love", "sorry"], "ham"),
        rule_lf("short", "len(text) < 40", "ham"),
        lexicon_lf("me", ["i", "me", "my"], "ham", min_hits=2),
    ]


def weak_sms() -> dict[str, Any]:
    """Weak supervision on SMS spam: 8 keyword/rule functions label the training split with no
    gold label; majority vote vs the Dawid-Skene label model, then a TF-IDF LR trained on each
    set of weak labels (and on the gold labels) scored on the test split."""
    import numpy as np
    from sklearn.metrics import f1_score

    from hybrid_ai.ml import DawidSkene, apply_lfs, majority_vote

    data, classes = load_dataset("sms_spam"), ["ham", "spam"]
    gold = np.asarray([classes.index(y) for y in data.train_labels])
    votes = apply_lfs(_sms_lfs(), data.train_texts, classes)
    mv = majority_vote(votes, 2)
    covered = mv != -1
    labelled = {"majority_vote": np.where(covered, mv, 0),
                "dawid_skene": DawidSkene().fit(votes, 2).predict(votes)}
    out: dict[str, Any] = {"n_train": len(gold), "majority_vote_coverage": float(covered.mean())}
    for name, found in labelled.items():
        out[name] = {"label_accuracy": float((found == gold).mean()),
                     "label_accuracy_where_mv_votes": float((found[covered] == gold[covered])
                                                            .mean()),
                     "spam_f1": float(f1_score(gold, found))}
    for name, found in [*labelled.items(), ("gold", gold)]:
        model = train(data.train_texts, [classes[i] for i in found], features="tfidf")
        out.setdefault(name, {})["tfidf_lr_test_accuracy"] = evaluate(
            model, data.test_texts, data.test_labels)["accuracy"]
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table in percent; targets and peer cascade shares from PEERS.md."""
    lines = ["| dataset | word | char | embedding | TF-IDF | preset (target) | cascade share "
             "(threshold, accuracy) / peers | train s | predict ms/case |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = PEERS[r["dataset"]]
        pick = r["cascade_pick"]
        cascade = (f"{100 * pick['share_to_transformer']:.1f} % ({pick['threshold']}, "
                   f"{100 * pick['accuracy']:.1f})" if pick else "never within 0.3")
        share = peer["cascade_share"]
        singles = " | ".join(f"{100 * r[k]:.1f}" for k in GROUPS)
        lines.append(f"| {r['dataset']} | {singles} | **{100 * r['preset']:.1f}** "
                     f"({peer['target']}) | {cascade} / "
                     f"{'never' if share is None else f'{share} %'} | "
                     f"{r['preset_train_seconds']} | {r['preset_predict_ms_per_case']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    parser.add_argument("--limit", type=int, help="first N train/test texts only (smoke test)")
    parser.add_argument("--encoder-path", help="a tuned encoder folder (hybrid-ai tune-encoder)")
    parser.add_argument("--weak", action="store_true", help="only the weak-supervision figures")
    parser.add_argument("--rows", help="also append each dataset's row to this JSON-lines file")
    args = parser.parse_args()
    if args.weak:
        print(json.dumps(weak_sms(), indent=1))
        return
    rows = []
    for name in (n for n in args.datasets.split(",") if n):
        rows.append(run_dataset(name, args.limit, args.encoder_path))
        if args.rows:  # a long run keeps what it finished even if it is stopped later
            with open(args.rows, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(rows[-1]) + "\n")
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
