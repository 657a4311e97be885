"""Keyword matching shared by the stage, and the two rule functions this plugin adds.

Matching rules (the same for ``keyword_flags`` and ``contains_any``):

* a keyword may be a phrase: its words match across any run of whitespace, so
  ``"credit card"`` finds ``"credit  card"`` and ``"credit\\ncard"``;
* *whole words*: a match may not touch a letter, digit or ``_`` on either side. This is checked
  with look-arounds rather than ``\\b``, so keywords that start or end with punctuation
  (``"c++"``, ``"$100"``) work too;
* case-insensitive matching uses Python's Unicode ``re.IGNORECASE``;
* the longest keyword wins where two start at the same place (``"credit card fraud"`` before
  ``"credit card"``); matches never overlap.

Rule functions (pure, no I/O; they follow the expression language's ``null`` convention):

``contains_any(text, words)``
    True when ``text`` contains one of ``words`` (a list of texts, or one text) as a whole word
    or phrase, ignoring case; ``null`` when ``text`` or ``words`` is ``null``.
``word_count(text)``
    The number of words in ``text``; ``null`` when ``text`` is ``null``. A word is a run of
    letters, digits or ``_``, with inner apostrophes and hyphens kept (``"don't"``, ``"e-mail"``
    count once).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

__all__ = ["contains_any", "keyword_regex", "matched_index", "word_count"]

_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")
_SPACE = re.compile(r"\s+")


def keyword_regex(
    keywords: Sequence[str], *, case_sensitive: bool = False, whole_words: bool = True
) -> re.Pattern[str]:
    """One pattern for all ``keywords``; group ``i + 1`` matched means ``keywords[i]`` matched.

    ``keywords`` must be non-blank texts (the stage and ``contains_any`` check that first).
    Alternatives are tried longest first, so the leftmost match is also the longest one there.
    """
    # Longest first, so the leftmost match is the longest; each group is named by position.
    order = sorted(range(len(keywords)), key=lambda i: -len(keywords[i]))
    alternatives = "|".join(f"(?P<k{i}>{_phrase(keywords[i], whole_words)})" for i in order)
    return re.compile(alternatives, 0 if case_sensitive else re.IGNORECASE)


def matched_index(match: re.Match[str]) -> int:
    """The position in ``keywords`` of the keyword a :func:`keyword_regex` match found."""
    name = match.lastgroup
    if name is None:  # pragma: no cover - every alternative is a named group
        raise AssertionError("keyword pattern matched outside its groups")
    return int(name[1:])


def _phrase(keyword: str, whole_words: bool) -> str:
    body = r"\s+".join(re.escape(word) for word in keyword.split())
    return rf"(?<!\w){body}(?!\w)" if whole_words else body


@lru_cache(maxsize=256)
def _contains_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    # Rule conditions call this with the same literal list for every case: compile it once.
    return keyword_regex(words, case_sensitive=False, whole_words=True)


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
        if item.strip():  # a blank word can never be a whole word: skip it
            cleaned.append(_SPACE.sub(" ", item.strip()))
    if not cleaned:
        return False
    return _contains_pattern(tuple(cleaned)).search(text) is not None


def word_count(text: Any) -> int | None:
    """``word_count(text)``: how many words ``text`` holds (``null`` for ``null``)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"word_count() needs text, got {type(text).__name__}")
    return sum(1 for _ in _WORD.finditer(text))
