"""Finding many keywords in a text at once, shared by the stage and ``contains_any``.

Matching rules:

* a keyword may be a phrase: its words match across any run of whitespace, so
  ``"credit card"`` finds ``"credit  card"`` and ``"credit\\ncard"``;
* *whole words*: a match may not touch a letter, digit or ``_`` on either side. This is checked
  with look-arounds rather than ``\\b``, so keywords that start or end with punctuation
  (``"c++"``, ``"$100"``) work too;
* case-insensitive matching is Python's Unicode ``re.IGNORECASE``;
* matches never overlap; scanning left to right, the longest keyword starting at a place wins
  (``"credit card fraud"`` before ``"credit card"``).

All keywords become one regular expression shaped as a trie (``st(?:olen|eal)`` rather than
``stolen|steal``), so the work per text position grows with the keywords' length, not their
number: a plain alternation of 2,000 keywords is about a thousand times slower.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

__all__ = ["MAX_KEYWORD_LENGTH", "KeywordMatcher"]

MAX_KEYWORD_LENGTH = 200
"""The longest keyword accepted (in characters); longer ones belong in a ``matches`` rule."""

_Trie = dict[str, "_Trie"]
_END = ""  # the key marking "a keyword ends here" (a real token is never empty)


class KeywordMatcher:
    """``KeywordMatcher(["stolen", "credit card"]).find(text)`` yields ``(index, start, end)``.

    ``index`` is the position in ``keywords`` of the keyword found. Keywords must be non-blank
    text of at most :data:`MAX_KEYWORD_LENGTH` characters (callers validate them first).
    """

    def __init__(self, keywords: Sequence[str], *, case_sensitive: bool = False,
                 whole_words: bool = True) -> None:
        self.keywords = tuple(keywords)
        self.case_sensitive = case_sensitive
        self._flags = 0 if case_sensitive else re.IGNORECASE
        self._index: dict[str, int] = {}
        trie: _Trie = {}
        for position, keyword in enumerate(self.keywords):
            key = self._key(keyword)
            if not key or len(key) > MAX_KEYWORD_LENGTH:
                raise ValueError(f"invalid keyword {keyword!r}")
            if key in self._index:
                continue  # the same keyword again (maybe in another case): the first one wins
            self._index[key] = position
            node = trie
            for token in _tokens(key):
                node = node.setdefault(token, {})
            node[_END] = {}
        body = _alternatives(trie)
        if whole_words:
            body = rf"(?<!\w)(?:{body})(?!\w)"
        self.pattern = re.compile(body, self._flags)

    def find(self, text: str) -> Iterator[tuple[int, int, int]]:
        """Every match in ``text`` as ``(keyword index, start, end)``, left to right."""
        for match in self.pattern.finditer(text):
            yield self._which(match.group()), match.start(), match.end()

    def search(self, text: str) -> bool:
        """Whether any keyword occurs in ``text``."""
        return self.pattern.search(text) is not None

    def _key(self, text: str) -> str:
        text = " ".join(text.split())
        if self.case_sensitive:
            return text
        # Per character, so that the trie lines up with the text; a character whose lower case
        # is longer (U+0130) is kept as it is and left to re.IGNORECASE.
        return "".join(low if len(low := char.lower()) == 1 else char for char in text)

    def _which(self, found: str) -> int:
        position = self._index.get(self._key(found))
        if position is not None:
            return position
        # re.IGNORECASE knows a few equivalences lower() does not (final sigma, the Kelvin
        # sign): ask each keyword. Rare, and only for such texts.
        for index, keyword in enumerate(self.keywords):
            if re.fullmatch(_phrase(keyword), found, self._flags):
                return index
        raise AssertionError(f"matched {found!r}, which is none of the keywords")


def _tokens(key: str) -> list[str]:
    tokens: list[str] = []
    for number, word in enumerate(key.split(" ")):
        if number:
            tokens.append(" ")
        tokens.extend(word)
    return tokens


def _atom(token: str) -> str:
    return r"\s+" if token == " " else re.escape(token)


def _alternatives(node: _Trie) -> str:
    """The pattern for everything below ``node``; longer keywords are tried first."""
    branches = [_atom(token) + _rest(child) for token, child in node.items() if token != _END]
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _rest(node: _Trie) -> str:
    if _END not in node:
        return _alternatives(node)
    if len(node) == 1:
        return ""
    # A keyword ends here but longer ones go on: try them first (greedy), else stop here.
    return f"(?:{_alternatives(node)})?"


def _phrase(keyword: str) -> str:
    return r"\s+".join(re.escape(word) for word in keyword.split())
