"""The rule functions this plugin adds to the expression language.

They are pure (no I/O) and follow the language's ``null`` convention: ``null`` in, ``null`` out.

``contains_any(text, words)``
    True when ``text`` contains one of ``words`` (a list of texts, or one text) as a whole word
    or phrase, ignoring case (the matching rules of :mod:`hybrid_ai_keywords._matching`);
    ``null`` when ``text`` or ``words`` is ``null``. Blank words are ignored.
``word_count(text)``
    The number of words in ``text``; ``null`` when ``text`` is ``null``. A word is a run of
    letters, digits or ``_``, with inner apostrophes and hyphens kept (``"don't"``, ``"e-mail"``
    count once).

Any other argument type is an error, which the engine reports as an ``EvaluationError`` naming
the expression.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ._matching import MAX_KEYWORD_LENGTH, KeywordMatcher

__all__ = ["contains_any", "word_count"]

_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")


@lru_cache(maxsize=256)
def _matcher(words: tuple[str, ...]) -> KeywordMatcher:
    # A condition passes the same literal list for every case: build its matcher once.
    return KeywordMatcher(words, case_sensitive=False, whole_words=True)


def contains_any(text: Any, words: Any) -> bool | None:
    """``contains_any(text, ['stolen', 'fraud'])``: a whole-word, case-insensitive match of any."""
    if text is None or words is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"contains_any() needs text as its first argument, got "
                        f"{type(text).__name__}")
    items = [words] if isinstance(words, str) else words
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"contains_any() needs a list of words as its second argument, got "
                        f"{type(words).__name__}")
    cleaned: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"contains_any() words must be text, got {type(item).__name__} "
                            f"{item!r}")
        if len(item) > MAX_KEYWORD_LENGTH:
            raise ValueError(f"contains_any() words may be at most {MAX_KEYWORD_LENGTH} "
                             f"characters long, got {len(item)}")
        if item.strip():
            cleaned.append(item)
    if not cleaned:
        return False
    return _matcher(tuple(cleaned)).search(text)


def word_count(text: Any) -> int | None:
    """``word_count(text)``: how many words ``text`` holds (``null`` for ``null``)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"word_count() needs text, got {type(text).__name__}")
    return sum(1 for _ in _WORD.finditer(text))
