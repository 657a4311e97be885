"""Hostile rule input: sandbox-escape attempts, deep nesting, huge literals and catastrophic
regular expressions are all refused with clean errors (never a crash, a hang or an escape)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hybrid_ai import ConfigError, ExpressionError, HybridAIError
from hybrid_ai._expr import MAX_LENGTH, EvaluationError, compile_expression
from hybrid_ai.rules import Engine, RulesStage, compile_rules, load_rules, parse_table


@pytest.mark.parametrize(("source", "message"), [
    ("x.__class__", "names may not start with '_'"),
    ("x.__class__.__mro__", "names may not start with '_'"),
    ("__import__('os')", "names may not start with '_'"),
    ("__builtins__", "names may not start with '_'"),
    ("x._private", "names may not start with '_'"),
    ("getattr(x, '__class__')", "unknown function 'getattr'"),
    ("eval('1')", "unknown function 'eval'"),
    ("exec('import os')", "unknown function 'exec'"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("type(x)", "unknown function 'type'"),
    ("lambda: 1", "unexpected character ':'"),
    ("[c for c in x]", "unexpected"),
    ("x; import os", "unexpected character ';'"),
    ("2 ** 1000000", "unexpected '*'"),
    ("f'{x}'", "unexpected"),
    ("x\x00", "unexpected character"),
    ("\uff3f\uff3fclass\uff3f\uff3f", "unexpected character"),
])
def test_escape_attempts_are_rejected_when_compiled(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_expression(source)


@pytest.mark.parametrize(("source", "env"), [
    ("x['__class__']", {"x": {"a": 1}}),                    # a mapping key, nothing more
    ("x['__class__']", {"x": dt.date(2024, 1, 1)}),          # not a mapping: an error
    ("pluck(xs, '__class__')", {"xs": [dt.date(2024, 1, 1)]}),
    ("x.year", {"x": dt.date(2024, 1, 1)}),                  # no attributes of plain objects
    ("'a' * 100000000", {}),                                 # no repetition of text
    ("[1] + x", {"x": "abc"}),
])
def test_data_cannot_reach_python_attributes(source: str, env: dict[str, Any]) -> None:
    try:
        value = compile_expression(source)(env)
    except EvaluationError:
        return
    assert value is None  # a missing key reads as null; never the class object


@pytest.mark.parametrize("source", [
    "-" * 5000 + "1",
    "not " * 5000 + "x",
    "[" * 500 + "]" * 500,
    "abs(" * 500 + "1" + ")" * 500,
    "x" + ".a" * 2000,
    "x" + "[0]" * 2000,
    " + ".join(["1"] * 2000),
])
def test_deep_nesting_is_rejected(source: str) -> None:
    with pytest.raises(ExpressionError, match="deeper than 64 levels"):
        compile_expression(source)


def test_huge_literals_are_rejected() -> None:
    with pytest.raises(ExpressionError, match="number is too long"):
        compile_expression("9" * 10_000)
    with pytest.raises(ExpressionError, match="number is too large"):
        compile_expression("x > 1e999999")
    with pytest.raises(ExpressionError, match=f"over the limit of {MAX_LENGTH}"):
        compile_expression("'" + "a" * MAX_LENGTH + "'")
    with pytest.raises(ExpressionError, match="over the limit"):
        compile_expression("x in [" + ",".join(["1"] * 60_000) + "]")


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a*)*b", "(.*)+", r"(\s*\w+)*$", "(a+|b)*c",
                                     "x((a+))+y"])
def test_catastrophic_regular_expressions_are_rejected(pattern: str) -> None:
    with pytest.raises(ExpressionError, match="exponential time"):
        compile_expression(f"text matches '{pattern}'")
    dynamic = compile_expression("text matches fields.pattern")  # a pattern from the data
    with pytest.raises(EvaluationError, match="exponential time"):
        dynamic({"text": "a" * 40 + "!", "fields": {"pattern": pattern}})


def test_ordinary_regular_expressions_still_work() -> None:
    for pattern, text in [(r"\b(stolen|lost)\b", "card lost"), ("a{2,5}b", "aaab"),
                          ("(ab)+c", "ababc"), ("^[A-Z]{2}[0-9]+$", "DE123"),
                          (r"^(\d+,)*\d+$", "1,22,333"), ("((a+)b)+", "aab"),
                          ("(?i)(card )?(lost|stolen)", "LOST")]:
        assert compile_expression(f"text matches '{pattern}'")({"text": text}) is True


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rule_files_cannot_run_code(tmp_path: Path) -> None:
    tagged = write(tmp_path, "tag.yaml", "rules:\n  - id: x\n    when: !!python/object/apply:os."
                   "system ['echo hacked']\n    then: {flag: x}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_rules(tagged, {})
    escape = write(tmp_path, "escape.yaml", "rules:\n  - id: x\n    when: text.__class__\n"
                   "    then: {flag: '=text.__len__'}\n")
    with pytest.raises(ConfigError) as info:
        RulesStage(path=str(escape))
    assert [p.location.line for p in info.value.problems] == [3]
    assert "names may not start with '_'" in str(info.value)


def test_chaining_rules_refuse_escapes_and_bad_variables() -> None:
    bad = [{"id": "a", "when": [{"x": {"v": "?v"}}, {"test": "?v.__class__ == 1"}],
            "then": [{"insert": {"y": {"n": "?v"}}}]},
           {"id": "b", "when": [{"x": {"v": "> __import__('os')"}}], "then": [{"halt": True}]},
           {"id": "c", "when": [{"x": {"as": "?f"}}], "then": [{"retract": "?nope"}]}]
    with pytest.raises(ConfigError) as info:
        compile_rules(bad)
    text = str(info.value)
    assert text.count("names may not start with '_'") == 2 and "'?nope' is not a fact" in text


def test_fact_objects_expose_only_their_fields() -> None:
    rules = compile_rules([{"id": "r", "when": [{"x": {"v": "?v"}, "as": "?f"}],
                            "then": [{"insert": {"y": {"a": "=?f['__class__']",
                                                       "b": "=?f.fields", "c": "=?f.v"}}}]}])
    engine = Engine(rules)
    engine.insert("x", {"v": 1})
    engine.run()
    assert [f.fields for f in engine.facts("y")] == [{"a": None, "b": None, "c": 1}]


def test_hostile_decision_tables_are_refused_cleanly() -> None:
    cases = [
        ("in: x.__class__,out: y\n1,a\n", "names may not start with '_'"),
        ("in: x,out: y\n1,=__import__('os')\n", "names may not start with '_'"),
        ("in: x,out: y\n\"> 1e999999\",a\n", "number is too large"),
        ("in: x,out: __y\n1,a\n", "is not a name"),
        ("in: " + "-" * 500 + "x,out: y\n1,a\n", "deeper than"),
        ("in: x,out: y\n=eval('1'),a\n", "cannot read the value"),
    ]
    for text, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_table(text)


def test_every_hostile_error_is_a_hybrid_ai_error() -> None:
    for source in ["x.__class__", "(" * 100 + "1", "9" * 5000, "text matches '(a+)+'"]:
        with pytest.raises(HybridAIError):
            compile_expression(source)
