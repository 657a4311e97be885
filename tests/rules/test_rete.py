"""The matcher: joins, negation, exists, tests, and changes propagating through the network."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.rules import Engine, compile_rules
from hybrid_ai.rules._rete import _tail_start


def engine_for(*rules: dict[str, Any], **options: Any) -> Engine:
    return Engine(compile_rules(list(rules)), **options)


def pending(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    """The live activations, in the order they would fire (the agenda is not consumed)."""
    return [(a.rule.id, a.bindings()) for a in engine.pending()]


JOIN = {"id": "gold_order",
        "when": [{"order": {"id": "?o", "customer": "?c", "amount": "> 500"}},
                 {"customer": {"id": "?c", "tier": "gold"}}],
        "then": [{"insert": {"flag": {"order": "?o"}}}]}


def test_join_on_shared_variable_matches_only_equal_values() -> None:
    engine = engine_for(JOIN)
    engine.insert("customer", {"id": 1, "tier": "gold"})
    engine.insert("customer", {"id": 2, "tier": "silver"})
    for oid, cust, amount in [(10, 1, 900), (11, 2, 900), (12, 1, 100), (13, 1, 600)]:
        engine.insert("order", {"id": oid, "customer": cust, "amount": amount})
    assert sorted(b["o"] for _, b in pending(engine)) == [10, 13]
    assert engine.run() == 2
    assert sorted(f.fields["order"] for f in engine.facts("flag")) == [10, 13]


def test_join_works_whichever_side_arrives_first() -> None:
    engine = engine_for(JOIN)
    engine.insert("order", {"id": 10, "customer": 1, "amount": 900})
    assert pending(engine) == []
    engine.insert("customer", {"id": 1, "tier": "gold"})
    assert pending(engine) == [("gold_order", {"o": 10, "c": 1})]


def test_negation_a_fact_appearing_removes_the_activation() -> None:
    engine = engine_for({"id": "unpaid",
                         "when": [{"order": {"id": "?o"}}, {"not": {"payment": {"order": "?o"}}}],
                         "then": [{"insert": {"reminder": {"order": "?o"}}}]})
    engine.insert("order", {"id": 1})
    engine.insert("order", {"id": 2})
    assert len(pending(engine)) == 2
    payment = engine.insert("payment", {"order": 1})
    assert pending(engine) == [("unpaid", {"o": 2})]
    engine.retract(payment)
    assert sorted(b["o"] for _, b in pending(engine)) == [1, 2]


def test_exists_activates_once_however_many_facts_match() -> None:
    engine = engine_for({"id": "any_big",
                         "when": [{"exists": {"order": {"amount": "> 100"}}}],
                         "then": [{"insert": {"alarm": {"on": True}}}]})
    first = engine.insert("order", {"amount": 500})
    second = engine.insert("order", {"amount": 700})
    assert len(pending(engine)) == 1
    engine.retract(first)
    assert len(pending(engine)) == 1
    engine.retract(second)
    assert pending(engine) == []


def test_retract_and_modify_propagate() -> None:
    engine = engine_for(JOIN)
    gold = engine.insert("customer", {"id": 1, "tier": "gold"})
    order = engine.insert("order", {"id": 10, "customer": 1, "amount": 900})
    assert len(pending(engine)) == 1
    engine.modify(order, {"amount": 50})
    assert pending(engine) == []
    engine.modify(order, {"amount": 800})
    assert len(pending(engine)) == 1
    engine.retract(gold)
    assert pending(engine) == []


def test_test_element_and_operator_tests_over_bound_variables() -> None:
    engine = engine_for({"id": "over_limit",
                         "when": [{"limit": {"customer": "?c", "max": "?m"}},
                                  {"order": {"customer": "?c", "amount": "> ?m", "id": "?o"}},
                                  {"test": "?o != 13"}],
                         "then": [{"insert": {"flag": {"order": "?o"}}}]})
    engine.insert("limit", {"customer": 1, "max": 100})
    for oid, amount in [(11, 50), (12, 150), (13, 500)]:
        engine.insert("order", {"id": oid, "customer": 1, "amount": amount})
    assert [b["o"] for _, b in pending(engine)] == [12]


def test_one_alpha_memory_feeding_two_patterns_matches_each_pair_once() -> None:
    engine = engine_for({"id": "pair",
                         "when": [{"person": {"name": "?a", "team": "?t"}},
                                  {"person": {"name": "?b", "team": "?t"}},
                                  {"test": "?a < ?b"}],
                         "then": [{"insert": {"pair": {"a": "?a", "b": "?b"}}}]})
    for name in ["ann", "bob", "cy"]:
        engine.insert("person", {"name": name, "team": 1})
    engine.run()
    pairs = sorted((f.fields["a"], f.fields["b"]) for f in engine.facts("pair"))
    assert pairs == [("ann", "bob"), ("ann", "cy"), ("bob", "cy")]


def test_rule_added_later_sees_existing_facts_and_constants_and_lists() -> None:
    engine = Engine()
    engine.insert("order", {"id": 1, "tags": ["a", "b"], "state": "open"})
    engine.insert("order", {"id": 2, "tags": ["a", "b"], "state": "closed"})
    engine.insert("tagset", {"tags": ["a", "b"]})
    (rule,) = compile_rules([{"id": "same_tags",
                              "when": [{"tagset": {"tags": "?t"}},
                                       {"order": {"tags": "?t", "state": "open", "id": "?o"}}],
                              "then": [{"insert": {"hit": {"order": "?o"}}}]}])
    engine.add_rule(rule)
    engine.run()
    assert [f.fields for f in engine.facts("hit")] == [{"order": 1}]


def test_missing_field_does_not_match_a_variable() -> None:
    engine = engine_for(JOIN)
    engine.insert("customer", {"id": 1, "tier": "gold"})
    engine.insert("order", {"customer": 1, "amount": 900})  # no id field
    assert pending(engine) == []


def test_patterns_sharing_no_variable_move_last_and_match_the_same() -> None:
    spec = {"id": "step",
            "when": [{"context": {"state": "go"}, "as": "?ctx"},
                     {"order": {"id": "?o"}},
                     {"not": {"done": {"order": "?o"}}}],
            "then": [{"insert": {"done": {"order": "?o"}}}]}
    (rule,) = compile_rules([spec])
    assert [getattr(p, "kind", None) for p in rule.patterns] == ["order", "done", "context"]
    engine = Engine([rule])
    ctx = engine.insert("context", {"state": "go"})
    engine.insert_all([("order", {"id": 1}), ("order", {"id": 2})])
    engine.modify(ctx, {"state": "wait"})
    assert pending(engine) == []
    engine.modify(ctx, {"state": "go"})
    assert engine.run() == 2
    assert sorted(f["order"] for f in engine.facts("done")) == [1, 2]


def test_negated_conjunction_and_forall() -> None:
    engine = engine_for(
        {"id": "all_approved",
         "when": [{"batch": {"id": "?b"}},
                  {"forall": [{"order": {"batch": "?b", "id": "?o"}},
                              {"approval": {"order": "?o"}}]}],
         "then": [{"insert": {"ship": {"batch": "?b"}}}]},
        {"id": "no_big_unpaid",
         "when": [{"batch": {"id": "?b"}},
                  {"not": [{"order": {"batch": "?b", "id": "?o", "amount": "> 100"}},
                           {"not": {"payment": {"order": "?o"}}}]}],
         "then": [{"insert": {"clear": {"batch": "?b"}}}]})
    engine.insert("batch", {"id": 1})
    assert sorted(r for r, _ in pending(engine)) == ["all_approved", "no_big_unpaid"]
    first = engine.insert("order", {"batch": 1, "id": 10, "amount": 500})
    assert pending(engine) == []  # order 10 is neither approved nor paid
    engine.insert("approval", {"order": 10})
    assert [r for r, _ in pending(engine)] == ["all_approved"]
    engine.insert("order", {"batch": 1, "id": 11, "amount": 50})
    assert pending(engine) == []  # 11 not approved; but it is small, so no_big_unpaid...
    payment = engine.insert("payment", {"order": 10})
    assert [r for r, _ in pending(engine)] == ["no_big_unpaid"]
    engine.insert("approval", {"order": 11})
    assert sorted(r for r, _ in pending(engine)) == ["all_approved", "no_big_unpaid"]
    engine.retract(payment)
    assert [r for r, _ in pending(engine)] == ["all_approved"]
    engine.retract(first)
    assert sorted(r for r, _ in pending(engine)) == ["all_approved", "no_big_unpaid"]
    assert engine.run() == 2


def test_retracting_the_outer_fact_clears_a_negated_conjunction() -> None:
    engine = engine_for({"id": "lonely",
                         "when": [{"team": {"id": "?t"}, "as": "?team"},
                                  {"not": [{"member": {"team": "?t", "name": "?n"}},
                                           {"test": "?n != 'bot'"}]}],
                         "then": [{"insert": {"alert": {"team": "?t"}}}]})
    team = engine.insert("team", {"id": 1})
    engine.insert("member", {"team": 1, "name": "bot"})
    assert len(pending(engine)) == 1  # only the bot: still lonely
    member = engine.insert("member", {"team": 1, "name": "ann"})
    assert pending(engine) == []
    engine.retract(member)
    assert len(pending(engine)) == 1
    engine.retract(team)
    assert pending(engine) == []
    (ncc,) = [n for n in _nodes(engine) if hasattr(n, "proxies")]
    assert ncc.proxies == {} and ncc.left == {}


def _nodes(engine: Engine) -> list[Any]:
    found: list[Any] = []
    for index in engine.network.alphas.values():
        for memory in index.memories.values():
            for first in memory.successors:
                node: Any = first
                while node is not None:
                    found.append(node)
                    node = node.child
    return list({id(n): n for n in found}.values())


def test_forall_needs_two_patterns() -> None:
    with pytest.raises(ConfigError, match="`forall` needs a list of two or more"):
        compile_rules([{"id": "f", "when": [{"forall": [{"a": {}}]}], "then": []}])


def test_a_missing_join_field_never_joins_even_with_null() -> None:
    engine = engine_for({"id": "r", "when": [{"a": {"k": "?k"}}, {"b": {"k": "?k"}}],
                         "then": []})
    engine.insert("a", {"k": None})
    engine.insert("b", {"other": 1})
    assert pending(engine) == []
    engine.insert("b", {"k": None})
    assert len(pending(engine)) == 1


# ---- lazy tails, indexes and retraction order -------------------------------------------------
def _eager(rules: list[Any]) -> list[Any]:
    """The same rules with lazy tails off (``logical`` rules keep every match as a token)."""
    return [replace(r, logical=True) for r in rules]


def _firings(engine: Engine) -> list[tuple[str, dict[str, Any], list[int]]]:
    return [(f.rule, f.bindings, f.matched) for f in engine.firings]


PRODUCT = [{"id": "log", "salience": 1,
            "when": [{"order": {"id": "?o"}}, {"not": {"hold": {"order": "?o"}}},
                     {"context": {"state": "go"}, "as": "?ctx"}, {"slot": {"n": "?n"}}],
            "then": [{"insert": {"log": {"order": "?o", "slot": "?n"}}}]},
           {"id": "pause", "when": [{"context": {"state": "go"}, "as": "?ctx"},
                                    {"counter": {"n": "< 2"}, "as": "?c"}],
            "then": [{"modify": {"?ctx": {"state": "wait"}}},
                     {"modify": {"?c": {"n": "=?c.n + 1"}}}]},
           {"id": "resume", "when": [{"context": {"state": "wait"}, "as": "?ctx"}],
            "then": [{"modify": {"?ctx": {"state": "go"}}}]}]


def _drive(rules: list[Any], strategy: str) -> Engine:
    engine = Engine(rules, strategy=strategy)  # type: ignore[arg-type]
    engine.insert_all([("slot", {"n": 1}), ("order", {"id": 1}), ("context", {"state": "go"}),
                       ("order", {"id": 2}), ("slot", {"n": 2}), ("counter", {"n": 0})])
    engine.run(limit=3)  # stops mid-block: the rest must come in the same order afterwards
    engine.insert_all([("order", {"id": 3}), ("slot", {"n": 3}), ("hold", {"order": 2})])
    engine.retract(engine.facts("slot")[0])
    engine.run(limit=5)
    engine.insert("order", {"id": 4})
    engine.run()
    return engine


@pytest.mark.parametrize("strategy", ["depth", "breadth"])
def test_a_lazy_tail_fires_exactly_like_the_eager_network(strategy: str) -> None:
    rules = compile_rules(PRODUCT)
    assert _tail_start(rules[0]) == 2 and _tail_start(_eager(rules)[0]) == 4
    lazy, eager = _drive(rules, strategy), _drive(_eager(rules), strategy)
    assert len(lazy.firings) > 20 and _firings(lazy) == _firings(eager)
    assert [f.fields for f in lazy.memory.values()] == [f.fields for f in eager.memory.values()]


def test_a_lazy_tail_builds_no_match_that_never_fires() -> None:
    # 300 x 300 pairs: the eager network makes 90,000 matches, the lazy tail one per firing
    spec = {"id": "pair", "when": [{"a": {"n": "?x"}}, {"b": {"n": "?y"}}],
            "then": [{"insert": {"pair": {"a": "?x", "b": "?y"}}}]}
    made = {}
    for name, rules in (("lazy", compile_rules([spec])), ("eager", _eager(compile_rules([spec])))):
        engine = Engine(rules)
        engine.insert_all([("a", {"n": i}) for i in range(300)] +
                          [("b", {"n": i}) for i in range(300)])
        assert engine.run(limit=2) == 2
        assert [f.bindings for f in engine.firings] == [{"x": 299, "y": 299}, {"x": 298, "y": 299}]
        made[name] = engine.network.meter.count
    assert made["lazy"] < 1_000 < 90_000 <= made["eager"]


def test_a_lazy_tail_follows_retract_and_modify_of_its_facts() -> None:
    (rule,) = compile_rules([{"id": "r", "when": [{"order": {"id": "?o"}},
                                                  {"context": {"state": "go"}}],
                              "then": []}])
    engine = Engine()
    ctx = engine.insert("context", {"state": "go"})
    engine.insert_all([("order", {"id": 1}), ("order", {"id": 2})])
    engine.add_rule(rule)  # added later: it sees the facts already there
    assert [b["o"] for _, b in pending(engine)] == [2, 1]
    engine.modify(ctx, {"state": "stop"})
    assert pending(engine) == []
    engine.modify(ctx, {"state": "go"})  # back, as a new arrival: both match again
    assert [b["o"] for _, b in pending(engine)] == [2, 1]
    engine.retract(engine.facts("order")[1])
    assert engine.run() == 1 and engine.firings[0].bindings == {"o": 1}


def test_join_on_two_variables_follows_retract_and_modify() -> None:
    engine = engine_for({"id": "same", "when": [{"a": {"k": "?k", "v": "?v", "id": "?i"}},
                                                {"b": {"k": "?k", "v": "?v", "id": "?j"}}],
                         "then": []})
    engine.insert_all([("a", {"k": 1, "v": [1, 2], "id": 1}), ("a", {"k": 1, "v": 3, "id": 2}),
                       ("b", {"k": 1, "v": [1, 2], "id": 10}), ("b", {"k": 2, "v": 3, "id": 11})])
    assert [(b["i"], b["j"]) for _, b in pending(engine)] == [(1, 10)]  # lists join by value
    b11 = engine.facts("b")[1]
    engine.modify(b11, {"k": 1})
    assert sorted((b["i"], b["j"]) for _, b in pending(engine)) == [(1, 10), (2, 11)]
    engine.modify(engine.facts("a")[1], {"v": 4})
    engine.retract(engine.facts("a")[0])
    assert pending(engine) == []
    engine.insert("a", {"k": 1, "v": 3, "id": 3})
    assert [(b["i"], b["j"]) for _, b in pending(engine)] == [(3, 11)]


def test_a_first_fact_that_joined_late_takes_its_matches_and_supports_when_it_goes() -> None:
    # a's matches are made when b comes, after a; retract and modify of a must still find them
    engine = engine_for({"id": "pair", "when": [{"a": {"k": "?k", "id": "?i"}},
                                                {"b": {"k": "?k", "id": "?j"}}],
                         "then": [{"logical": {"d": {"i": "?i", "j": "?j"}}}]})
    a1, a2 = engine.insert_all([("a", {"k": 1, "id": 1}), ("a", {"k": 1, "id": 2})])
    engine.insert("b", {"k": 1, "id": 10})
    assert engine.run() == 2
    engine.retract(a1)
    assert [(f["i"], f["j"]) for f in engine.facts("d")] == [(2, 10)]
    engine.insert("b", {"k": 1, "id": 11})
    engine.retract(a2.id)
    assert pending(engine) == [] and engine.facts("d") == []
    engine.insert("a", {"k": 1, "id": 3})
    assert [(b["i"], b["j"]) for _, b in pending(engine)] == [(3, 11), (3, 10)]


def test_a_join_index_built_late_sees_facts_asserted_before_it() -> None:
    # alert's order index is built when the first flag arrives; orders changed before count
    engine = engine_for({"id": "alert", "when": [{"flag": {"order": "?o"}},
                                                 {"order": {"id": "?o", "amount": "> 100"}}],
                         "then": []})
    engine.insert_all([("order", {"id": i, "amount": 50 * i}) for i in range(5)])
    engine.modify(engine.facts("order")[1], {"amount": 500})
    engine.retract(engine.facts("order")[4])
    engine.insert_all([("flag", {"order": i}) for i in range(5)])
    assert sorted(b["o"] for _, b in pending(engine)) == [1, 3]


def test_bisected_comparisons_accept_exactly_what_the_tests_accept() -> None:
    ops = [">", ">=", "<", "<="]
    bounds = [0, 1.5, 2, 2]
    specs = [{"id": f"r{n}", "when": [{"x": {"v": f"{op} {b}"}}], "then": []}
             for n, (op, b) in enumerate((op, b) for op in ops for b in bounds)]
    values = [-1, 0, 1, 1.5, 2, 2.0, 3, 10**20, True, False, float("nan"), None, "missing"]
    for value in values:
        engine = Engine(compile_rules(specs))
        engine.insert("x", {"v": value} if value != "missing" else {"w": 1})
        expected = [f"r{n}" for n, (op, b) in enumerate((op, b) for op in ops for b in bounds)
                    if _compare(value, op, b)]
        assert sorted(r for r, _ in pending(engine)) == sorted(expected), value


def _compare(value: Any, op: str, bound: float) -> bool:
    if type(value) not in (int, float, bool):
        return False  # null and missing values fail a comparison
    return {">": value > bound, ">=": value >= bound, "<": value < bound,
            "<=": value <= bound}[op]


@pytest.mark.parametrize("lazy", [True, False])
def test_a_retracted_fact_is_not_matched_by_what_its_retraction_unblocks(lazy: bool) -> None:
    # d's retraction clears the negated conjunction; the `d: {}` pattern must not then match d
    rules = compile_rules([{"id": "r", "when": [{"d": {}}, {"not": [{"d": {"x": "?r"}},
                                                                   {"not": {"a": {"x": "?r"}}}]}],
                            "then": []}])
    engine = Engine(rules if lazy else _eager(rules))
    d = engine.insert("d", {"x": 1})
    assert pending(engine) == []
    engine.retract(d)
    assert pending(engine) == [] and engine.run() == 0


def test_a_not_or_exists_made_while_a_retraction_clears_a_negated_conjunction_counts() -> None:
    # Retracting the open ticket clears the negated conjunction, which makes the `not` and
    # `exists` tokens below it then and there: they never counted the ticket, so its
    # retraction must not be taken off their counts too (the `not` then saw -1 and the next
    # ticket still 0, the `exists` never reached 1).
    engine = engine_for(
        {"id": "none_open_and_no_ticket",
         "when": [{"not": [{"ticket": {"state": "open"}}]}, {"not": {"ticket": {}}}],
         "then": []},
        {"id": "none_open_but_some_ticket",
         "when": [{"not": [{"ticket": {"state": "open"}}]}, {"exists": {"ticket": {}}}],
         "then": []})
    engine.retract(engine.insert("ticket", {"state": "open"}))
    assert [r for r, _ in pending(engine)] == ["none_open_and_no_ticket"]
    engine.insert("ticket", {"state": "closed"})
    assert [r for r, _ in pending(engine)] == ["none_open_but_some_ticket"]


def test_a_test_against_a_variable_needs_the_field_as_one_against_a_constant_does() -> None:
    engine = engine_for(
        {"id": "other", "when": [{"limit": {"max": "?m"}}, {"order": {"amount": "!= ?m"}}],
         "then": []},
        {"id": "other_constant", "when": [{"order": {"amount": "!= 100"}}], "then": []})
    engine.insert("limit", {"max": 100})
    engine.insert("order", {"id": 1})  # no amount: neither test applies
    assert pending(engine) == []
    engine.insert("order", {"id": 2, "amount": 5})
    assert sorted(r for r, _ in pending(engine)) == ["other", "other_constant"]


ALL_PAID = {"id": "all_paid",
            "when": [{"forall": [{"order": {"id": "?o"}},
                                 {"order": {"id": "?o", "paid": True}}]}],
            "then": [{"logical": {"status": {"all_paid": True}}}]}


def test_a_forall_that_an_insert_keeps_true_neither_fires_again_nor_drops_its_facts() -> None:
    # A paid order is its own base and its own proof: while it goes through the network the
    # conjunction `order and not paid` matched for a moment, which must not end the match.
    engine = engine_for(ALL_PAID)
    engine.insert("order", {"id": 1, "paid": True})
    assert engine.run() == 1
    (status,) = engine.facts("status")
    engine.insert("order", {"id": 2, "paid": True})
    assert pending(engine) == [] and engine.facts("status") == [status]
    engine.insert("order", {"id": 3, "paid": False})
    assert engine.facts("status") == []


@pytest.mark.parametrize("when", [
    [{"not": [{"not": {"b": {}}}, {"b": {}}]}],  # never matches: `no b and some b`
    [{"forall": [{"b": {}}, {"exists": {"b": {"x": "?x"}}}]}],  # nested negated conjunctions
    [{"forall": [{"b": {}}, {"not": {"c": {}}}, {"b": {"x": "?x"}}]}]])
def test_a_negated_conjunction_true_before_and_after_an_insert_keeps_its_activation(
        when: list[Any]) -> None:
    engine = engine_for({"id": "r", "when": when, "then": []})
    assert engine.run() == 1  # empty memory: it holds
    engine.insert("b", {"x": 1})  # it still holds
    assert pending(engine) == []


def test_a_negated_conjunction_blocked_by_a_new_fact_it_also_made_passes_on_when_it_ends() -> None:
    # The new c is both the rule's first fact and the base of the forall; the forall's proof
    # (`c: {}`, the same c) reaches it later in the same insert.
    engine = engine_for({"id": "r", "when": [
        {"c": {"t": "?t", "q": "?q"}},
        {"forall": [{"c": {"t": "?t", "q": "?q2"}, "as": "?other"}, {"c": {}}]}], "then": []})
    engine.insert("c", {"q": 3, "t": "z"})
    assert pending(engine) == [("r", {"t": "z", "q": 3})]
