"""Entity linking: from a mention (or raw text) to the knowledge-graph nodes it names.

Labels and aliases are normalised once in :meth:`EntityLinker.build`; a mention is then
looked up exactly, then fuzzily (rapidfuzz), then, if a ``similarity`` function was given and
nothing lexical matched, by embedding similarity. Every candidate above the threshold is kept,
so ambiguity reaches the caller instead of being resolved here by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._store import TripleStore
from ._terms import IRI, RDF, RDFS, SKOS
from ._terms import Literal as RDFLiteral

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Candidate", "EntityLinker", "Mention", "Similarity", "normalise"]

Method = Literal["exact", "fuzzy", "embedding"]
Similarity = Callable[[list[str], list[str]], "NDArray[Any]"]
"""``similarity(mentions, labels)`` -> array of shape (len(mentions), len(labels)) in [0, 1]."""

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
# Words a fuzzy n-gram of running text may not begin or end with ("a withdraw", "for one time").
_STOP = frozenset([
    "a", "an", "the", "my", "me", "i", "you", "your", "we", "our", "it", "its", "this", "that",
    "to", "for", "of", "in", "on", "at", "by", "from", "with", "and", "or", "is", "was", "be",
    "been", "do", "did", "does", "have", "has", "had", "can", "could", "will", "would", "what",
    "why", "how", "when", "where",
])


@dataclass(frozen=True, slots=True)
class Candidate:
    """One possible referent: ``Candidate(node, "Card", 100.0, "bank card", "exact")``.

    ``label`` is the node's display label, ``matched`` the label or alias that matched, and
    ``score`` is on a 0-100 scale whatever the method.
    """

    node: IRI
    label: str
    score: float
    matched: str
    method: Method


@dataclass(frozen=True, slots=True)
class Mention:
    """A span of raw text naming something: ``text[m.start:m.end] == m.text``."""

    text: str
    start: int
    end: int
    candidates: tuple[Candidate, ...]


def _fold_plural(word: str) -> str:
    # Deliberately simple English rules: enough for "cards", "top-ups", "currencies"; words
    # like "status", "address", "this" and "was" are protected by their endings.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if len(word) >= 3 and word.endswith("s") and not word.endswith(_KEEP_S):
        return word[:-1]
    return word


_KEEP_S = ("ss", "us", "is", "as", "os")


def _norm_token(token: str) -> str:
    word = token.casefold()
    if word.endswith(("'s", "\u2019s")):
        word = word[:-2]
    return _fold_plural(word.replace("'", "").replace("\u2019", ""))


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """Normalised word tokens with their character spans in ``text``."""
    return [(_norm_token(m.group()), m.start(), m.end()) for m in _WORD.finditer(text)]


def normalise(text: str) -> str:
    """Casefold, drop punctuation, fold plurals: ``normalise("Top-Ups!") == "top up"``."""
    return " ".join(token for token, _, _ in _tokens(text))


@dataclass(frozen=True, slots=True)
class _Surface:
    node: IRI
    text: str  # the label or alias as written


class EntityLinker:
    """Links mentions to store nodes by label and alias.

    ``linker = EntityLinker(store).build(); linker.link("top-upp")[0].node``

    ``types`` limits indexing to nodes of those rdf:types (``link`` and ``find_mentions``
    also take ``types`` per call, so one linker can serve several uses). ``scorer`` is any
    rapidfuzz-style ``(a, b) -> 0..100`` function on normalised strings; the default,
    token_sort_ratio, is typo- and order-tolerant without token_set_ratio's habit of scoring
    any word subset 100 (which would make "card" a perfect match for "virtual card").
    """

    def __init__(
        self,
        store: TripleStore,
        *,
        label_predicates: Sequence[IRI] = (RDFS.label, SKOS.altLabel),
        min_score: float = 80.0,
        types: Iterable[IRI] | None = None,
        scorer: Callable[..., float] | None = None,
        similarity: Similarity | None = None,
        min_similarity: float = 0.5,
        min_mention_score: float = 90.0,
    ) -> None:
        self.store = store
        self.label_predicates = tuple(label_predicates)
        self.min_score = min_score
        self.types = frozenset(types) if types is not None else None
        self.scorer = scorer
        self.similarity = similarity
        self.min_similarity = min_similarity
        self.min_mention_score = min_mention_score
        self._index: dict[str, list[_Surface]] | None = None
        self._keys: list[str] = []
        self._surfaces: list[_Surface] = []
        self._labels: dict[IRI, str] = {}
        self._kinds: dict[IRI, frozenset[IRI]] = {}
        self._longest = 0

    # ---- building ------------------------------------------------------------------------

    def build(self) -> EntityLinker:
        """Index every label and alias (the heavy step); returns self. Call again after edits."""
        self._labels, self._kinds = {}, {}  # the store may have changed since the last build
        index: dict[str, list[_Surface]] = {}
        surfaces: list[_Surface] = []
        for node, text in self._label_texts():
            key = normalise(text)
            entries = index.setdefault(key, [])
            if key and all(entry.node != node for entry in entries):
                entries.append(_Surface(node, text))
                surfaces.append(_Surface(node, text))
        self._index = {key: entries for key, entries in index.items() if entries}
        self._keys = list(self._index)
        self._surfaces = surfaces
        self._longest = max((len(key.split()) for key in self._keys), default=0)
        return self

    def _label_texts(self) -> Iterable[tuple[IRI, str]]:
        found: list[tuple[IRI, str]] = []
        for predicate in self.label_predicates:
            for node, _, obj in self.store.triples(None, predicate, None):
                if isinstance(node, IRI) and isinstance(obj, RDFLiteral) and self._wanted(node):
                    found.append((node, obj.lexical))
        found.sort(key=lambda pair: (pair[0].value, pair[1]))  # stable, order-free results
        return found

    def _wanted(self, node: IRI, types: frozenset[IRI] | None = None) -> bool:
        wanted = self.types if types is None else types
        return wanted is None or not wanted.isdisjoint(self._kinds_of(node))

    def _kinds_of(self, node: IRI) -> frozenset[IRI]:
        found = self._kinds.get(node)
        if found is None:
            kinds = self.store.objects(node, RDF.type)
            found = self._kinds[node] = frozenset(k for k in kinds if isinstance(k, IRI))
        return found

    def _ready(self) -> dict[str, list[_Surface]]:
        if self._index is None:
            self.build()  # lazily, so a forgotten build() costs time once rather than failing
        assert self._index is not None
        return self._index

    def _label(self, node: IRI) -> str:
        found = self._labels.get(node)
        if found is None:
            found = self._labels[node] = self.store.label(node)
        return found

    # ---- linking one mention -------------------------------------------------------------

    def link(
        self, mention: str, *, limit: int = 5, types: Iterable[IRI] | None = None
    ) -> list[Candidate]:
        """Candidates for a mention, best first: ``linker.link("atm", types=[BANK.Product])``.

        Exact matches (score 100; a verbatim label before a normalised one) come first, then
        fuzzy ones above ``min_score``; embedding similarity is tried only when neither found
        anything. ``types`` keeps only nodes with one of those rdf:types.
        """
        key = normalise(mention)
        if not key:
            return []
        found = self._exact(key, mention)
        found += self._fuzzy(key, exclude={c.node for c in found})
        if types is not None:
            wanted = frozenset(types)
            found = [c for c in found if self._wanted(c.node, wanted)]
        if not found and self.similarity is not None:
            found = self._embedded(mention)
        return found[:limit]

    def _exact(self, key: str, mention: str) -> list[Candidate]:
        entries = self._ready().get(key, [])
        found = [Candidate(e.node, self._label(e.node), 100.0, e.text, "exact") for e in entries]
        # "exchange_rate" should find the node labelled exactly that before the one labelled
        # "Exchange rate", although both normalise to the same key.
        folded = mention.casefold()
        return sorted(found, key=lambda c: (c.matched != mention, c.matched.casefold() != folded,
                                            c.label, c.node.value))

    def _fuzzy(self, key: str, exclude: set[IRI], cutoff: float | None = None) -> list[Candidate]:
        from rapidfuzz import fuzz, process  # deferred: only fuzzy lookups need it

        index = self._ready()
        scorer = self.scorer or fuzz.token_sort_ratio
        best: dict[IRI, Candidate] = {}
        floor = cutoff or self.min_score
        hits = process.extract(key, self._keys, scorer=scorer, score_cutoff=floor, limit=None)
        for choice, score, _ in hits:
            for entry in index[choice]:
                if entry.node not in exclude:
                    _keep_best(best, Candidate(entry.node, self._label(entry.node),
                                               float(score), entry.text, "fuzzy"))
        return _ranked(best.values())

    def _embedded(self, mention: str) -> list[Candidate]:
        assert self.similarity is not None
        self._ready()
        texts = [s.text for s in self._surfaces]
        if not texts:
            return []
        import numpy as np  # deferred: only the embedding seam needs it

        row = np.asarray(self.similarity([mention], texts), dtype=float)[0]
        best: dict[IRI, Candidate] = {}
        for surface, value in zip(self._surfaces, row, strict=True):
            if float(value) >= self.min_similarity:
                _keep_best(best, Candidate(surface.node, self._label(surface.node),
                                           100.0 * float(value), surface.text, "embedding"))
        return _ranked(best.values())

    # ---- scanning raw text ---------------------------------------------------------------

    def find_mentions(
        self,
        text: str,
        *,
        fuzzy: bool = False,
        limit: int = 5,
        types: Iterable[IRI] | None = None,
    ) -> list[Mention]:
        """Label and alias occurrences in raw text, longest first, never overlapping.

        ``linker.find_mentions("my card was stolen")`` -> one Mention for "card". With
        ``fuzzy=True`` near misses compete too (a longer fuzzy span beats a shorter exact one),
        which catches typos such as "virtal card" (see :meth:`_fuzzy_span` for safeguards).
        """
        wanted = frozenset(types) if types is not None else None
        tokens = _tokens(text)
        spans = self._exact_spans(tokens, wanted)
        if fuzzy:
            exact = {(first, size) for first, size, _ in spans}
            spans += self._fuzzy_spans(tokens, exact, wanted)
        mentions = []
        for first, size, candidates in sorted(_select(spans, len(tokens))):
            start, end = tokens[first][1], tokens[first + size - 1][2]
            found = candidates or self.link(text[start:end], limit=limit, types=wanted)
            mentions.append(Mention(text[start:end], start, end, tuple(found[:limit])))
        return mentions

    def _ngrams(self, tokens: list[tuple[str, int, int]]) -> Iterable[tuple[int, int, str]]:
        words = [token for token, _, _ in tokens]
        for first in range(len(words)):
            for size in range(1, min(self._longest, len(words) - first) + 1):
                yield first, size, " ".join(words[first : first + size])

    def _exact_spans(
        self, tokens: list[tuple[str, int, int]], wanted: frozenset[IRI] | None
    ) -> list[_Span]:
        index = self._ready()
        return [
            (first, size, [])
            for first, size, key in self._ngrams(tokens)
            if key in index and any(self._wanted(e.node, wanted) for e in index[key])
        ]

    def _fuzzy_spans(
        self,
        tokens: list[tuple[str, int, int]],
        exact: set[tuple[int, int]],
        wanted: frozenset[IRI] | None,
    ) -> list[_Span]:
        spans: list[_Span] = []
        for first, size, key in self._ngrams(tokens):
            if (first, size) not in exact:
                candidates = [c for c in self._fuzzy_span(key) if self._wanted(c.node, wanted)]
                if candidates:
                    spans.append((first, size, candidates))
        return spans

    def _fuzzy_span(self, key: str) -> list[Candidate]:
        """Near-miss labels for one n-gram of running text.

        Stricter than :meth:`link` because every n-gram of a message is tried: at least five
        characters, no stopword at either end, ``min_mention_score``, and the label must have
        as many words and the same first letter (typos rarely hit the first letter, while
        "change" vs "charge" or "used" vs "usd" would otherwise pass).
        """
        words = key.split()
        if len(key) < 5 or words[0] in _STOP or words[-1] in _STOP:
            return []
        found = self._fuzzy(key, exclude=set(), cutoff=self.min_mention_score)
        return [c for c in found if _same_shape(normalise(c.matched), words)]


_Span = tuple[int, int, list[Candidate]]


def _same_shape(label: str, words: list[str]) -> bool:
    return label[:1] == words[0][:1] and len(label.split()) == len(words)


def _select(spans: list[_Span], length: int) -> list[_Span]:
    """Longest spans first, then exact before fuzzy, then leftmost; never overlapping.

    Exact spans carry no precomputed candidates, so ``bool(span[2])`` sorts them first.
    """
    taken = [False] * length
    chosen = []
    for span in sorted(spans, key=lambda span: (-span[1], bool(span[2]), span[0])):
        first, size = span[0], span[1]
        if not any(taken[first : first + size]):
            taken[first : first + size] = [True] * size
            chosen.append(span)
    return chosen


def _keep_best(best: dict[IRI, Candidate], candidate: Candidate) -> None:
    current = best.get(candidate.node)
    if current is None or candidate.score > current.score:
        best[candidate.node] = candidate


def _ranked(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.label, c.node.value))

