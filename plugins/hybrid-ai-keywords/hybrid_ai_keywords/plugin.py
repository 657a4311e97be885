"""The plugin module named by the entry point (``keywords = "hybrid_ai_keywords.plugin"``).

It holds hook implementations only. hybrid-ai calls each once per plugin manager and merges the
returned mappings into its registries; a name another plugin already registered is an error, so
pick names that say where they come from when they could clash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hybrid_ai import hookimpl

from ._functions import contains_any, word_count
from ._stage import KeywordFlagStage


@hookimpl
def hybrid_ai_stages() -> Mapping[str, Callable[..., Any]]:
    """``stage: keyword_flags`` in a pipeline file."""
    return {"keyword_flags": KeywordFlagStage}


@hookimpl
def hybrid_ai_rule_functions() -> Mapping[str, Callable[..., Any]]:
    """``contains_any(text, words)`` and ``word_count(text)`` in rule and route conditions."""
    return {"contains_any": contains_any, "word_count": word_count}
