"""Text features as scikit-learn transformers, in named groups that ablation can drop.

Usage: ``X = FusedFeatures(drop=("char",)).fit_transform(texts)  # word TF-IDF + MiniLM``.

Text groups: ``word`` (TF-IDF word 1-2 grams), ``char`` (TF-IDF char_wb 2-5 grams) and
``embedding`` (frozen MiniLM, mean pooled). Structured groups, over records (dicts with
``text``, ``fields``, ``embedding`` and ``facts``, as the ``ml_model`` stage builds them from a
case's facts): ``numeric`` (named fields, median-imputed and standardised), ``categorical``
(named fields, one-hot, unknown values ignored) and ``facts`` (one-hot of tokens such as
``flag:high_risk`` from rule firings and KG links).

Embeddings go through an :class:`EmbeddingStore`, which encodes
each distinct text once and is shared (never copied) by every clone of an estimator, so
cross-validation folds and stacked models re-use the vectors instead of re-encoding.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, MissingDependencyError
from ..llm._cache import cache_root

__all__ = [
    "ALL_GROUPS",
    "FEATURE_GROUPS",
    "STRUCTURED_GROUPS",
    "EmbeddingFeatures",
    "EmbeddingStore",
    "FusedFeatures",
    "NumericFeatures",
    "TfidfFeatures",
    "TokenFeatures",
    "cache_root",
    "default_store",
]

FEATURE_GROUPS = ("word", "char", "embedding")
STRUCTURED_GROUPS = ("numeric", "categorical", "facts")
ALL_GROUPS = FEATURE_GROUPS + STRUCTURED_GROUPS
_SEP = "\x00"  # joins saved vocabulary terms; analyzers never produce it inside a term

try:  # scikit-learn is optional for the engine but required by everything in this module
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise MissingDependencyError("scikit-learn", "pip install scikit-learn") from exc


class TextEncoder(Protocol):
    """Anything with ``encode(texts) -> (n, dim) array``, such as :class:`hybrid_ai.llm.Encoder`."""

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


class EmbeddingStore:
    """Vectors by text, each computed once: ``EmbeddingStore(encoder).vectors(["hi"])``.

    Copying returns the same store: scikit-learn's ``clone`` deep-copies parameters, and a
    copied store would forget what it holds and encode every fold again. ``model_path`` names
    a local encoder folder (e.g. one written by ``hybrid-ai tune-encoder``); the default is the
    bundled MiniLM.
    """

    def __init__(self, encoder: TextEncoder | None = None, *,
                 cache_dir: str | Path | None = "default",
                 model_path: str | Path | None = None) -> None:
        self._encoder = encoder
        self._cache_dir = cache_root() / "embeddings" if cache_dir == "default" else cache_dir
        self.model_path = model_path
        self._vectors: dict[str, NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> EmbeddingStore:
        return self

    def __copy__(self) -> EmbeddingStore:
        return self

    @property
    def encoder(self) -> TextEncoder:
        """The encoder, created on first use (the bundled MiniLM with a disk cache)."""
        if self._encoder is None:
            from hybrid_ai.llm import EmbeddingCache, get_encoder

            cache = EmbeddingCache(directory=self._cache_dir) if self._cache_dir else None
            self._encoder = get_encoder(self.model_path, batch_size=64, cache=cache)
        return self._encoder

    @property
    def encoder_id(self) -> str:
        """The encoder's model id (name plus a fingerprint of its folder) for model cards."""
        return str(getattr(self.encoder, "model_id", type(self.encoder).__name__))

    def add(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> None:
        """Hand the store vectors computed elsewhere (a saved matrix, an ``embedding`` fact)."""
        with self._lock:
            self._vectors.update(zip(texts, np.asarray(vectors, dtype=np.float32), strict=True))

    def matrix(self, name: str, texts: Sequence[str]) -> NDArray[np.float32]:
        """``vectors(texts)`` saved as one .npy per (encoder, name, texts) under the cache root.

        A benchmark re-run then reads one file per dataset instead of encoding or opening one
        file per text.
        """
        digest = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass"))
        key = hashlib.sha256(self.encoder_id.encode()).hexdigest()[:12]
        path = cache_root() / "matrices" / key / f"{name}-{digest.hexdigest()[:16]}.npy"
        if path.is_file():
            rows: NDArray[np.float32] = np.load(path, allow_pickle=False)
            self.add(texts, rows)
            return rows
        rows = self.vectors(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rows, allow_pickle=False)
        return rows

    def vectors(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One row per text, in order; only texts never seen before reach the encoder."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
            if missing:
                rows = np.asarray(self.encoder.encode(missing), dtype=np.float32)
                self._vectors.update(zip(missing, rows, strict=True))
            if not texts:
                return np.empty((0, 0), dtype=np.float32)
            return np.stack([self._vectors[t] for t in texts])


_DEFAULT_STORE: EmbeddingStore | None = None


def default_store() -> EmbeddingStore:
    """The process-wide store (MiniLM, disk cache under ``cache_root() / "embeddings"``)."""
    global _DEFAULT_STORE
    if _DEFAULT_STORE is None:
        _DEFAULT_STORE = EmbeddingStore()
    return _DEFAULT_STORE


def _texts(X: Any) -> list[str]:
    if isinstance(X, str):
        raise ConfigError("features expect a sequence of texts, got one str; wrap it in a list")
    return [str(x.get("text", "")) if isinstance(x, dict) else str(x) for x in X]


def _records(X: Any) -> list[dict[str, Any]]:
    return [x if isinstance(x, dict) else {"text": str(x)} for x in _texts_checked(X)]


def _texts_checked(X: Any) -> list[Any]:
    if isinstance(X, str):
        raise ConfigError("features expect a sequence of records, got one str; wrap it in a list")
    return list(X)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")  # imputed: a missing or unreadable field is not an error at predict


class EmbeddingFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Sentence embeddings as dense features: ``EmbeddingFeatures().fit_transform(texts)``.

    ``store`` defaults to :func:`default_store`; it is not saved with a model (a loaded model
    uses the default store), so saved files never hold an encoder.
    """

    def __init__(self, store: EmbeddingStore | None = None, weight: float = 1.0) -> None:
        self.store = store
        self.weight = weight

    def fit(self, X: Any, y: Any = None) -> EmbeddingFeatures:
        self.n_features_out_ = self.transform(_texts(X)[:1]).shape[1]
        return self

    def transform(self, X: Any) -> NDArray[np.float32]:
        store = self.store if self.store is not None else default_store()
        given = [x for x in _texts_checked(X) if isinstance(x, dict) and "embedding" in x]
        if given:  # an upstream `embed` stage already computed these: hand them to the store
            store.add([str(x.get("text", "")) for x in given],
                      np.stack([np.asarray(x["embedding"], dtype=np.float32) for x in given]))
        vectors = store.vectors(_texts(X))
        # The weight balances this group against TF-IDF blocks inside a concatenation.
        return vectors * np.float32(self.weight) if self.weight != 1.0 else vectors

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["store"] = None  # an encoder, its lock and its vectors never go into a file
        return state


def _input_for(group: str, rows: list[Any]) -> list[Any]:
    # TF-IDF groups read plain texts; the others read whole records.
    return _texts(rows) if group in ("word", "char") else rows


class TfidfFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """TF-IDF over word 1-2 grams or char_wb 2-5 grams: ``TfidfFeatures("char")``."""

    def __init__(self, kind: str = "word", min_df: int = 1) -> None:
        self.kind = kind
        self.min_df = min_df

    def fit(self, X: Any, y: Any = None) -> TfidfFeatures:
        from sklearn.feature_extraction.text import TfidfVectorizer

        if self.kind not in ("word", "char"):
            raise ConfigError(f"TfidfFeatures kind must be 'word' or 'char', got {self.kind!r}")
        if self.kind == "word":
            vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=self.min_df)
        else:
            vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                  min_df=max(self.min_df, 2))
        self.vectorizer_ = vec.fit(_texts(X))
        return self

    def transform(self, X: Any) -> Any:
        return self.vectorizer_.transform(_texts(X))

    def __getstate__(self) -> dict[str, Any]:
        # skops writes a dict as one JSON node per entry: a char n-gram vocabulary made a 158 MB
        # file. Saved as one string of terms in index order, it takes a few MB.
        state: dict[str, Any] = dict(super().__getstate__())  # may be self.__dict__ itself
        vec = state.get("vectorizer_")
        if vec is not None and hasattr(vec, "vocabulary_"):
            vec = copy.copy(vec)
            vocabulary = vec.__dict__.pop("vocabulary_")
            state["vectorizer_"] = vec
            state["terms_"] = _SEP.join(sorted(vocabulary, key=vocabulary.__getitem__))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        terms = state.pop("terms_", None)
        super().__setstate__(state)
        if terms is not None:
            self.vectorizer_.vocabulary_ = {t: i for i, t in enumerate(terms.split(_SEP))}


class NumericFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Numeric fields of records, median-imputed, standardised: ``NumericFeatures(["age"])``."""

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def _matrix(self, X: Any) -> NDArray[np.float64]:
        rows = [[_number((r.get("fields") or {}).get(c)) for c in self.columns]
                for r in _records(X)]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(self.columns))

    def fit(self, X: Any, y: Any = None) -> NumericFeatures:
        if not self.columns:
            raise ConfigError("the numeric group needs field names: set `numeric: [field, ...]`")
        values = self._matrix(X)
        with np.errstate(all="ignore"):
            median = np.nanmedian(values, axis=0)
        self.median_ = np.where(np.isnan(median), 0.0, median)
        filled = np.where(np.isnan(values), self.median_, values)
        scale = filled.std(axis=0)
        self.mean_, self.scale_ = filled.mean(axis=0), np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, X: Any) -> NDArray[np.float64]:
        values = self._matrix(X)
        filled = np.where(np.isnan(values), self.median_, values)
        out: NDArray[np.float64] = (filled - self.mean_) / self.scale_
        return out


class TokenFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """One-hot of ``field=value`` (categorical) or fact tokens: ``TokenFeatures("facts")``.

    Tokens unseen in training are ignored, so a new category never breaks prediction.
    """

    def __init__(self, kind: str = "categorical", columns: Sequence[str] = ()) -> None:
        self.kind = kind
        self.columns = columns

    def _tokens(self, record: dict[str, Any]) -> list[str]:
        if self.kind == "facts":
            return [str(t) for t in record.get("facts") or ()]
        fields = record.get("fields") or {}
        return [f"{c}={fields.get(c)}" for c in self.columns]

    def fit(self, X: Any, y: Any = None) -> TokenFeatures:
        if self.kind == "categorical" and not self.columns:
            raise ConfigError("the categorical group needs field names: set `categorical: [...]`")
        seen = sorted({t for r in _records(X) for t in self._tokens(r)})
        self.vocabulary_ = {t: i for i, t in enumerate(seen)}
        return self

    def transform(self, X: Any) -> Any:
        sparse = importlib.import_module("scipy.sparse")
        rows, cols = [], []
        for i, record in enumerate(_records(X)):
            hits = {self.vocabulary_[t] for t in self._tokens(record) if t in self.vocabulary_}
            rows.extend([i] * len(hits))
            cols.extend(sorted(hits))
        shape = (len(_records(X)), max(1, len(self.vocabulary_)))
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


class FusedFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Named groups side by side (sparse): ``FusedFeatures(groups=("word", "embedding"))``.

    ``drop`` removes groups by name, which is how the ablation table is made. Inputs are texts
    or records (see the module docstring); ``numeric`` and ``categorical`` name the fields.
    """

    def __init__(self, groups: Sequence[str] = FEATURE_GROUPS, drop: Sequence[str] = (),
                 store: EmbeddingStore | None = None, embedding_weight: float = 1.0,
                 numeric: Sequence[str] = (), categorical: Sequence[str] = (),
                 dense: bool = False) -> None:
        self.groups = groups
        self.dense = dense
        self.drop = drop
        self.store = store
        self.embedding_weight = embedding_weight
        self.numeric = numeric
        self.categorical = categorical

    def active_groups(self) -> list[str]:
        """The groups left after ``drop``, checked against :data:`ALL_GROUPS`."""
        unknown = sorted((set(self.groups) | set(self.drop)) - set(ALL_GROUPS))
        if unknown:
            raise ConfigError(f"unknown feature group(s) {unknown}; known: {ALL_GROUPS}")
        active = [g for g in self.groups if g not in self.drop]
        if not active:
            raise ConfigError(f"dropping {list(self.drop)} leaves no feature group")
        return active

    def _make(self, group: str) -> Any:
        if group == "embedding":
            return EmbeddingFeatures(self.store, self.embedding_weight)
        if group == "numeric":
            return NumericFeatures(tuple(self.numeric))
        if group in ("categorical", "facts"):
            return TokenFeatures(group, tuple(self.categorical))
        return TfidfFeatures(group)

    def fit(self, X: Any, y: Any = None) -> FusedFeatures:
        rows = _texts_checked(X)
        self.parts_ = [(g, self._make(g).fit(_input_for(g, rows))) for g in self.active_groups()]
        return self

    def transform(self, X: Any) -> Any:
        # importlib keeps mypy off scipy, which ships no stubs (scipy is already a sklearn dep).
        sparse = importlib.import_module("scipy.sparse")
        rows = _texts_checked(X)
        blocks = [part.transform(_input_for(name, rows)) for name, part in self.parts_]
        joined = sparse.hstack([sparse.csr_matrix(b) for b in blocks], format="csr")
        # Trees and boosting want dense input; TF-IDF stays sparse for every linear model.
        return joined.toarray() if self.dense else joined

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["store"] = None
        return state
