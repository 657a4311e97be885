"""Limits: firings, facts and wall time per evaluation end it with RuleLimitError (never a hang),
on the Engine and the rules stage; the collector pause is safe with threads."""

from __future__ import annotations

import gc
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from hybrid_ai import Blackboard, Case, ConfigError, HybridAIError
from hybrid_ai.rules import Engine, RuleLimitError, RulesStage, compile_rules

COUNTER = {"id": "count", "when": [{"counter": {"n": "?n"}}],
           "then": [{"insert": {"counter": {"n": "=?n + 1"}}}]}


def engine(*rules: dict[str, Any], **limits: Any) -> Engine:
    return Engine(compile_rules(list(rules)), **limits)


def test_max_fires_names_the_limit_the_rule_and_the_fix() -> None:
    looping = engine(COUNTER, max_fires=25, max_facts=10_000)
    looping.insert("counter", {"n": 0})
    with pytest.raises(RuleLimitError) as info:
        looping.run()
    error = info.value
    assert isinstance(error, HybridAIError)
    assert (error.limit, error.value, error.rule) == ("max_fires", 25, "count")
    assert len(looping.firings) == 25
    text = str(error)
    assert "rules fired 25 times" in text and "last rule fired: 'count'" in text
    assert "`max_fires: <more>` under `with:` of the rules stage" in text


def test_max_facts_stops_a_rule_that_grows_working_memory() -> None:
    growing = engine(COUNTER, max_fires=1_000_000, max_facts=40)
    growing.insert("counter", {"n": 0})
    with pytest.raises(RuleLimitError, match="working memory reached 40 facts") as info:
        growing.run()
    assert info.value.limit == "max_facts" and len(growing.memory) == 40
    bulk = engine(COUNTER, max_facts=10)
    with pytest.raises(RuleLimitError, match="max_facts"):
        bulk.insert_all(("item", {"n": i}) for i in range(11))


def test_timeout_stops_an_endless_loop() -> None:
    endless = engine(COUNTER, max_fires=10**12, max_facts=10**12, timeout_s=0.2)
    endless.insert("counter", {"n": 0})
    with pytest.raises(RuleLimitError, match=r"ran past 0.2 s; last rule fired: 'count'") as info:
        endless.run()
    assert info.value.limit == "timeout_s"


def test_timeout_stops_a_runaway_join_before_any_firing() -> None:
    # the test keeps the cross product eager (a bare one is a lazy tail: no matches are built)
    cross = {"id": "pairs", "then": [{"insert": {"pair": {"a": "?x", "b": "?y"}}}],
             "when": [{"a": {"n": "?x"}}, {"b": {"n": "?y"}}, {"test": "?x != ?y - 1"}]}
    runaway = engine(cross, timeout_s=0.2)
    runaway.insert_all(("a", {"n": i}) for i in range(1500))
    with pytest.raises(RuleLimitError, match="no rule had fired yet") as info:
        runaway.insert_all(("b", {"n": i}) for i in range(1500))  # 2.25 M matches
    assert info.value.limit == "timeout_s"


def test_limits_are_validated_and_the_error_pickles() -> None:
    for bad in ({"max_fires": 0}, {"max_facts": -1}, {"timeout_s": 0}, {"max_fires": True}):
        with pytest.raises(ValueError, match="must be a positive number"):
            engine(COUNTER, **bad)
    error = RuleLimitError("stopped", limit="max_facts", value=3, rule="r")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.limit, copy.value, copy.rule) == ("stopped", "max_facts", 3, "r")


def test_the_rules_stage_passes_its_limits_on(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("rules:\n  - id: count\n    when:\n      - counter: {n: \"?n\"}\n    then:\n"
                    "      - insert: {counter: {n: \"=?n + 1\"}}\n", encoding="utf-8")
    board = Blackboard(Case(text=""))
    from hybrid_ai import NewFact

    board.add(NewFact("counter", {"n": 0}), stage="seed")
    with pytest.raises(RuleLimitError, match="max_fires") as info:
        RulesStage(path=str(path), max_fires=30).process(board)
    assert info.value.value == 30
    with pytest.raises(RuleLimitError, match="max_facts"):
        RulesStage(path=str(path), max_facts=20).process(board)
    with pytest.raises(RuleLimitError, match="timeout_s"):
        RulesStage(path=str(path), timeout_s=0.1, max_fires=10**9, max_facts=10**9).process(board)
    with pytest.raises(ConfigError, match="timeout_s must be a positive number"):
        RulesStage(path=str(path), timeout_s=-1)
    assert RulesStage(path=str(path), timeout_s=5).version == RulesStage(path=str(path)).version


def _run_engines(count: int, errors: list[BaseException]) -> None:
    try:
        for _ in range(count):
            eng = engine({"id": "j", "when": [{"a": {"n": "?x"}}, {"b": {"n": "?x"}}],
                          "then": [{"insert": {"c": {"n": "?x"}}}]})
            eng.insert_all([("a", {"n": i}) for i in range(200)] +
                           [("b", {"n": i}) for i in range(200)])
            assert eng.run() == 200
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


@pytest.mark.parametrize("enabled_before", [True, False])
def test_collector_pause_is_counted_across_threads(enabled_before: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_run_engines, args=(15, errors)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert gc.isenabled() is enabled_before  # back as it was, not left off, not forced on
    finally:
        (gc.enable if was else gc.disable)()


def test_timeout_stops_partial_matches_that_never_complete() -> None:
    # a x b builds millions of partial matches; `c` never exists, so no rule ever activates
    never = {"id": "never", "then": [{"halt": True}],
             "when": [{"a": {"n": "?x"}}, {"b": {"n": "?y"}}, {"c": {"n": "?x", "m": "?y"}}]}
    runaway = engine(never, timeout_s=0.2)
    runaway.insert_all(("a", {"n": i}) for i in range(2000))
    with pytest.raises(RuleLimitError, match="timeout_s") as info:
        runaway.insert_all(("b", {"n": i}) for i in range(2000))
    assert info.value.limit == "timeout_s" and runaway.agenda.pop() is None
