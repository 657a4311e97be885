"""The ``keyword_flags`` stage: one ``flag`` fact per lexicon entry found in the case text.

    - stage: keyword_flags
      with:
        lexicon:
          fraud: [stolen, fraud, "unauthorized charge"]
          urgent: [urgent, asap, immediately]
        case_sensitive: false      # default
        whole_words: true          # default

For each flag with at least one keyword in the text it writes::

    flag {name: "fraud", matched: ["stolen", "unauthorized charge"], spans: [[12, 18], [31, 50]]}

``matched`` lists the flag's keywords that were found, as written in the lexicon (whitespace
runs collapsed to one space), in the order they first occur; ``spans`` are the ``[start, end)``
character offsets of every occurrence in the text, in text order. Flags come out in lexicon
order; a flag with no keyword in the text writes nothing. Each fact is derived from the
``input`` fact, with source ``"keywords"``. Matching (phrases, whole words, case) is described
in :mod:`hybrid_ai_keywords._matching`.

Confidence
    ``1 - 0.5 ** k`` where ``k`` is the number of *distinct* keywords of that flag found: one
    keyword gives 0.5, two 0.75, three 0.875, always below 1. Repeating one keyword adds nothing
    (a message saying "stolen" five times is still one piece of evidence); each further,
    different keyword halves the remaining doubt. It measures how much lexical evidence there
    is, not how likely the flag is true; calibrate downstream if you need a probability. The
    stage's own confidence (read by cascades) is that of its strongest flag, None when no flag
    fired.

Why the matchers are compiled in ``warm_up`` and not in ``__init__``
    The stage contract says construction does no work, and pipelines are built (and checked)
    more often than they are run: ``hybrid-ai check``, plan rendering, tests. Compiling a
    lexicon of 2,000 keywords takes about a tenth of a second, and escaped keywords cannot fail
    to compile, so compiling early would find no extra error and only slow every graph build.
    ``__init__`` validates the parameters (so a bad lexicon is reported when the graph is
    built, with the pipeline's file and line); ``warm_up`` compiles, and ``process`` compiles on
    first use if nobody called ``warm_up``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hybrid_ai import BaseStage, Fact, FactView, NewFact, StageOutput

from ._matching import MAX_KEYWORD_LENGTH, KeywordMatcher

__all__ = ["KeywordFlagStage"]

COMPONENT = "keyword_flags"
SOURCE = "keywords"


class KeywordFlagStage(BaseStage):
    """Flags from a lexicon of keywords and phrases (see the module docstring)."""

    requires = ("input",)
    produces = ("flag",)
    # Matching is a trie-shaped regex over one message: well under a millisecond even for a
    # lexicon of 10,000 keywords, so it runs on the event loop rather than hopping to a thread.
    blocking = False
    cost = 0.1

    def __init__(
        self,
        *,
        lexicon: Mapping[str, Sequence[str]],
        case_sensitive: bool = False,
        whole_words: bool = True,
    ) -> None:
        clean = _validate_lexicon(lexicon)
        for name, value in (("case_sensitive", case_sensitive), ("whole_words", whole_words)):
            if not isinstance(value, bool):
                raise ValueError(f"{COMPONENT}: `{name}` must be true or false, got "
                                 f"{type(value).__name__} {value!r}")
        super().__init__(lexicon=clean, case_sensitive=case_sensitive, whole_words=whole_words)
        self.lexicon: dict[str, list[str]] = clean
        self.case_sensitive = case_sensitive
        self.whole_words = whole_words
        self._matchers: dict[str, KeywordMatcher] | None = None

    def warm_up(self) -> None:
        """Compile one matcher per flag (idempotent)."""
        if self._matchers is None:
            self._matchers = self._compile()

    def _compile(self) -> dict[str, KeywordMatcher]:
        return {
            name: KeywordMatcher(words, case_sensitive=self.case_sensitive,
                                 whole_words=self.whole_words)
            for name, words in self.lexicon.items()
        }

    def process(self, view: FactView) -> StageOutput:
        # Two threads compiling at once would build equal dicts; the last assignment wins.
        matchers = self._matchers if self._matchers is not None else self._compile()
        self._matchers = matchers
        source = view.last("input")
        text = source.get("text") if source is not None else view.case.text
        if not isinstance(text, str) or not text:
            return StageOutput()
        facts = []
        for name, matcher in matchers.items():
            draft = self._flag(name, matcher, text, source)
            if draft is not None:
                facts.append(draft)
        best = max((f.confidence or 0.0 for f in facts), default=None)
        return StageOutput(facts, confidence=best)

    def _flag(self, name: str, matcher: KeywordMatcher, text: str,
              source: Fact | None) -> NewFact | None:
        words = self.lexicon[name]
        found: dict[int, None] = {}  # keyword positions in first-seen order
        spans: list[list[int]] = []
        for index, start, end in matcher.find(text):
            found.setdefault(index)
            spans.append([start, end])
        if not spans:
            return None
        matched = [words[i] for i in found]
        return NewFact(
            "flag",
            {"name": name, "matched": matched, "spans": spans},
            confidence=1.0 - 0.5 ** len(matched),
            derived_from=[source] if source is not None else [],
            source=SOURCE,
            detail={"case_sensitive": self.case_sensitive, "whole_words": self.whole_words},
        )


def _validate_lexicon(lexicon: object) -> dict[str, list[str]]:
    """A plain ``{flag: [keyword, ...]}`` copy, or ValueError naming the flag at fault."""
    example = "e.g. {fraud: [stolen, scam], urgent: [asap]}"
    if not isinstance(lexicon, Mapping):
        raise ValueError(f"{COMPONENT}: `lexicon` must map flag names to lists of keywords "
                         f"({example}), got {type(lexicon).__name__}")
    if not lexicon:
        raise ValueError(f"{COMPONENT}: `lexicon` is empty; give at least one flag ({example})")
    clean: dict[str, list[str]] = {}
    for name, words in lexicon.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{COMPONENT}: flag name {name!r} must be non-empty text "
                             "(quote it in YAML if it looks like a number or a boolean)")
        clean[name] = _validate_keywords(name, words)
    return clean


def _validate_keywords(flag: str, words: object) -> list[str]:
    if isinstance(words, str) or not isinstance(words, Sequence):
        hint = f" (write [{words}])" if isinstance(words, str) else ""
        raise ValueError(f"{COMPONENT}: flag {flag!r}: keywords must be a list of texts, got "
                         f"{type(words).__name__} {words!r}{hint}")
    if not words:
        raise ValueError(f"{COMPONENT}: flag {flag!r} has no keywords; give at least one")
    out: dict[str, None] = {}  # ordered and duplicate-free
    for position, word in enumerate(words, start=1):
        if not isinstance(word, str):
            raise ValueError(f"{COMPONENT}: flag {flag!r}: keyword #{position} is "
                             f"{type(word).__name__} {word!r}, not text (quote it in YAML)")
        normal = " ".join(word.split())
        if not normal:
            raise ValueError(f"{COMPONENT}: flag {flag!r}: keyword #{position} is blank")
        if len(normal) > MAX_KEYWORD_LENGTH:
            raise ValueError(f"{COMPONENT}: flag {flag!r}: keyword #{position} is longer than "
                             f"{MAX_KEYWORD_LENGTH} characters; match long text with a rule "
                             "(`text matches '...'`) instead")
        out.setdefault(normal)
    return list(out)
