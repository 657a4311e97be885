"""Feature groups, the default fused pipeline and the cascade on six datasets, beside PEERS.md.

Usage: ``python benchmarks/fusion.py --json`` (``--datasets trec,sst2`` for a subset;
``--encoder-path DIR`` runs every embedding, the preset's included, on a tuned encoder;
``--predictions DIR`` keeps the preset's predictions there and reuses them on later runs).

Per dataset, on the splits of ../shared/data/README.md: a logistic regression on each single
feature group (word TF-IDF, char TF-IDF, MiniLM embedding) and on TF-IDF (word + char); our
default fused pipeline, exactly as ``hybrid-ai train --preset text`` builds it (trained through
the pipeline trainer, scored through the engine, one case at a time); and cascades in front of
it. Each cascade's threshold is chosen on validation predictions, out of fold on the training
split (5 folds, both stages), over every distinct confidence: the lowest share within 0.3 points
of the preset, and the most accurate share up to 25 %; the test split only reports the share
that reached the transformer and the accuracy. First stages: the TF-IDF LR alone (its top
probability, its margin, or a learned router over its features), the lexical stack (TF-IDF LR +
naive Bayes) and the cheap stack (+ distilled word vectors; ``hybrid_ai.ml.cheap_classifier``).
The old figure (TF-IDF LR, a 0.5-0.9 grid picked on the test split) stays for comparison.
Training and prediction times are ours, on this machine. Embeddings are computed once per
dataset and kept under ``~/.cache/hybrid-ai`` (``HYBRID_AI_CACHE_DIR``), so re-runs do not
encode again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_ai._facts import Case
from hybrid_ai.ml import (
    THRESHOLDS,
    EmbeddingStore,
    build_classifier,
    cascade_pick,
    cheap_classifier,
    choose_threshold,
    default_store,
    deferral_curve,
    evaluate,
    load_dataset,
    stacking_oof,
    train,
)
from hybrid_ai.ml._cheap import _stack_input
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
# The cascade the table leads with: the cheap stack's top probability, the threshold giving
# the best validation accuracy with at most 25 % of inputs sent to the preset.
MAIN_CASCADE = "cheap_stack/top_probability"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _preset(name: str, data: Any, encoder_path: str | None) -> tuple[list[str], dict[str, float]]:
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
            started = time.perf_counter()
            results = engine.run_batch(data.test_texts, concurrency=2)
            predict_seconds = time.perf_counter() - started
    decisions = [str(r.decision) for r in results]
    right = sum(d == y for d, y in zip(decisions, data.test_labels, strict=True))
    times = {"accuracy": right / len(results), "train_seconds": round(fit_seconds, 1),
             "predict_ms_per_case": round(1000 * predict_seconds / len(results), 2)}
    return decisions, times


def _fused(name: str, data: Any, encoder_path: str | None, store: EmbeddingStore,
           folder: str | None) -> dict[str, Any]:
    """The preset's test decisions and times, and its stack's out-of-fold predictions on the
    training split (the validation predictions cascades pick thresholds on); kept in
    ``folder`` and read back from there when present."""
    path = Path(folder) / f"{name}-{len(data.train_texts)}.npz" if folder else None
    if path is not None and path.is_file():
        saved = np.load(path, allow_pickle=False)
        _log(f"{name}: preset predictions from {path}")
        loaded: dict[str, Any] = {k: saved[k] for k in saved.files}
        times: dict[str, Any] = json.loads(str(saved["times"]))
        return loaded | times
    decisions, times = _preset(name, data, encoder_path)
    _log(f"{name} preset: {times['accuracy']:.4f} ({times}); out-of-fold predictions next")
    stack = build_classifier("fused", fusion="stacking_all", store=store)
    oof, members = stacking_oof(stack, data.train_texts, data.train_labels)
    found: dict[str, Any] = {"preset_test": np.asarray(decisions), "fused_oof": oof,
             "oof_tfidf": members["tfidf"], "times": json.dumps(times)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **found)
    return found | times


def _router_features(proba: Any, members: list[Any], texts: Sequence[str]) -> Any:
    """What a router sees of a first stage: its sorted top probabilities, margin, entropy,
    each member's top probability and agreement with it, and the text length."""
    top = np.sort(proba, axis=1)[:, ::-1][:, :3]
    label = proba.argmax(axis=1)
    entropy = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(axis=1)
    columns = [top, top[:, :1] - top[:, 1:2], entropy[:, None],
               np.log1p([[len(t.split())] for t in texts])]
    columns += [np.column_stack([m.max(axis=1), m.argmax(axis=1) == label]) for m in members]
    return np.hstack(columns)


def _router(val: dict[str, Any], test: dict[str, Any], right: Any) -> tuple[Any, Any]:
    """A logistic regression predicting "the first stage is right", cross-fitted on the
    validation predictions (so their scores are out of sample too); scores for both splits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    router = LogisticRegression(C=1.0, max_iter=3000)
    on_val = cross_val_predict(router, val["x"], right, cv=5, method="predict_proba")[:, 1]
    return on_val, router.fit(val["x"], right).predict_proba(test["x"])[:, 1]


def _cascade(val: tuple[Any, Any], test: tuple[Any, Any], fused: tuple[Any, Any],
             truth: tuple[Any, Any], preset: float) -> dict[str, Any]:
    """Thresholds chosen on validation (within 0.3 points; best up to 25 %), test figures."""
    (val_conf, val_first), (test_conf, test_first) = val, test
    out: dict[str, Any] = {"first_accuracy": float(np.mean(test_first == truth[1]))}
    for goal, options in (("within", {"tolerance": 0.003}), ("budget", {"budget": 0.25})):
        pick = choose_threshold(val_conf, val_first, fused[0], truth[0], **options)
        if pick is None:
            out[goal] = None
            continue
        row = deferral_curve(test_conf, test_first, fused[1], truth[1], [pick["threshold"]])[0]
        out[goal] = {"threshold": pick["threshold"], "val_share": pick["share_to_transformer"],
                     "val_accuracy": pick["accuracy"], "share": row["share_to_transformer"],
                     "accuracy": row["accuracy"], "gap": row["accuracy"] - preset,
                     "met": row["share_to_transformer"] <= 0.25 + 1e-9
                     and row["accuracy"] >= preset - 0.003 - 1e-9}
    return out


def _first_stages(data: Any, store: EmbeddingStore, tfidf: Any,
                  oof_tfidf: Any) -> dict[str, dict[str, Any]]:
    """Validation (out-of-fold) and test probabilities of each first stage, with what a router
    reads. The cheap stack is fitted as users fit it; the lexical stack is the same stack
    without word vectors, assembled from its fitted members (what its fit would compute)."""
    from sklearn.linear_model import LogisticRegression

    texts, labels = list(data.train_texts), list(data.train_labels)
    oof, members = stacking_oof(cheap_classifier(store=store), texts, labels,
                                known={"tfidf": oof_tfidf})
    lexical_oof, _ = stacking_oof(cheap_classifier(("tfidf", "nb")), texts, labels,
                                  known=members)
    stack = cheap_classifier(store=store).fit(texts, labels)
    tests = {n: stack.named_estimators_[n].predict_proba(data.test_texts) for n in members}
    tests["tfidf"] = tfidf.predict_proba(data.test_texts)
    final = LogisticRegression(C=1.0, max_iter=1000).fit(
        _stack_input([members["tfidf"], members["nb"]]), labels)
    lexical = final.predict_proba(_stack_input([tests["tfidf"], tests["nb"]]))
    names = list(members)
    return {
        "tfidf": {"val": oof_tfidf, "test": tests["tfidf"], "val_members": [], "test_members": []},
        "lexical_stack": {"val": lexical_oof, "test": lexical,
                          "val_members": [members[n] for n in ("tfidf", "nb")],
                          "test_members": [tests[n] for n in ("tfidf", "nb")]},
        "cheap_stack": {"val": oof, "test": stack.predict_proba(data.test_texts),
                        "val_members": [members[n] for n in names],
                        "test_members": [tests[n] for n in names]}}


def _cascades(data: Any, store: EmbeddingStore, tfidf: Any, fused: dict[str, Any],
              preset: float) -> dict[str, Any]:
    """Every first stage x deferral policy, thresholds from validation (see the docstring)."""
    classes = np.asarray(sorted({str(y) for y in data.train_labels}))
    truth = (np.asarray(data.train_labels).astype(str), np.asarray(data.test_labels).astype(str))
    final = (classes[fused["fused_oof"].argmax(axis=1)], fused["preset_test"].astype(str))
    found = {}
    for name, stage in _first_stages(data, store, tfidf, fused["oof_tfidf"]).items():
        val, test = stage["val"], stage["test"]
        firsts = (classes[val.argmax(axis=1)], classes[test.argmax(axis=1)])
        top2 = [np.sort(p, axis=1)[:, -2:] for p in (val, test)]
        policies = {"top_probability": (val.max(axis=1), test.max(axis=1)),
                    "margin": tuple(t[:, 1] - t[:, 0] for t in top2)}
        if name != "lexical_stack":
            router = _router({"x": _router_features(val, stage["val_members"], data.train_texts)},
                             {"x": _router_features(test, stage["test_members"],
                                                    data.test_texts)}, firsts[0] == truth[0])
            policies["router"] = router
        for policy, (val_conf, test_conf) in policies.items():
            found[f"{name}/{policy}"] = _cascade((val_conf, firsts[0]), (test_conf, firsts[1]),
                                                 final, truth, preset)
    return found


def run_dataset(name: str, limit: int | None = None, encoder_path: str | None = None,
                predictions: str | None = None) -> dict[str, Any]:
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
    fused = _fused(name, data, encoder_path, store, predictions)
    row["preset"] = fused["accuracy"]
    row |= {f"preset_{k}": fused[k] for k in ("train_seconds", "predict_ms_per_case")}
    # The former figure: the TF-IDF LR's top probability, a 0.5-0.9 grid, picked on test.
    proba = np.asarray(models["tfidf"].predict_proba(data.test_texts))
    classes = np.asarray(models["tfidf"].classifier.classes_).astype(str)
    curve = deferral_curve(proba.max(axis=1), classes[proba.argmax(axis=1)],
                           fused["preset_test"].astype(str), data.test_labels, THRESHOLDS)
    began = time.perf_counter()
    row["cascades"] = _cascades(data, store, models["tfidf"], fused, row["preset"])
    best_single = max(GROUPS, key=lambda k: row[k])
    row |= {"cascade_curve": curve, "cascade_pick": cascade_pick(curve, row["preset"]),
            "cascade_seconds": round(time.perf_counter() - began, 1),
            "best_single": best_single, "beats_best_single": row["preset"] > row[best_single],
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
    lines = ["| dataset | word | char | embedding | TF-IDF | preset (target) | cascade: cheap "
             "stack, threshold from validation -> test share / accuracy | former: TF-IDF, "
             "grid on test | peers' share | train s | predict ms/case |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = PEERS[r["dataset"]]
        pick, now = r["cascade_pick"], r["cascades"][MAIN_CASCADE]["budget"]
        former = (f"{100 * pick['share_to_transformer']:.1f} % ({pick['threshold']}, "
                  f"{100 * pick['accuracy']:.1f})" if pick else "never within 0.3")
        cascade = (f"{100 * now['share']:.1f} % / {100 * now['accuracy']:.2f}"
                   f"{' ✓' if now['met'] else ''}" if now else "none")
        share = peer["cascade_share"]
        singles = " | ".join(f"{100 * r[k]:.1f}" for k in GROUPS)
        lines.append(f"| {r['dataset']} | {singles} | **{100 * r['preset']:.2f}** "
                     f"({peer['target']}) | {cascade} | {former} | "
                     f"{'never' if share is None else f'{share} %'} | "
                     f"{r['preset_train_seconds']} | {r['preset_predict_ms_per_case']} |")
    return "\n".join([*lines, "", cascade_markdown(rows)])


def _cell(found: dict[str, Any] | None) -> str:
    if found is None:
        return "none"
    mark = " ✓" if found["met"] else ""
    return f"{100 * found['share']:.1f} % / {100 * found['gap']:+.2f}{mark}"


def cascade_markdown(rows: list[dict[str, Any]]) -> str:
    """Per first stage and policy: test share to the transformer / accuracy change against the
    preset, at the threshold chosen on validation (within 0.3 points; best up to 25 %)."""
    keys = list(rows[0]["cascades"]) if rows else []
    lines = ["| dataset | first stage / policy | first-stage accuracy | within 0.3 on val -> "
             "test share / change | best up to 25 % on val -> test share / change |",
             "|---|---|---|---|---|"]
    for r in rows:
        for key in keys:
            found = r["cascades"][key]
            lines.append(f"| {r['dataset']} | {key} | {100 * found['first_accuracy']:.1f} | "
                         f"{_cell(found['within'])} | {_cell(found['budget'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    parser.add_argument("--limit", type=int, help="first N train/test texts only (smoke test)")
    parser.add_argument("--encoder-path", help="a tuned encoder folder (hybrid-ai tune-encoder)")
    parser.add_argument("--weak", action="store_true", help="only the weak-supervision figures")
    parser.add_argument("--rows", help="also append each dataset's row to this JSON-lines file")
    parser.add_argument("--predictions", help="folder keeping the preset's test decisions and "
                        "validation predictions; datasets found there are not trained again")
    args = parser.parse_args()
    if args.weak:
        print(json.dumps(weak_sms(), indent=1))
        return
    rows = []
    for name in (n for n in args.datasets.split(",") if n):
        rows.append(run_dataset(name, args.limit, args.encoder_path, args.predictions))
        if args.rows:  # a long run keeps what it finished even if it is stopped later
            with open(args.rows, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(rows[-1]) + "\n")
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))


if __name__ == "__main__":
    main()
