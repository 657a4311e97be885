"""Adapt the sentence encoder to labelled data, on the CPU, and save it as a model directory.

    report = tune_encoder(texts, labels, "models/b77-encoder", method="setfit",
                          val_texts=vx, val_labels=vy, epochs=4)
    Encoder(model_path=report.output).encode(["where is my card?"])

``setfit`` is contrastive in the manner of SetFit: pairs come from the labels (same label ->
cosine 1, different -> cosine 0) and a cosine-similarity loss pulls mean-pooled embeddings of a
class together. Rather than encoding each sampled pair separately, every batch holds a few
examples of each of several classes and *all* pairs inside the batch count, so each forward pass
yields ``B(B-1)/2`` pairs instead of ``B/2`` (the same loss, far less compute on a CPU).
``classify`` trains the encoder with a linear head and cross-entropy, then drops the head.

With validation data the model is scored after every epoch (nearest class centroid of the
training examples, the way ``few_shot`` classifies), the best epoch is kept and training stops
after ``patience`` epochs without improvement; epoch 0 (the untouched base) competes too, so a
tuning run that does not help is reported as such and saves the base weights.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._errors import ConfigError, InputError
from ._encoder import _checked_dir, _import_backend, default_model_path
from ._quiet import quiet_loading

__all__ = ["METHODS", "TuneReport", "sample_per_class", "tune_encoder"]

Method = Literal["setfit", "classify"]
METHODS: tuple[str, ...] = ("classify", "setfit")
CARD_FILE = "hybrid_ai_tuning.json"
# Examples of one class placed side by side in a contrastive batch (its positive pairs).
_GROUP = 4
_VAL_PER_CLASS = 16


@dataclass(frozen=True)
class TuneReport:
    """What a tuning run did: ``report.best_epoch``, ``report.val_accuracy[0]`` is the base."""

    output: Path
    method: str
    examples: int
    classes: int
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    seconds: float
    val_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields: ``json.dumps(report.to_dict())``."""
        return asdict(self) | {"output": str(self.output)}


@dataclass
class _Run:
    """The loaded pieces of one tuning run."""

    torch: Any
    tokenizer: Any
    model: Any
    max_length: int
    batch_size: int


# -- data -----------------------------------------------------------------------------------------


def sample_per_class(labels: Sequence[str], per_class: int, *, seed: int = 0) -> list[int]:
    """Indices of up to ``per_class`` random examples of each label: ``sample_per_class(y, 8)``."""
    if per_class < 1:
        raise ConfigError(f"per_class must be a positive integer, got {per_class}")
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    rng = random.Random(seed)
    chosen: list[int] = []
    for label in sorted(by_label):
        members = by_label[label]
        chosen += sorted(rng.sample(members, min(per_class, len(members))))
    return sorted(chosen)


def _checked_data(texts: Sequence[str], labels: Sequence[str], where: str) -> None:
    if isinstance(texts, str) or isinstance(labels, str):
        raise InputError(f"{where}: texts and labels must be lists of str, not a single str")
    if len(texts) != len(labels):
        raise InputError(f"{where}: {len(texts)} texts but {len(labels)} labels")
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if not isinstance(text, str) or not isinstance(label, str):
            raise InputError(f"{where}: row {i} has {type(text).__name__} text and "
                             f"{type(label).__name__} label; both must be str")
        if not text.strip():
            raise InputError(f"{where}: row {i} has an empty text; drop it or fill it in")


def _contrastive_batches(labels: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Batches of whole groups of ``_GROUP`` same-label examples, so each batch has positives."""
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    groups: list[list[int]] = []
    for members in by_label.values():
        rng.shuffle(members)
        groups += [members[s : s + _GROUP] for s in range(0, len(members), _GROUP)]
    rng.shuffle(groups)
    batches: list[list[int]] = [[]]
    for group in groups:
        if len(batches[-1]) + len(group) > size and batches[-1]:
            batches.append([])
        batches[-1].extend(group)
    return batches


def _shuffled_batches(count: int, size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(count))
    rng.shuffle(order)
    return [order[s : s + size] for s in range(0, count, size)]


# -- model pieces ---------------------------------------------------------------------------------


def _load(base: Path, max_length: int, batch_size: int) -> _Run:
    torch, transformers = _import_backend()
    try:
        with quiet_loading(transformers):
            tokenizer = transformers.AutoTokenizer.from_pretrained(base, local_files_only=True)
            model = transformers.AutoModel.from_pretrained(base, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"could not load the encoder to tune from {base}: {exc}") from exc
    # A private copy in float32: the process-wide shared encoder must never see these updates.
    return _Run(torch, tokenizer, model.to(dtype=torch.float32), max_length, batch_size)


def _pooled(run: _Run, texts: Sequence[str]) -> Any:
    """Mean-pooled, L2-normalised embeddings of ``texts`` (with gradients when training)."""
    torch = run.torch
    inputs = run.tokenizer(list(texts), padding=True, truncation=True,
                           max_length=run.max_length, return_tensors="pt")
    hidden = run.model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2.0, dim=1)


def _embed_all(run: _Run, texts: Sequence[str]) -> np.ndarray:
    """Embeddings in eval mode, length-sorted batches (little padding), rows in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), int(run.model.config.hidden_size)), dtype=np.float32)
    run.model.eval()
    with run.torch.inference_mode():
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            out[idx] = _pooled(run, [texts[i] for i in idx]).numpy()
    run.model.train()
    return out


def centroid_accuracy(train_vecs: np.ndarray, train_y: Sequence[int], test_vecs: np.ndarray,
                      test_y: Sequence[int]) -> float:
    """Accuracy of nearest class centroid (cosine): how ``few_shot`` would classify."""
    return _centroid_scores(train_vecs, train_y, test_vecs, test_y)[0]


def _centroid_scores(train_vecs: np.ndarray, train_y: Sequence[int], test_vecs: np.ndarray,
                     test_y: Sequence[int]) -> tuple[float, float]:
    """Nearest-centroid accuracy, and the mean margin of the true class over the best other.

    The margin breaks ties between epochs of equal accuracy (common on small validation sets),
    so early stopping still sees the classes drawing apart.
    """
    classes = max(max(train_y), max(test_y)) + 1
    sums = np.zeros((classes, train_vecs.shape[1]), dtype=np.float32)
    np.add.at(sums, np.asarray(train_y), train_vecs)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    sims = test_vecs @ sums.T
    truth = np.asarray(test_y)
    rows = np.arange(len(truth))
    true_sim = sims[rows, truth].copy()
    sims[rows, truth] = -np.inf
    margin = float(np.mean(true_sim - sims.max(axis=1)))
    sims[rows, truth] = true_sim
    return float(np.mean(sims.argmax(axis=1) == truth)), margin


def _contrastive_loss(torch: Any, vectors: Any, labels: Any) -> Any:
    """Cosine-similarity loss over every pair in the batch: same label -> 1, different -> 0.

    Positives and negatives are averaged separately, then summed, so the many negative pairs of
    a batch do not drown out its few positive ones.
    """
    sims = vectors @ vectors.T
    same = (labels[:, None] == labels[None, :]).to(sims.dtype)
    upper = torch.triu(torch.ones_like(sims), diagonal=1)
    errors = (sims - same) ** 2 * upper
    pos, neg = same * upper, (1 - same) * upper
    return (errors * pos).sum() / pos.sum().clamp(min=1) + \
        (errors * neg).sum() / neg.sum().clamp(min=1)


# -- training -------------------------------------------------------------------------------------


class _Trainer:
    """One tuning run: epochs of batches, validation, best-state bookkeeping."""

    def __init__(self, run: _Run, texts: list[str], y: list[int], method: Method, classes: int,
                 learning_rate: float, seed: int) -> None:
        self.run, self.texts, self.y, self.method = run, texts, y, method
        torch = run.torch
        self.rng = random.Random(seed)
        torch.manual_seed(seed)
        hidden = int(run.model.config.hidden_size)
        self.head = torch.nn.Linear(hidden, classes) if method == "classify" else None
        groups = [{"params": run.model.parameters(), "lr": learning_rate}]
        if self.head is not None:
            # The head starts from nothing, so it learns at a much higher rate than the body.
            groups.append({"params": self.head.parameters(), "lr": 1e-2})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        self._centroid_ids: list[int] | None = None
        run.model.train()

    def epoch(self) -> float:
        """One pass over the training data; the mean loss."""
        size = self.run.batch_size
        if self.method == "setfit":
            batches = _contrastive_batches(self.y, size, self.rng)
        else:
            batches = _shuffled_batches(len(self.y), size, self.rng)
        losses = [self._step(batch) for batch in batches if len(batch) > 1]
        return float(np.mean(losses)) if losses else 0.0

    def _step(self, batch: list[int]) -> float:
        torch = self.run.torch
        vectors = _pooled(self.run, [self.texts[i] for i in batch])
        labels = torch.tensor([self.y[i] for i in batch])
        if self.head is None:
            loss = _contrastive_loss(torch, vectors, labels)
        else:
            # Normalised vectors times a fixed scale: a cosine classifier, which keeps the
            # geometry the centroid classifier and the similarity stages rely on.
            loss = torch.nn.functional.cross_entropy(self.head(vectors * 20.0), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.run.model.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach())

    def validate(self, val_texts: list[str], val_y: list[int]) -> tuple[float, float]:
        """(accuracy, margin) on the validation texts: compared as a tuple, accuracy first.

        Centroids come from at most ``_VAL_PER_CLASS`` training examples per class, so a
        validation pass costs about the same at 8 and at 64 examples per class.
        """
        if self._centroid_ids is None:
            rng = random.Random(len(self.y))
            by_label: dict[int, list[int]] = {}
            for i, label in enumerate(self.y):
                by_label.setdefault(label, []).append(i)
            self._centroid_ids = sorted(i for members in by_label.values()
                                        for i in rng.sample(members, min(len(members),
                                                                         _VAL_PER_CLASS)))
        ids = self._centroid_ids
        train_vecs = _embed_all(self.run, [self.texts[i] for i in ids])
        return _centroid_scores(train_vecs, [self.y[i] for i in ids],
                                _embed_all(self.run, val_texts), val_y)

    def snapshot(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.run.model.state_dict().items()}


def tune_encoder(
    texts: Sequence[str],
    labels: Sequence[str],
    output: str | Path,
    *,
    method: Method = "setfit",
    val_texts: Sequence[str] | None = None,
    val_labels: Sequence[str] | None = None,
    epochs: int = 4,
    patience: int = 2,
    per_class: int | None = None,
    batch_size: int = 32,
    learning_rate: float = 3e-5,
    max_length: int = 128,
    num_threads: int | None = None,
    base_model: str | Path | None = None,
    seed: int = 0,
) -> TuneReport:
    """Tune the encoder on labelled texts and save it to ``output`` (config, weights, tokenizer).

    ``tune_encoder(x, y, "out", val_texts=vx, val_labels=vy)``; then
    ``Encoder(model_path="out")`` or ``embed``/``few_shot`` with ``model_path: out`` use it.
    """
    started = time.perf_counter()
    _check_settings(method, epochs, patience, batch_size, learning_rate)
    _checked_data(texts, labels, "training data")
    if per_class is not None:
        chosen = sample_per_class(labels, per_class, seed=seed)
        texts, labels = [texts[i] for i in chosen], [labels[i] for i in chosen]
    names = sorted(set(labels))
    if len(names) < 2:
        raise InputError(f"tuning needs at least two labels, got {names}")
    index = {name: i for i, name in enumerate(names)}
    val = _validation(val_texts, val_labels, index)
    base = _checked_dir(Path(base_model).expanduser() if base_model else default_model_path())
    run = _load(base, max_length, batch_size)
    threads = num_threads or os.cpu_count() or 1
    run.torch.set_num_threads(threads)
    trainer = _Trainer(run, list(texts), [index[x] for x in labels], method, len(names),
                       learning_rate, seed)
    history = _train(trainer, val, epochs, patience)
    out = _save(run, Path(output), base, names, method, history)
    return TuneReport(out, method, len(texts), len(names), history["epochs_run"],
                      history["best_epoch"], history["stopped_early"],
                      round(time.perf_counter() - started, 2), history["val"], history["loss"])


def _check_settings(method: str, epochs: int, patience: int, batch_size: int,
                    learning_rate: float) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown tuning method {method!r}; use one of: {', '.join(METHODS)}")
    for name, value in (("epochs", epochs), ("patience", patience), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if batch_size < 2:
        raise ConfigError("batch_size must be at least 2: a batch needs pairs")
    if not learning_rate > 0:
        raise ConfigError(f"learning_rate must be positive, got {learning_rate!r}")


def _validation(texts: Sequence[str] | None, labels: Sequence[str] | None,
                index: dict[str, int]) -> tuple[list[str], list[int]] | None:
    if texts is None and labels is None:
        return None
    if texts is None or labels is None:
        raise InputError("give both validation texts and labels, or neither")
    _checked_data(texts, labels, "validation data")
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise InputError(f"validation labels not in the training data: {unknown[:10]}; "
                         f"known: {', '.join(list(index)[:20])}")
    return list(texts), [index[x] for x in labels]


def _train(trainer: _Trainer, val: tuple[list[str], list[int]] | None, epochs: int,
           patience: int) -> dict[str, Any]:
    """Run the epochs; with validation data keep the best state and stop on a plateau."""
    history: dict[str, Any] = {"val": [], "loss": [], "best_epoch": epochs,
                               "epochs_run": 0, "stopped_early": False}
    best_state, best, waited = None, (-1.0, -1.0), 0
    if val is not None:
        best = trainer.validate(*val)
        history["val"].append(round(best[0], 4))
        best_state, history["best_epoch"] = trainer.snapshot(), 0
    for epoch in _epochs(epochs):
        history["loss"].append(round(trainer.epoch(), 5))
        history["epochs_run"] = epoch
        if val is None:
            continue
        score = trainer.validate(*val)
        history["val"].append(round(score[0], 4))
        if score > best:
            best, best_state, waited, history["best_epoch"] = score, trainer.snapshot(), 0, epoch
        else:
            waited += 1
            if waited >= patience:
                history["stopped_early"] = epoch < epochs
                break
    if best_state is not None:
        trainer.run.model.load_state_dict(best_state)
    else:
        history["best_epoch"] = history["epochs_run"]  # no validation: the last epoch is kept
    return history


def _epochs(count: int) -> Iterator[int]:
    yield from range(1, count + 1)


def _save(run: _Run, output: Path, base: Path, labels: list[str], method: str,
          history: dict[str, Any]) -> Path:
    """Write an ordinary transformers model directory plus a small JSON card."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        run.model.eval()
        with quiet_loading(_import_backend()[1]):
            run.model.save_pretrained(output)  # safetensors, the transformers default
            run.tokenizer.save_pretrained(output)
        card = {"base_model": str(base), "method": method, "labels": labels,
                "pooling": "mean", "normalize": True} | history
        (output / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the tuned model to {output}: {exc}") from exc
    return output.resolve()
