"""Rule files: YAML data compiled into condition/action rules (no code from the file runs).

    rules:
      - id: stolen_card
        salience: 100
        when: "text matches '(?i)\\\\b(stolen|lost)\\\\b'"
        then:
          decision: {label: fraud_team, priority: urgent}
          strength: veto
          reason: "card reported lost or stolen: {text}"

An action writes one of ``decision`` (with ``strength`` veto | override | advise), ``flag`` or
``fact: {kind: ..., data: {...}}``. A string value that starts with ``=`` is an expression
(``label: "=knowledge.properties.team"``); ``{expr}`` in a ``reason`` is filled in the same way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._errors import ConfigError, ExpressionError, HybridAIError, Location, Problem
from .._expr import Expression, compile_expression
from .._yaml import LineDict, load_yaml_text, location_at
from ._patterns import compile_rules, needed_kinds, split_chaining
from ._rete import Rule

__all__ = ["CompiledRule", "RuleSet", "load_rules"]

CONTEXT_NAMES = frozenset({"text", "fields", "case", "facts"})
_TEMPLATE = re.compile(r"\{([^{}]+)\}")


class _Then(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: dict[str, Any] | None = None
    strength: Literal["veto", "override", "advise"] = "advise"
    flag: str | None = None
    fact: dict[str, Any] | None = None
    reason: str = ""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    description: str = ""
    salience: int = 0
    when: str
    then: _Then


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: list[_Rule] = Field(min_length=1)


Value = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class CompiledRule:
    """One rule, its condition compiled, its action values resolved to callables."""

    id: str
    salience: int
    condition: Expression
    kind: str
    data: Mapping[str, Value]
    strength: str
    reason: Value
    location: Location


@dataclass
class RuleSet:
    """Compiled rules in firing order (salience, then file order) with a content version.

    ``chaining`` holds the rules written with a list of patterns, run by the Rete engine.
    """

    rules: list[CompiledRule]
    version: str
    path: str
    fact_kinds: frozenset[str] = field(default_factory=frozenset)
    chaining: list[Rule] = field(default_factory=list)


def load_rules(path: str | Path, functions: Mapping[str, Callable[..., Any]]) -> RuleSet:
    """Read and compile a rule file; every problem in it is reported at once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read rule file {path}: {exc.strerror}") from None
    raw = load_yaml_text(text, str(path))
    raw, chaining_raw, positions = split_chaining(raw)
    problems: list[Problem] = []
    rules: list[CompiledRule] = []
    if not chaining_raw or raw["rules"]:
        spec = _validate(raw, str(path), positions)
        rules = [r for i, rule in enumerate(spec.rules)
                 if (r := _compile(rule, _rule_location(raw, i, path), functions, problems))]
    else:  # only chaining rules: the file itself may still hold nothing but `rules`
        problems.extend(Problem(f"{key}: Extra inputs are not permitted", raw.location_of(key))
                        for key in raw if key != "rules")
    chaining = _compile_chaining(chaining_raw, functions, str(path), problems)
    if problems:
        raise ConfigError(f"{path} has {len(problems)} problem(s)", problems)
    rules.sort(key=lambda r: -r.salience)
    kinds = frozenset(n for r in rules for n in r.condition.names) - CONTEXT_NAMES
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return RuleSet(rules, version, str(path), kinds | needed_kinds(chaining), chaining)


def _compile_chaining(raws: list[Any], functions: Mapping[str, Callable[..., Any]], file: str,
                      problems: list[Problem]) -> list[Rule]:
    try:
        return compile_rules(raws, functions, file)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return []


def _validate(raw: Any, file: str, positions: list[int] | None = None) -> _File:
    try:
        return _File.model_validate(raw)
    except ValidationError as exc:
        default = getattr(raw, "location", Location(file, 1))
        problems = [Problem(f"{'.'.join(map(str, _renumber(e['loc'], positions)))}: {e['msg']}",
                            location_at(raw, tuple(e["loc"]), default)) for e in exc.errors()]
        raise ConfigError(f"{file} is not a valid rule file", problems) from None


def _renumber(loc: tuple[Any, ...], positions: list[int] | None) -> tuple[Any, ...]:
    # Chaining rules were taken out before validation; report each rule's index in the file.
    if positions and len(loc) > 1 and loc[0] == "rules" and isinstance(loc[1], int) \
            and loc[1] < len(positions):
        return ("rules", positions[loc[1]], *loc[2:])
    return loc


def _rule_location(raw: Any, index: int, path: Path) -> Location:
    rule = raw.get("rules", [None] * (index + 1))[index] if isinstance(raw, LineDict) else None
    if isinstance(rule, LineDict):
        return rule.value_location_of("when")
    return Location(str(path))


def _compile(rule: _Rule, where: Location, functions: Mapping[str, Callable[..., Any]],
             problems: list[Problem]) -> CompiledRule | None:
    try:
        condition = compile_expression(rule.when, functions=functions, location=where)
        kind, data = _action(rule.then, functions, where)
        reason = _template(rule.then.reason, functions, where)
    except ExpressionError as exc:
        problems.append(Problem(f"rule {rule.id!r}: {exc.message}", exc.location, exc.hint))
        return None
    except HybridAIError as exc:
        problems.append(Problem(f"rule {rule.id!r}: {exc}", where))
        return None
    return CompiledRule(rule.id, rule.salience, condition, kind, data, rule.then.strength,
                        reason, where)


def _action(then: _Then, functions: Mapping[str, Callable[..., Any]],
            where: Location) -> tuple[str, dict[str, Value]]:
    chosen = [k for k in ("decision", "flag", "fact") if getattr(then, k) is not None]
    if len(chosen) != 1:
        raise ConfigError("`then` needs exactly one of decision, flag, fact",
                          [Problem("action", where)])
    if then.decision is not None:
        return "decision", {k: _value(v, functions, where) for k, v in then.decision.items()}
    if then.flag is not None:
        return "flag", {"name": _value(then.flag, functions, where)}
    fact = dict(then.fact or {})
    kind = str(fact.pop("kind", "") or "")
    if not kind:
        raise ConfigError("`fact` needs a `kind`", [Problem("fact action", where)])
    data = fact.get("data") or {}
    return kind, {k: _value(v, functions, where) for k, v in data.items()}


def _value(value: Any, functions: Mapping[str, Callable[..., Any]], where: Location) -> Value:
    if isinstance(value, str) and value.startswith("="):
        expr = compile_expression(value[1:], functions=functions, location=where)
        return expr.__call__
    return _constant(value)


def _constant(value: Any) -> Value:
    def constant(env: Mapping[str, Any]) -> Any:
        return value

    return constant


def _formatted(expr: Expression) -> Value:
    def formatted(env: Mapping[str, Any]) -> Any:
        return _fmt(expr(env))

    return formatted


def _template(text: str, functions: Mapping[str, Callable[..., Any]], where: Location) -> Value:
    parts: list[Value] = []
    pos = 0
    for match in _TEMPLATE.finditer(text):
        parts.append(_constant(text[pos:match.start()]))
        expr = compile_expression(match.group(1), functions=functions, location=where)
        parts.append(_formatted(expr))
        pos = match.end()
    parts.append(_constant(text[pos:]))

    def render(env: Mapping[str, Any]) -> Any:
        return "".join(str(p(env)) for p in parts)

    return render


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)
