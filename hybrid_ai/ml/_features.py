"""Text features as scikit-learn transformers, in named groups that ablation can drop.

Usage: ``X = FusedFeatures(drop=("char",)).fit_transform(texts)  # word TF-IDF + MiniLM``.

Groups: ``word`` (TF-IDF word 1-2 grams), ``char`` (TF-IDF char_wb 2-5 grams) and ``embedding``
(frozen MiniLM, mean pooled). Embeddings go through an :class:`EmbeddingStore`, which encodes
each distinct text once and is shared (never copied) by every clone of an estimator, so
cross-validation folds and stacked models re-use the vectors instead of re-encoding.
"""

from __future__ import annotations

import copy
import importlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, MissingDependencyError

__all__ = [
    "FEATURE_GROUPS",
    "EmbeddingFeatures",
    "EmbeddingStore",
    "FusedFeatures",
    "TfidfFeatures",
    "default_store",
]

FEATURE_GROUPS = ("word", "char", "embedding")
DEFAULT_CACHE_DIR = Path(".hybrid_ai_cache") / "embeddings"
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
    copied store would forget what it holds and encode every fold again.
    """

    def __init__(self, encoder: TextEncoder | None = None, *,
                 cache_dir: str | Path | None = DEFAULT_CACHE_DIR) -> None:
        self._encoder = encoder
        self._cache_dir = cache_dir
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
            self._encoder = get_encoder(batch_size=64, cache=cache)
        return self._encoder

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
    """The process-wide store (MiniLM, disk cache under ``.hybrid_ai_cache/embeddings``)."""
    global _DEFAULT_STORE
    if _DEFAULT_STORE is None:
        _DEFAULT_STORE = EmbeddingStore()
    return _DEFAULT_STORE


def _texts(X: Any) -> list[str]:
    if isinstance(X, str):
        raise ConfigError("features expect a sequence of texts, got one str; wrap it in a list")
    return [str(x) for x in X]


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
        vectors = store.vectors(_texts(X))
        # The weight balances this group against TF-IDF blocks inside a concatenation.
        return vectors * np.float32(self.weight) if self.weight != 1.0 else vectors

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["store"] = None  # an encoder, its lock and its vectors never go into a file
        return state


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


class FusedFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Named groups side by side (sparse): ``FusedFeatures(groups=("word", "embedding"))``.

    ``drop`` removes groups by name, which is how the ablation table is made.
    """

    def __init__(self, groups: Sequence[str] = FEATURE_GROUPS, drop: Sequence[str] = (),
                 store: EmbeddingStore | None = None, embedding_weight: float = 1.0) -> None:
        self.groups = groups
        self.drop = drop
        self.store = store
        self.embedding_weight = embedding_weight

    def active_groups(self) -> list[str]:
        """The groups left after ``drop``, checked against :data:`FEATURE_GROUPS`."""
        unknown = sorted((set(self.groups) | set(self.drop)) - set(FEATURE_GROUPS))
        if unknown:
            raise ConfigError(f"unknown feature group(s) {unknown}; known: {FEATURE_GROUPS}")
        active = [g for g in self.groups if g not in self.drop]
        if not active:
            raise ConfigError(f"dropping {list(self.drop)} leaves no feature group")
        return active

    def _make(self, group: str) -> Any:
        if group == "embedding":
            return EmbeddingFeatures(self.store, self.embedding_weight)
        return TfidfFeatures(group)

    def fit(self, X: Any, y: Any = None) -> FusedFeatures:
        texts = _texts(X)
        self.parts_ = [(g, self._make(g).fit(texts)) for g in self.active_groups()]
        return self

    def transform(self, X: Any) -> Any:
        # importlib keeps mypy off scipy, which ships no stubs (scipy is already a sklearn dep).
        sparse = importlib.import_module("scipy.sparse")
        texts = _texts(X)
        blocks = [part.transform(texts) for _, part in self.parts_]
        return sparse.hstack([sparse.csr_matrix(b) for b in blocks], format="csr")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["store"] = None
        return state
