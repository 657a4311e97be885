"""hybrid-ai-keywords: keyword and phrase flags for hybrid-ai, and the template plugin.

Installing the package is all it takes: hybrid-ai finds it through the entry-point group
``hybrid_ai``. Pipelines then use ``stage: keyword_flags``; rule and route conditions may call
``contains_any(text, [...])`` and ``word_count(text)``. Importing this package directly is only
needed to use the pieces from Python (``stage(KeywordFlagStage(lexicon=...))``).
"""

from __future__ import annotations

from ._functions import contains_any, word_count
from ._stage import KeywordFlagStage

__version__ = "0.1.0"

__all__ = ["KeywordFlagStage", "__version__", "contains_any", "word_count"]
