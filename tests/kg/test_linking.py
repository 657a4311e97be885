"""Entity linking: exact, alias, fuzzy, ambiguity, mentions in raw text, embedding seam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from hybrid_ai.kg import (
    RDF,
    RDFS,
    SKOS,
    EntityLinker,
    Literal,
    Namespace,
    TripleStore,
    load,
    normalise,
)

EX = Namespace("http://example.org/")
BANK = Namespace("http://example.org/bank/")
ROOT = Path(__file__).resolve().parents[2]


def labelled(*rows: tuple[str, str, list[str]]) -> TripleStore:
    """A store from (id, label, aliases) rows, every node typed ex:Product."""
    store = TripleStore()
    for ident, label, aliases in rows:
        store.add(EX[ident], RDF.type, EX.Product)
        store.add(EX[ident], RDFS.label, Literal(label))
        for alias in aliases:
            store.add(EX[ident], SKOS.altLabel, Literal(alias))
    return store


@pytest.fixture
def linker() -> EntityLinker:
    store = labelled(
        ("card", "Card", ["debit card", "bank card"]),
        ("virtual_card", "Virtual card", []),
        ("top_up", "Top-up", ["topup", "add money"]),
        ("atm", "ATM", ["cash machine"]),
        ("pin", "PIN", ["pin number"]),
        ("mercury_planet", "Mercury", []),
        ("mercury_element", "Mercury", ["quicksilver"]),
    )
    return EntityLinker(store).build()


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Top-Ups!", "top up"),
        ("  My   CARD's  fees ", "my card fee"),
        ("currencies", "currency"),
        ("addresses", "address"),
        ("status", "status"),
        ("don\u2019t", "dont"),
        ("card_arrival", "card arrival"),
    ],
)
def test_normalise(text: str, normal: str) -> None:
    assert normalise(text) == normal


def test_exact_label(linker: EntityLinker) -> None:
    (found,) = linker.link("ATM")
    assert (found.node, found.label, found.score, found.method) == (EX.atm, "ATM", 100.0, "exact")


def test_alias_and_plural_fold(linker: EntityLinker) -> None:
    best = linker.link("Debit Cards")[0]
    assert (best.node, best.matched, best.method) == (EX.card, "debit card", "exact")
    assert best.label == "Card"
    assert linker.link("pin number")[0].node == EX.pin


def test_fuzzy_typo(linker: EntityLinker) -> None:
    best = linker.link("top-upp")[0]
    assert (best.node, best.method) == (EX.top_up, "fuzzy")
    assert 80 <= best.score < 100


def test_below_threshold_finds_nothing(linker: EntityLinker) -> None:
    assert linker.link("mortgage") == []
    assert linker.link("!!!") == []


def test_ambiguity_is_kept(linker: EntityLinker) -> None:
    found = linker.link("mercury")
    assert {c.node for c in found} == {EX.mercury_planet, EX.mercury_element}
    assert all(c.score == 100.0 for c in found)
    assert len(linker.link("mercury", limit=1)) == 1


def test_subset_words_are_not_perfect_matches(linker: EntityLinker) -> None:
    # token_set_ratio would score "virtual card" 100 against "card"; we must not
    nodes = [c.node for c in linker.link("card")]
    assert nodes[0] == EX.card
    assert EX.virtual_card not in nodes


def test_find_mentions_in_a_sentence(linker: EntityLinker) -> None:
    text = "Can I top up my virtual card at a cash machine?"
    mentions = linker.find_mentions(text)
    assert [(m.text, m.candidates[0].node) for m in mentions] == [
        ("top up", EX.top_up),
        ("virtual card", EX.virtual_card),  # the longest match wins over "card"
        ("cash machine", EX.atm),
    ]
    for mention in mentions:
        assert text[mention.start : mention.end] == mention.text


def test_find_mentions_fuzzy_catches_typos(linker: EntityLinker) -> None:
    text = "my virtal card is broken"
    assert [m.text for m in linker.find_mentions(text)] == ["card"]
    (mention,) = linker.find_mentions(text, fuzzy=True)
    assert mention.text == "virtal card"
    assert mention.candidates[0].node == EX.virtual_card


def test_types_filter() -> None:
    store = labelled(("card", "Card", []))
    store.add(EX.intent, RDFS.label, Literal("card"))
    assert {c.node for c in EntityLinker(store).build().link("card")} == {EX.card, EX.intent}
    only = EntityLinker(store, types=[EX.Product]).build()
    assert [c.node for c in only.link("card")] == [EX.card]


def test_per_call_types_filter_spans_and_candidates() -> None:
    store = labelled(("card", "Card", []))
    store.add(EX.fraud, RDF.type, EX.Policy)
    store.add(EX.fraud, SKOS.altLabel, Literal("compromised card"))
    linker = EntityLinker(store).build()
    text = "is my compromised card blocked?"
    assert [m.text for m in linker.find_mentions(text)] == ["compromised card"]
    (mention,) = linker.find_mentions(text, types=[EX.Product])
    assert (mention.text, mention.candidates[0].node) == ("card", EX.card)
    assert linker.link("compromised card", types=[EX.Product]) == []


def test_verbatim_label_outranks_normalised_one() -> None:
    store = labelled(("exchange_rate", "Exchange rate", []))
    store.add(EX.intent_exchange_rate, RDFS.label, Literal("exchange_rate"))
    linker = EntityLinker(store).build()
    assert linker.link("exchange_rate")[0].node == EX.intent_exchange_rate
    assert linker.link("Exchange rate")[0].node == EX.exchange_rate
    assert {c.score for c in linker.link("exchange rate")} == {100.0}


def test_similarity_seam_is_used_only_without_lexical_candidates(linker: EntityLinker) -> None:
    calls: list[list[str]] = []

    def similarity(mentions: list[str], labels: list[str]) -> NDArray[np.float64]:
        calls.append(mentions)
        return np.array([[0.9 if label == "quicksilver" else 0.1 for label in labels]])

    store = linker.store
    seam = EntityLinker(store, similarity=similarity).build()
    assert seam.link("ATM")[0].method == "exact"
    assert calls == []
    (found,) = seam.link("liquid metal")
    assert (found.node, found.method, found.matched) == (EX.mercury_element, "embedding",
                                                         "quicksilver")
    assert found.score == pytest.approx(90.0)


def test_link_builds_lazily() -> None:
    assert EntityLinker(labelled(("atm", "ATM", []))).link("atm")[0].node == EX.atm


def test_banking_links_stolen_card_message() -> None:
    store = load(ROOT / "knowledge" / "banking.json")
    linker = EntityLinker(store, types=[BANK.Product, BANK.Policy]).build()
    mentions = linker.find_mentions("my card was stolen")
    assert [(m.text, m.candidates[0].node) for m in mentions] == [("card", BANK.card)]
    assert linker.link("google pay")[0].node == BANK.google_pay
    assert linker.link("topup")[0].node == BANK.top_up
    assert linker.link("pin number")[0].node == BANK.pin
    assert linker.link("atm")[0].node == BANK.atm


def test_banking_intent_labels_link_to_their_intent() -> None:
    store = load(ROOT / "knowledge" / "banking.json")
    linker = EntityLinker(store).build()
    for intent in store.subjects(RDF.type, BANK.Intent):
        assert linker.link(store.label(intent), limit=1)[0].node == intent
