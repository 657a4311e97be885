"""Classical ML and fusion on the text datasets, side by side with ../shared/PEERS.md.

Usage: ``python benchmarks/ml.py --datasets banking77,financial_phrasebank --json``.

Per dataset: a plain scikit-learn TF-IDF+LR (the peer's kind of baseline, re-run here so the
machines compare), then hybrid_ai's TF-IDF+LR, MiniLM+LR, concatenation+LR, stacking and
OOF-weighted soft voting, the ablation of the concatenation, and the TF-IDF-first cascade.
Embeddings come from the disk cache under ``.hybrid_ai_cache/embeddings`` (first run encodes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from hybrid_ai.ml import (
    TextDataset,
    ablation,
    cascade_curve,
    cascade_pick,
    evaluate,
    load_dataset,
    train,
)

# Accuracy (%) from ../shared/PEERS.md: TF-IDF+LR, MiniLM+LR, concat+LR, best ensemble, and
# the cascade's share to the transformer (%) at the threshold that kept accuracy within 0.3.
PEERS: dict[str, dict[str, float | None]] = {
    "sst2": {"tfidf_lr": 81.3, "minilm_lr": 81.7, "concat_lr": 84.8, "ensemble": 85.1,
             "cascade_share": 52.0},
    "trec": {"tfidf_lr": 88.4, "minilm_lr": 90.2, "concat_lr": 94.4, "ensemble": 94.2,
             "cascade_share": None},
    "banking77": {"tfidf_lr": 89.4, "minilm_lr": 92.9, "concat_lr": 94.0, "ensemble": 94.1,
                  "cascade_share": 35.5},
    "financial_phrasebank": {"tfidf_lr": 78.2, "minilm_lr": 78.3, "concat_lr": 81.5,
                             "ensemble": 81.9, "cascade_share": 29.0},
    "sms_spam": {"tfidf_lr": 98.4, "minilm_lr": 99.1, "concat_lr": 99.4, "ensemble": 99.4,
                 "cascade_share": 3.5},
    "ag_news": {"tfidf_lr": 85.2, "minilm_lr": 85.7, "concat_lr": 88.0, "ensemble": 88.2,
                "cascade_share": 28.0},
}


def plain_sklearn(data: TextDataset) -> float:
    """TF-IDF word 1-2 grams + logistic regression, nothing from hybrid_ai."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(C=10.0, solver="saga", max_iter=300, tol=1e-3))
    pipe.fit(data.train_texts, data.train_labels)
    return float(pipe.score(data.test_texts, data.test_labels))


def run_dataset(name: str, fusions: list[str], with_ablation: bool = True,
                cv: int = 5) -> dict[str, Any]:
    """Every row of the table for one dataset, accuracies as fractions."""
    data = load_dataset(name)
    started = time.perf_counter()
    row: dict[str, Any] = {"dataset": name, "plain_sklearn_tfidf_lr": plain_sklearn(data)}
    models = {}
    for key, features, fusion in [("tfidf_lr", "tfidf", "concat"),
                                  ("minilm_lr", "embedding", "concat"),
                                  ("concat_lr", "fused", "concat"),
                                  *[(f, "fused", f) for f in fusions]]:
        models[key] = train(data.train_texts, data.train_labels, features=features,
                            fusion=fusion, dataset=name, cv=cv)
        row[key] = evaluate(models[key], data.test_texts, data.test_labels)["accuracy"]
        print(f"{name} {key}: {row[key]:.4f} at {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    best = max(["concat_lr", *fusions], key=lambda k: row[k])
    curve = cascade_curve(models["tfidf_lr"], models[best], data.test_texts, data.test_labels)
    row |= {"best_fusion": best, "cascade_curve": curve,
            "cascade_pick": cascade_pick(curve, row[best]),
            "ablation": ablation(data) if with_ablation else None}
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table, ours / peer, in percent."""
    lines = ["| dataset | plain sklearn TF-IDF+LR | TF-IDF+LR | MiniLM+LR | concat+LR "
             "| best fusion | cascade share (threshold) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = PEERS.get(r["dataset"], {})
        pick = r["cascade_pick"]
        cascade = (f"{100 * pick['share_to_transformer']:.1f} % ({pick['threshold']})"
                   if pick else "never within 0.3")
        cells = [f"{100 * r[k]:.1f} / {peer.get(p)}" for k, p in
                 [("tfidf_lr", "tfidf_lr"), ("minilm_lr", "minilm_lr"), ("concat_lr", "concat_lr"),
                  (r["best_fusion"], "ensemble")]]
        share = peer.get("cascade_share")
        peer_cascade = "never within 0.3" if share is None else f"{share} %"
        lines.append(f"| {r['dataset']} | {100 * r['plain_sklearn_tfidf_lr']:.1f} / "
                     f"{peer.get('tfidf_lr')} | " + " | ".join(cells[:3])
                     + f" | {cells[3]} ({r['best_fusion']}) | {cascade} / {peer_cascade} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="banking77,financial_phrasebank")
    parser.add_argument("--fusions", default="stacking,oof_vote")
    parser.add_argument("--cv", type=int, default=5, help="folds for stacking / OOF weights")
    parser.add_argument("--no-ablation", action="store_true", help="skip the ablation refits")
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    args = parser.parse_args()
    fusions = [f for f in args.fusions.split(",") if f]
    rows = [run_dataset(name, fusions, not args.no_ablation, args.cv)
            for name in args.datasets.split(",") if name]
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
