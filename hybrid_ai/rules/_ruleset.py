"""Rule files: YAML data compiled into condition/action rules (no code from the file runs).

    rules:
      - id: stolen_card
        salience: 100
        when: "text matches '(?i)\\\\b(stolen|lost)\\\\b'"
        then:
          decision: {label: fraud_team, priority: urgent}
          strength: veto
          reason: "card reported lost or stolen: {text}"

An action writes one of ``decision`` (with ``strength`` veto | override | advise and an optional
``confidence`` from 0 to 1, which the ``decide`` stage ranks equal-salience decisions by and
reports; without one a decision carries none), ``flag`` or ``fact: {kind: ..., data: {...}}``.
A string value that starts with ``=`` is an expression (``label: "=knowledge.properties.team"``);
``{expr}`` in a ``reason`` is filled in the same way.

Two more sections: ``tables: [pricing.csv, {path: risk.csv, hit: FIRST}]`` adds CSV decision
tables (paths relative to the rule file; see ``_tables``), and ``schemas:`` declares typed fact
kinds checked at load (see ``_schemas``). A ``.csv`` path given to :func:`load_rules` is read as
a rule set holding that one table. The version of a rule set with tables hashes the tables too.
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
from ._schemas import Schemas, check_chaining, check_expression, check_fields, parse_schemas
from ._tableload import parse_table
from ._tables import DIRECTIVES, DecisionTable

__all__ = ["CompiledRule", "RuleSet", "load_rules"]

CONTEXT_NAMES = frozenset({"text", "fields", "case", "facts"})
_TEMPLATE = re.compile(r"\{([^{}]+)\}")


class _Then(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: dict[str, Any] | None = None
    strength: Literal["veto", "override", "advise"] = "advise"
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
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
    rules: list[_Rule] = Field(default_factory=list)


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
    confidence: float | None = None


@dataclass
class RuleSet:
    """Compiled rules in firing order (salience, then file order) with a content version.

    ``chaining`` holds the rules written with a list of patterns, run by the Rete engine;
    ``tables`` the decision tables; ``schemas`` the declared fact kinds (kind -> field -> type).
    """

    rules: list[CompiledRule]
    version: str
    path: str
    fact_kinds: frozenset[str] = field(default_factory=frozenset)
    chaining: list[Rule] = field(default_factory=list)
    tables: list[DecisionTable] = field(default_factory=list)
    schemas: Schemas = field(default_factory=dict)


def load_rules(path: str | Path, functions: Mapping[str, Callable[..., Any]]) -> RuleSet:
    """Read and compile a rule file; every problem in it is reported at once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig" if path.suffix.lower() == ".csv" else "utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read rule file {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        table = parse_table(text, str(path), functions)
        return RuleSet([], table.version, str(path), _table_kinds([table]), tables=[table])
    raw, sections = _sections(load_yaml_text(text, str(path)))
    raw, chaining_raw, positions = split_chaining(raw)
    problems: list[Problem] = []
    schemas = parse_schemas(sections.get("schemas"), str(path), problems)
    rules: list[CompiledRule] = []
    if not chaining_raw or raw["rules"]:
        spec = _validate(raw, str(path), positions)
        rules = [r for i, rule in enumerate(spec.rules)
                 if (r := _compile(rule, _rule_location(raw, i, path), functions, problems))]
    else:  # only chaining rules: the file itself may still hold nothing but `rules`
        problems.extend(Problem(f"{key}: Extra inputs are not permitted", raw.location_of(key))
                        for key in raw if key != "rules")
    chaining = _compile_chaining(chaining_raw, functions, str(path), problems)
    tables = _load_tables(sections.get("tables"), path, functions, problems)
    _check_schemas(schemas, raw, rules, chaining_raw, problems)
    if not rules and not chaining and not tables and not problems:
        problems.append(Problem("the file has no rules and no tables",
                                getattr(raw, "location", Location(str(path))),
                                "add a `rules:` list or a `tables:` list"))
    if problems:
        raise ConfigError(f"{path} has {len(problems)} problem(s)", problems)
    rules.sort(key=lambda r: -r.salience)
    kinds = frozenset(n for r in rules for n in r.condition.names) - CONTEXT_NAMES
    version = _version(text, tables)
    chained = needed_kinds(chaining) - {t.kind for t in tables}  # tables feed chaining rules
    return RuleSet(rules, version, str(path), kinds | chained | _table_kinds(tables), chaining,
                   tables, schemas)


def _version(text: str, tables: list[DecisionTable]) -> str:
    content = text + "".join(f"\n{t.path}={t.version}" for t in tables)
    return hashlib.sha256(content.encode()).hexdigest()[:12]


def _table_kinds(tables: list[DecisionTable]) -> frozenset[str]:
    return frozenset(n for t in tables for n in t.names) - CONTEXT_NAMES


def _sections(raw: Any) -> tuple[Any, dict[str, Any]]:
    """Take ``tables`` and ``schemas`` out of a loaded rule file (the rest keeps locations)."""
    if not isinstance(raw, LineDict) or not {"tables", "schemas"} & set(raw):
        return raw, {}
    copy = LineDict({k: v for k, v in raw.items() if k not in ("tables", "schemas")})
    copy.location, copy.key_locations = raw.location, raw.key_locations
    copy.value_locations = raw.value_locations
    return copy, {k: raw[k] for k in ("tables", "schemas") if k in raw}


def _load_tables(raw: Any, path: Path, functions: Mapping[str, Callable[..., Any]],
                 problems: list[Problem]) -> list[DecisionTable]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    places = getattr(raw, "item_locations", None) or [Location(str(path))] * len(items)
    tables = []
    for item, where in zip(items, places, strict=True):
        options = dict(item) if isinstance(item, Mapping) else {"path": item}
        target = options.pop("path", None)
        if not isinstance(target, str) or set(options) - set(DIRECTIVES):
            problems.append(Problem(f"table entry {item!r} is not a path or {{path: ...}}", where,
                                    f"write `- pricing.csv` or `- {{path: pricing.csv, hit: "
                                    f"FIRST}}`; options: {', '.join(DIRECTIVES)}"))
            continue
        try:
            text = (path.parent / target).read_text(encoding="utf-8-sig")
            tables.append(parse_table(text, str(path.parent / target), functions, **options))
        except OSError as exc:
            problems.append(Problem(f"cannot read decision table {target}: {exc.strerror}", where,
                                    "paths are relative to the rule file"))
        except ConfigError as exc:
            problems.extend(exc.problems or [Problem(str(exc), where)])
    return tables


def _check_schemas(schemas: Schemas, raw: Any, rules: list[CompiledRule],
                   chaining_raw: list[Any], problems: list[Problem]) -> None:
    if not schemas:
        return
    for rule in rules:
        check_expression(schemas, rule.condition, problems)
    items = raw.get("rules") if isinstance(raw, LineDict) else None
    for item in items if isinstance(items, list) else []:
        then = item.get("then") if isinstance(item, Mapping) else None
        fact = then.get("fact") if isinstance(then, Mapping) else None
        if isinstance(fact, Mapping) and isinstance(fact.get("data"), Mapping):
            where = getattr(fact, "location", Location())
            check_fields(schemas, str(fact.get("kind")), fact["data"], where, problems)
    check_chaining(schemas, chaining_raw, problems)


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
                        reason, where, rule.then.confidence)


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

    constant.value = value  # type: ignore[attr-defined]  # the schema check reads literals
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
