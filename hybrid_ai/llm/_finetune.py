"""Adapt the sentence encoder to labelled data, on the CPU, and save it as a model directory.

    report = tune_encoder(texts, labels, "models/b77-encoder", method="setfit",
                          val_texts=vx, val_labels=vy, num_iterations=20)
    Encoder(model_path=report.output).encode(["where is my card?"])

``setfit`` follows the SetFit recipe by default: for each of ``num_iterations`` rounds every
example is paired once with a same-label and once with an other-label example (target cosine 1
and 0, so the pairs are balanced), and one epoch over the shuffled pairs is trained with a
cosine-similarity (squared error) loss on mean-pooled embeddings, batch 16 pairs, lr 2e-5,
linear warm-up over 10 % of the steps then linear decay. SetFit's 20 iterations mean about 2.5
steps per example: on 2 CPU cores a step of 16 pairs takes about 4 s, so lower
``num_iterations`` to fit a time budget. ``num_iterations=0`` gives the older, cheaper variant in
which batches hold groups of same-label examples and *all* pairs inside a batch count.
``classify`` trains the encoder with a linear head and cross-entropy, then drops the head.

With validation data the model is scored ``evals_per_epoch`` times per epoch (nearest class
centroid of the training examples, the way ``few_shot`` classifies), the best checkpoint is
kept and training stops after ``patience`` evaluations without improvement; the untouched base
competes too, so a tuning run that does not help is reported as such and saves the base weights.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._errors import ConfigError, InputError
from ._encoder import _checked_dir, default_model_path
from ._quiet import import_backend, load_local, quiet_loading

_log = logging.getLogger(__name__)

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
    steps: int = 0
    val_steps: list[int] = field(default_factory=list)
    best_step: int = 0

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


def _setfit_pairs(labels: Sequence[int], iterations: int,
                  rng: random.Random) -> list[tuple[int, int, float]]:
    """SetFit's pairs: per iteration, each example with one same-label and one other-label
    partner (target cosine 1 and 0), so positives and negatives stay balanced; shuffled."""
    by_label: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    pairs: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for i, label in enumerate(labels):
            same = by_label[label]
            if len(same) > 1:
                pairs.append((i, rng.choice([j for j in same if j != i]), 1.0))
            other = rng.randrange(len(labels))
            while labels[other] == label:
                other = rng.randrange(len(labels))
            pairs.append((i, other, 0.0))
    rng.shuffle(pairs)
    return pairs


def _shuffled_batches(count: int, size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(count))
    rng.shuffle(order)
    return [order[s : s + size] for s in range(0, count, size)]


# -- model pieces ---------------------------------------------------------------------------------


def _load(base: Path, max_length: int, batch_size: int) -> _Run:
    torch, _ = import_backend()
    tokenizer, model = load_local(base, "AutoModel", what="the encoder to tune")
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


def _trainable(model: Any, top: int | None) -> list[Any]:
    """The parameters to tune: all of them, or those of the top ``top`` transformer layers.

    The others get ``requires_grad=False``, so backward stops at the lowest tuned layer and
    the optimiser keeps no state for them.
    """
    if top is None:
        return list(model.parameters())
    blocks = _layer_stack(model)
    if top >= len(blocks):
        return list(model.parameters())
    for param in model.parameters():
        param.requires_grad_(False)
    tuned = [p for block in blocks[len(blocks) - top :] for p in block.parameters()]
    for param in tuned:
        param.requires_grad_(True)
    return tuned


def _layer_stack(model: Any) -> list[Any]:
    """The longest list of transformer blocks (``encoder.layer`` in BERT-style models)."""
    import torch

    stacks: list[list[Any]] = [
        list(m) for name, m in model.named_modules()
        if isinstance(m, torch.nn.ModuleList) and name.split(".")[-1] in ("layer", "layers")]
    if not stacks:
        raise ConfigError(
            f"train_layers needs a model with a list of transformer layers; "
            f"{type(model).__name__} has none (named 'layer' or 'layers'); leave train_layers "
            "unset to tune every weight"
        )
    return max(stacks, key=len)


# -- training -------------------------------------------------------------------------------------


class _Trainer:
    """One tuning run: batches, a warm-up/decay schedule, validation, best-state bookkeeping."""

    def __init__(self, run: _Run, texts: list[str], y: list[int], method: Method, classes: int,
                 settings: _Settings) -> None:
        self.run, self.texts, self.y, self.method = run, texts, y, method
        self.settings = settings
        torch = run.torch
        self.rng = random.Random(settings.seed)
        torch.manual_seed(settings.seed)
        hidden = int(run.model.config.hidden_size)
        self.head = torch.nn.Linear(hidden, classes) if method == "classify" else None
        self.params = _trainable(run.model, settings.train_layers)
        groups = [{"params": self.params, "lr": settings.learning_rate}]
        if self.head is not None:
            # The head starts from nothing, so it learns at a much higher rate than the body.
            groups.append({"params": self.head.parameters(), "lr": 1e-2})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        self.scheduler: Any = None
        self._centroid_ids: list[int] | None = None
        run.model.train()

    def batches(self) -> list[list[tuple[int, int, float]]] | list[list[int]]:
        """One epoch: SetFit pairs for ``setfit`` (with iterations), else batches of examples."""
        size = self.run.batch_size
        if self.method == "setfit" and self.settings.num_iterations:
            pairs = _setfit_pairs(self.y, self.settings.num_iterations, self.rng)
            return [pairs[s : s + size] for s in range(0, len(pairs), size)]
        if self.method == "setfit":
            return [b for b in _contrastive_batches(self.y, size, self.rng) if len(b) > 1]
        return [b for b in _shuffled_batches(len(self.y), size, self.rng) if len(b) > 1]

    def schedule(self, total_steps: int) -> None:
        """Linear warm-up over ``warmup`` of the steps, then linear decay to zero (as SetFit)."""
        warm = max(1, int(total_steps * self.settings.warmup))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total_steps - step) / max(1, total_steps - warm))

        self.scheduler = self.run.torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def step(self, batch: list[Any]) -> float:
        """One optimiser step on a batch of pairs or of example indices; the loss."""
        torch = self.run.torch
        if batch and isinstance(batch[0], tuple):
            loss = self._pair_loss(batch)
        else:
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
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return float(loss.detach())

    def _pair_loss(self, pairs: list[tuple[int, int, float]]) -> Any:
        """SetFit's cosine-similarity loss: squared error of cos(a, b) against 1 or 0."""
        torch = self.run.torch
        # Both sides in one forward pass: one padded batch instead of two.
        vectors = _pooled(self.run, [self.texts[a] for a, _, _ in pairs] +
                          [self.texts[b] for _, b, _ in pairs])
        left, right = vectors[: len(pairs)], vectors[len(pairs) :]
        target = torch.tensor([t for _, _, t in pairs], dtype=vectors.dtype)
        return torch.nn.functional.mse_loss((left * right).sum(dim=1), target)

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
    epochs: int | None = None,
    patience: int = 2,
    per_class: int | None = None,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    max_length: int = 128,
    num_threads: int | None = None,
    base_model: str | Path | None = None,
    seed: int = 0,
    num_iterations: int = 20,
    warmup: float = 0.1,
    evals_per_epoch: int = 4,
    train_layers: int | None = None,
) -> TuneReport:
    """Tune the encoder on labelled texts and save it to ``output`` (config, weights, tokenizer).

    ``tune_encoder(x, y, "out", val_texts=vx, val_labels=vy)``; then
    ``Encoder(model_path="out")`` or ``embed``/``few_shot`` with ``model_path: out`` use it.
    ``epochs`` defaults to 1 for ``setfit`` (one pass over the pairs) and 4 for ``classify``;
    ``num_iterations=0`` gives the older in-batch all-pairs ``setfit`` variant.
    ``train_layers=2`` tunes only the top two transformer layers (the embeddings and the layers
    below stay as they are): steps cost about half, and few examples move fewer weights.
    """
    started = time.perf_counter()
    epochs = epochs if epochs is not None else (1 if method == "setfit" else 4)
    settings = _Settings(learning_rate, seed, num_iterations, warmup, evals_per_epoch,
                         train_layers)
    _check_settings(method, epochs, patience, batch_size, settings)
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
                       settings)
    history = _train(trainer, val, epochs, patience)
    out = _save(run, Path(output), base, names, method, history)
    return TuneReport(out, method, len(texts), len(names), history["epochs_run"],
                      history["best_epoch"], history["stopped_early"],
                      round(time.perf_counter() - started, 2), history["val"], history["loss"],
                      history["steps"], history["val_steps"], history["best_step"])


@dataclass(frozen=True)
class _Settings:
    """The optimiser and schedule knobs of one run."""

    learning_rate: float
    seed: int
    num_iterations: int
    warmup: float
    evals_per_epoch: int
    train_layers: int | None = None


def _check_settings(method: str, epochs: int, patience: int, batch_size: int,
                    settings: _Settings) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown tuning method {method!r}; use one of: {', '.join(METHODS)}")
    for name, value in (("epochs", epochs), ("patience", patience), ("batch_size", batch_size),
                        ("evals_per_epoch", settings.evals_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if batch_size < 2:
        raise ConfigError("batch_size must be at least 2: a batch needs pairs")
    if not settings.learning_rate > 0:
        raise ConfigError(f"learning_rate must be positive, got {settings.learning_rate!r}")
    iterations = settings.num_iterations
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ConfigError(f"num_iterations must be an integer >= 0, got {iterations!r}")
    layers = settings.train_layers
    if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int)
                               or layers < 1):
        raise ConfigError(f"train_layers must be a positive integer or None (all layers), got "
                          f"{layers!r}")
    if not 0 <= settings.warmup < 1:
        raise ConfigError(f"warmup is a fraction of the steps in [0, 1), got {settings.warmup!r}")


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


class _Keeper:
    """Early stopping: the best validation score so far, its weights, evaluations since."""

    def __init__(self, trainer: _Trainer, val: tuple[list[str], list[int]] | None,
                 patience: int, history: dict[str, Any]) -> None:
        self.trainer, self.val, self.patience, self.history = trainer, val, patience, history
        self.best, self.waited = (-1.0, -1.0), 0
        self.state: dict[str, Any] | None = None
        if val is not None:
            self.check(0, 0)  # the untouched base competes

    def check(self, epoch: int, step: int) -> bool:
        """Score the current weights; True when ``patience`` evaluations brought no gain."""
        if self.val is None:
            return False
        score = self.trainer.validate(*self.val)
        self.history["val"].append(round(score[0], 4))
        self.history["val_steps"].append(step)
        _log.info("tuning: epoch %d, step %d of %d, validation accuracy %.4f (best so far %.4f)",
                  epoch, step, self.history["planned_steps"], score[0], max(score[0],
                                                                             self.best[0]))
        if score > self.best:
            self.best, self.state, self.waited = score, self.trainer.snapshot(), 0
            self.history["best_epoch"], self.history["best_step"] = epoch, step
            return False
        self.waited += 1
        return self.waited >= self.patience


def _train(trainer: _Trainer, val: tuple[list[str], list[int]] | None, epochs: int,
           patience: int) -> dict[str, Any]:
    """Run the epochs; with validation data keep the best state and stop on a plateau."""
    history: dict[str, Any] = {"val": [], "loss": [], "best_epoch": epochs, "epochs_run": 0,
                               "stopped_early": False, "steps": 0, "val_steps": [],
                               "best_step": 0}
    plan = [trainer.batches() for _ in _epochs(epochs)]
    total = history["planned_steps"] = sum(len(b) for b in plan)
    keeper = _Keeper(trainer, val, patience, history)
    trainer.schedule(total)
    for epoch, batches in enumerate(plan, start=1):
        history["epochs_run"] = epoch
        if _run_epoch(trainer, keeper, batches, epoch, history):
            history["stopped_early"] = history["steps"] < total
            break
    if keeper.state is not None:
        trainer.run.model.load_state_dict(keeper.state)
    else:  # no validation: the last step is kept
        history["best_epoch"], history["best_step"] = history["epochs_run"], history["steps"]
    return history


def _run_epoch(trainer: _Trainer, keeper: _Keeper, batches: list[Any], epoch: int,
               history: dict[str, Any]) -> bool:
    """Train on ``batches``, validating evenly ``evals_per_epoch`` times; True to stop."""
    # Validating within the epoch matters for setfit: one epoch of pairs is the whole run.
    count = min(trainer.settings.evals_per_epoch, max(1, len(batches)))
    checkpoints = {round(len(batches) * k / count) for k in range(1, count + 1)}
    losses: list[float] = []
    for done, batch in enumerate(batches, start=1):
        losses.append(trainer.step(batch))
        history["steps"] += 1
        if done in checkpoints and keeper.check(epoch, history["steps"]):
            break
    history["loss"].append(round(float(np.mean(losses)), 5) if losses else 0.0)
    _log.info("tuning: epoch %d done, %d steps, mean loss %.4f", epoch, history["steps"],
              history["loss"][-1])
    return keeper.waited >= keeper.patience and keeper.val is not None


def _epochs(count: int) -> Iterator[int]:
    yield from range(1, count + 1)


def _save(run: _Run, output: Path, base: Path, labels: list[str], method: str,
          history: dict[str, Any]) -> Path:
    """Write an ordinary transformers model directory plus a small JSON card."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        run.model.eval()
        with quiet_loading(import_backend()[1]):
            run.model.save_pretrained(output)  # safetensors, the transformers default
            run.tokenizer.save_pretrained(output)
        card = {"base_model": str(base), "method": method, "labels": labels,
                "pooling": "mean", "normalize": True} | history
        (output / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the tuned model to {output}: {exc}") from exc
    return output.resolve()
