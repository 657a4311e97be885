"""Text understanding: local sentence embeddings with a content-addressed cache.

Usage: ``from hybrid_ai.llm import get_encoder; get_encoder().encode(["Where is my card?"])``.
"""

from hybrid_ai.llm._cache import CacheStats, EmbeddingCache, cache_key
from hybrid_ai.llm._encoder import (
    DEFAULT_MODEL_NAME,
    Encoder,
    EncodeReport,
    default_model_path,
    get_encoder,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "CacheStats",
    "EmbeddingCache",
    "EncodeReport",
    "Encoder",
    "cache_key",
    "default_model_path",
    "get_encoder",
]
