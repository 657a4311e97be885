"""Why a rule fired (its bindings and the facts it matched), and why another did not.

    result = explain_rules("rules/support_triage.yaml",
                           {"text": "hi", "facts": {"intent": {"label": "card_arrival",
                                                               "confidence": 0.9}}},
                           rule="unsure_intent_to_human")
    print(result.text())

The facts are the same mapping a rule test's ``given`` holds (``text``, ``fields``, ``facts`` by
kind). Simple rules are evaluated on the blackboard exactly as the ``rules`` stage does; for one
that did not fire the condition is taken apart along its syntax tree (the first false operand
of an ``and``, every operand of an ``or``) down to the comparison that failed, with the values
it saw. Pattern rules run in the engine; for one that did not fire the patterns are matched
again in the order written, and the first one no partial match gets past is reported, with
the facts of its kind that came nearest and the test that rejected each.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ConfigError, HybridAIError, Location, Problem
from .._expr import (
    BoolOp,
    Conditional,
    EvaluationError,
    GetAttr,
    GetItem,
    Name,
    Node,
    Unary,
    compile_expression,
    unparse,
    walk,
)
from .._expr import Literal as Lit
from .._facts import Blackboard
from .._run import route_env
from .._yaml import LineDict, LineList, load_yaml_file
from ._casetests import board_for
from ._engine import Engine
from ._patterns import _element
from ._rete import Element, NccPattern, Pattern, TestPattern
from ._rete import Fact as WmFact
from ._ruleset import CONTEXT_NAMES, CompiledRule, RuleSet, load_rules
from ._tables import DecisionTable

__all__ = ["ExplainReport", "RuleExplanation", "explain_rules"]

SHOWN_FIRINGS = 20  # per rule in the text form; the JSON form has every firing

Functions = Mapping[str, Callable[..., Any]]
_MAX_CANDIDATES = 5


@dataclass
class RuleExplanation:
    """Why one rule fired (``firings``: bindings and matched facts) or not (``failed``...)."""

    rule: str
    kind: str                      # "simple" or "pattern"
    location: str
    fired: bool
    firings: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # condition, where, values
    candidates: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rule": self.rule, "kind": self.kind, "location": self.location,
                "fired": self.fired, "firings": self.firings, "failed": self.failed,
                "candidates": self.candidates, "note": self.note}

    def text(self) -> str:
        """A few indented lines for people."""
        what = self.kind if self.kind == "table row" else f"{self.kind} rule"
        head = f"{self.rule} ({what}, {self.location}): "
        lines = [head + ("FIRED" if self.fired else "did not fire")]
        for firing in self.firings[:SHOWN_FIRINGS]:
            if self.kind == "pattern":
                lines.append("  bindings: " + _show(firing.get("bindings", {}), "?"))
            else:
                lines.append("  read: " + _show(firing.get("bindings", {})))
            if firing.get("because"):
                lines.append("    because: " + " and ".join(f"`{c}`" for c in firing["because"]))
            if "outputs" in firing:
                lines.append(f"    outputs: {firing['outputs']}")
            lines += [f"    matched {_fact_text(f)}" for f in firing.get("matched", [])]
        if len(self.firings) > SHOWN_FIRINGS:  # a rule that loops fires until the limit
            lines.append(f"  ... and {len(self.firings) - SHOWN_FIRINGS} more firing(s) "
                         "(all of them in --json)")
        for failure in self.failed:
            lines.append(f"  failed: `{failure['condition']}` at {failure['location']}")
            if "written" in failure:
                lines.append(f"    written: {failure['written']}")
            lines += [f"    {k} = {v!r}" for k, v in failure.get("values", {}).items()]
        if self.candidates:
            lines.append("  nearest candidates:")
            lines += [f"    {_fact_text(c)}: rejected by `{c['rejected_by']}`"
                      + (f" (saw {c['value']!r})" if "value" in c else "")
                      for c in self.candidates]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


@dataclass
class ExplainReport:
    """The explanations of the rules of one file for one set of facts."""

    rules_file: str
    version: str
    rules: list[RuleExplanation]

    def fired(self) -> list[str]:
        """The ids of the rules that fired."""
        return [r.rule for r in self.rules if r.fired]

    def get(self, rule: str) -> RuleExplanation:
        """The explanation of one rule (KeyError when there is none)."""
        for item in self.rules:
            if item.rule == rule:
                return item
        raise KeyError(rule)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rules_file": self.rules_file, "version": self.version,
                "fired": self.fired(), "rules": [r.to_dict() for r in self.rules]}

    def text(self) -> str:
        """Every explanation, one block each."""
        header = f"{self.rules_file} (version {self.version}): fired {_names(self.fired())}"
        return "\n".join([header, *(r.text() for r in self.rules)])


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "nothing"


def _show(data: Mapping[str, Any], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{k} = {v!r}" for k, v in data.items()) or "(none)"


def _fact_text(fact: Mapping[str, Any]) -> str:
    return f"#{fact.get('id')} {fact.get('kind')} {dict(fact.get('fields') or {})}"


def explain_rules(path: str | Path, given: Mapping[str, Any], rule: str | None = None,
                  functions: Functions | None = None) -> ExplainReport:
    """Explain every rule of a file (or only ``rule``) for the facts in ``given``."""
    if functions is None:
        from .._plugins import active_plugins

        functions = dict(active_plugins().rule_functions.items())
    ruleset = load_rules(path, functions)
    ids = [r.id for r in ruleset.rules] + [r.id for r in ruleset.chaining]
    ids += [x for t in ruleset.tables for x in (t.id, *(f"{t.id}:{r.number}" for r in t.rows))]
    if rule is not None and rule not in ids:
        raise ConfigError(f"{path} has no rule {rule!r}", [Problem(
            f"unknown rule {rule!r}", Location(str(path)), "rules: " + ", ".join(ids))])
    board = board_for(given, "explain")
    out = [_simple(r, board, functions) for r in ruleset.rules if rule in (None, r.id)]
    for table in ruleset.tables:
        out += _table(table, board, functions, rule)
    if ruleset.chaining:
        out += _patterns(ruleset, board, functions, rule)
    return ExplainReport(str(path), ruleset.version, out)


# ---- simple rules ------------------------------------------------------------------------------


def _simple(rule: CompiledRule, board: Blackboard, functions: Functions) -> RuleExplanation:
    env = route_env(board)
    where = str(rule.location)
    try:
        fired = bool(rule.condition(env))
    except EvaluationError as exc:
        return RuleExplanation(rule.id, "simple", where, False, note=f"evaluation failed: {exc}")
    ev = _Evaluator(env, functions)
    if fired:
        values = ev.values(rule.condition.ast)
        facts = [_board_fact(board, k) for k in _kinds(rule.condition.ast)]
        return RuleExplanation(rule.id, "simple", where, True, [{
            "bindings": values, "because": list(ev.why_true(rule.condition.ast)),
            "matched": [f for f in facts if f is not None]}])
    failures = list(ev.why_false(rule.condition.ast))
    kinds = {f["condition"]: f.pop("kinds") for f in failures}
    result = RuleExplanation(rule.id, "simple", where, False, failed=failures)
    notes = []
    for kind in dict.fromkeys(k for ks in kinds.values() for k in ks):
        found = board.of(kind)
        if not found:
            notes.append(f"no fact of kind {kind!r} is on the blackboard (it reads as null)")
        rejected = "; ".join(c for c, ks in kinds.items() if kind in ks)
        # The condition reads the newest fact of a kind; older ones are shown as context.
        result.candidates += [{"id": f.id, "kind": f.kind, "fields": dict(f.data),
                               "rejected_by": rejected} for f in found[-_MAX_CANDIDATES:]]
    result.note = "; ".join(notes)
    return result


def _board_fact(board: Blackboard, kind: str) -> dict[str, Any] | None:
    fact = board.last(kind)
    return None if fact is None else {"id": fact.id, "kind": kind, "fields": dict(fact.data)}


def _kinds(node: Node) -> list[str]:
    names = [n.name for n in walk(node) if isinstance(n, Name)]
    return [n for n in dict.fromkeys(names) if n not in CONTEXT_NAMES]


def _is_path(node: Node) -> bool:
    if isinstance(node, Name):
        return True
    if isinstance(node, GetAttr):
        return _is_path(node.obj)
    return isinstance(node, GetItem) and isinstance(node.index, Lit) and _is_path(node.obj)


def _paths(node: Node) -> list[Node]:
    """The longest field paths read in a sub-expression (``intent.label``, not ``intent``)."""
    if _is_path(node):
        return [node]
    return [p for child in node.children() for p in _paths(child)]


class _Evaluator:
    """Evaluates sub-expressions of a condition against one environment."""

    def __init__(self, env: Mapping[str, Any], functions: Functions) -> None:
        self.env, self.functions = env, functions

    def value(self, node: Node) -> Any:
        return compile_expression(unparse(node), functions=self.functions)(self.env)

    def values(self, node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in _paths(node):
            text = unparse(path)
            if text not in out:
                out[text] = self.value(path)
        return out

    def why_true(self, node: Node) -> Iterator[str]:
        """The comparisons that made a true condition true (for an ``or``, the first)."""
        if isinstance(node, BoolOp) and node.op == "and":
            for value in node.values:
                yield from self.why_true(value)
        elif isinstance(node, BoolOp):
            yield from self.why_true(next(v for v in node.values if self.value(v)))
        elif isinstance(node, Conditional):
            yield from self.why_true(node.body if self.value(node.test) else node.orelse)
        else:
            yield unparse(node)

    def why_false(self, node: Node) -> Iterator[dict[str, Any]]:
        if isinstance(node, BoolOp) and node.op == "and":
            first = next(v for v in node.values if not self.value(v))
            yield from self.why_false(first)
        elif isinstance(node, BoolOp):
            for value in node.values:
                yield from self.why_false(value)
        elif isinstance(node, Conditional):
            yield from self.why_false(node.body if self.value(node.test) else node.orelse)
        else:
            yield self.leaf(node)

    def leaf(self, node: Node) -> dict[str, Any]:
        text = unparse(node)
        placed = [n.location for n in walk(node) if n.location.line is not None]
        where = min(placed, key=lambda loc: (loc.line or 0, loc.column or 0), default=None)
        if isinstance(node, Unary):
            text = f"{text} (the negated part was true)"
        return {"condition": text, "location": str(where or node.location),
                "values": self.values(node),
                "kinds": _kinds(node)}


# ---- decision tables -----------------------------------------------------------------------------


def _table(table: DecisionTable, board: Blackboard, functions: Functions,
           only: str | None) -> list[RuleExplanation]:
    env = route_env(board)
    note = ""
    try:
        hits = table.evaluate(env)
    except HybridAIError as exc:
        hits, note = [], f"the table failed: {exc}"
    chosen = {row.number: hit for hit in hits for row in hit.rows}
    ev = _Evaluator(env, functions)
    out = []
    for row in table.rows:
        rid = f"{table.id}:{row.number}"
        if only not in (None, table.id, rid):
            continue
        item = RuleExplanation(rid, "table row", str(row.location), row.number in chosen,
                               note=note)
        if item.fired:
            item.firings.append({"bindings": ev.values(row.condition.ast),
                                 "outputs": dict(chosen[row.number].values)})
        elif row.condition(env):
            picked = ", ".join(str(n) for n in chosen) or "none"
            item.note = item.note or (f"the row matches, but hit policy {table.hit} chose "
                                      f"row(s) {picked}")
        else:
            item.failed = [_drop_kinds(f) for f in ev.why_false(row.condition.ast)]
        out.append(item)
    return out


def _drop_kinds(failure: dict[str, Any]) -> dict[str, Any]:
    failure.pop("kinds", None)
    return failure


# ---- pattern rules -----------------------------------------------------------------------------


def _patterns(ruleset: RuleSet, board: Blackboard, functions: Functions,
              only: str | None) -> list[RuleExplanation]:
    engine = Engine(ruleset.chaining)
    engine.insert_all((f.kind, dict(f.data)) for f in board.all())
    try:
        engine.run()
        note = ""
    except HybridAIError as exc:
        note = f"the run stopped early: {exc}"
    raws = _raw_rules(ruleset.path)
    out = []
    for rule in ruleset.chaining:
        if only not in (None, rule.id):
            continue
        raw = raws.get(rule.id)
        where = str(getattr(raw, "location", Location(ruleset.path)))
        firings = [{"bindings": f.bindings, "matched": [_wm(engine.memory.get(i), i)
                                                        for i in f.matched]}
                   for f in engine.firings if f.rule == rule.id]
        result = RuleExplanation(rule.id, "pattern", where, bool(firings), firings, note=note)
        if not firings and raw is not None:
            _why_no_match(result, raw, engine, functions)
        out.append(result)
    return out


def _wm(fact: WmFact | None, fact_id: int) -> dict[str, Any]:
    if fact is None:
        return {"id": fact_id, "kind": "(retracted since)", "fields": {}}
    return {"id": fact.id, "kind": fact.kind, "fields": dict(fact.fields)}


def _raw_rules(path: str) -> dict[str, Any]:
    raw = load_yaml_file(path)
    items = raw.get("rules") if isinstance(raw, LineDict) else None
    found: dict[str, Any] = {}
    if not isinstance(items, LineList):
        return found
    for i, item in enumerate(items):
        if isinstance(item, LineDict) and isinstance(item.get("when"), list):
            item.location = items.item_locations[i]
            found[str(item.get("id"))] = item
    return found


def _source_order(raw: LineDict, functions: Functions) -> list[tuple[Element, Location]]:
    # The engine moves patterns that join nothing to the end; the explanation follows the
    # order the author wrote, so each element is compiled here as written.
    when = raw["when"]
    places = getattr(when, "item_locations", None) or [raw.location] * len(when)
    bound: dict[str, bool] = {}
    return [(_element(item, functions, bound, at), at)
            for item, at in zip(when, places, strict=True)]


Env = dict[str, Any]


def _why_no_match(result: RuleExplanation, raw: LineDict, engine: Engine,
                  functions: Functions) -> None:
    tokens: list[Env] = [{}]
    facts = list(engine.memory.values())
    for (element, at), item in zip(_source_order(raw, functions), raw["when"], strict=True):
        survivors, failure = _step(element, tokens, facts)
        if not survivors:
            failure["location"] = str(at)
            failure["written"] = _written(item)
            candidates = failure.pop("candidates", [])
            result.failed.append(failure)
            result.candidates = sorted(candidates, key=lambda c: -c.pop("passed"))[
                :_MAX_CANDIDATES]
            return
        tokens = survivors
    group = str(raw.get("agenda_group") or "MAIN")
    result.note = (f"all its patterns match ({len(tokens)} match(es)) but it did not fire"
                   + (f": agenda group {group!r} never had the focus" if group != "MAIN"
                      else ": the run halted or hit a limit first"))


def _written(item: Any) -> str:
    """A condition element as the author wrote it, on one line."""
    if isinstance(item, Mapping) and isinstance(item.get("test"), str):
        return f"test: {item['test']}"
    return json.dumps(item, default=str, ensure_ascii=False)


def _step(element: Element, tokens: list[Env],
          facts: list[WmFact]) -> tuple[list[Env], dict[str, Any]]:
    if isinstance(element, TestPattern):
        passed = [env for env in tokens if element.check(env)]
        names = sorted(getattr(element.check, "names", ()))
        values = {f"?{n}": _plain(tokens[0].get(n)) for n in names} if tokens else {}
        return passed, {"condition": _source(element.check), "values": values}
    if isinstance(element, NccPattern):
        return _ncc(element, tokens, facts)
    return _pattern_step(element, tokens, facts)


def _plain(value: Any) -> Any:
    if isinstance(value, WmFact):
        return {"id": value.id, "kind": value.kind, "fields": dict(value.fields)}
    return value


def _source(check: Any) -> str:
    return str(getattr(check, "source", check)).replace("this ", "", 1).strip()


def _ncc(element: NccPattern, tokens: list[Env],
         facts: list[WmFact]) -> tuple[list[Env], dict[str, Any]]:
    survivors: list[Env] = []
    blocked: list[Env] = []
    for env in tokens:
        inner = [env]
        for sub in element.patterns:
            inner, _ = _step(sub, inner, facts)
        (blocked if inner else survivors).append(env if not inner else inner[0])
    values = {f"?{k}": _plain(v) for k, v in (blocked[0] if blocked else {}).items()}
    return survivors, {"condition": "not / forall group: the patterns it rules out have a "
                                    "match (for forall: a counterexample), with these bindings",
                       "values": values}


def _pattern_step(pattern: Pattern, tokens: list[Env],
                  facts: list[WmFact]) -> tuple[list[Env], dict[str, Any]]:
    same_kind = [f for f in facts if f.kind == pattern.kind]
    survivors: list[Env] = []
    rejected: dict[int, dict[str, Any]] = {}
    for env in tokens:
        passing = []
        for fact in same_kind:
            why = _reject(pattern, env, fact)
            if why is None:
                passing.append(fact)
            elif fact.id not in rejected or rejected[fact.id]["passed"] < why["passed"]:
                rejected[fact.id] = {"id": fact.id, "kind": fact.kind,
                                     "fields": dict(fact.fields), **why}
        if pattern.mode == "pos":
            survivors += [_extend(pattern, env, f) for f in passing]
        elif (pattern.mode == "exists") == bool(passing):
            survivors.append(env)
        elif passing:
            blocker = passing[0]
            rejected = {blocker.id: {"id": blocker.id, "kind": blocker.kind,
                                     "fields": dict(blocker.fields),
                                     "rejected_by": "it matches the negated pattern",
                                     "passed": 99}}
    what = {"pos": "", "not": "not ", "exists": "exists "}[pattern.mode]
    failure: dict[str, Any] = {"condition": f"{what}{pattern.kind} pattern", "values": {}}
    if not same_kind and pattern.mode != "not":
        failure["condition"] += f": no fact of kind {pattern.kind!r} in working memory"
    failure["candidates"] = list(rejected.values())
    return survivors, failure


def _extend(pattern: Pattern, env: Env, fact: WmFact) -> Env:
    out = dict(env)
    for var, name in pattern.binds:
        out[var] = fact.fields.get(name)
    if pattern.fact_var:
        out[pattern.fact_var] = fact
    return out


def _reject(pattern: Pattern, env: Env, fact: WmFact) -> dict[str, Any] | None:
    """The first test a fact fails for this partial match (None: it passes), and how many of
    the pattern's tests it passed before that."""
    passed = 0
    for test in pattern.alpha:
        if not test.check(fact.fields):
            return _rejection(test.key, fact, passed)
        passed += 1
    for var, name in pattern.joins:
        if fact.fields.get(name) != env.get(var):
            return {"rejected_by": f"{name} == ?{var} (?{var} = {_plain(env.get(var))!r})",
                    "value": fact.fields.get(name), "passed": passed}
        passed += 1
    scope = dict(env)
    for var, name in pattern.binds:
        scope[var] = fact.fields.get(name)
    for field_name, check in pattern.tests:
        scope["this"] = fact.fields.get(field_name) if field_name else None
        if not check(scope):
            return {"rejected_by": f"{field_name} {_source(check)}", "value": scope["this"],
                    "passed": passed}
        passed += 1
    return None


def _rejection(key: Any, fact: WmFact, passed: int) -> dict[str, Any]:
    parts = list(key) if isinstance(key, tuple) else [key]
    head, name = (str(p) if p is not None else None for p in [*parts, None, None][:2])
    text = {"has": f"has a field {name!r}", "eq": f"{name} == {parts[-1]}",
            "test": f"{name} {parts[-1]}", "same": f"{name} == {parts[-1]}"}.get(
        str(head), repr(key))
    out: dict[str, Any] = {"rejected_by": text, "passed": passed}
    if isinstance(name, str) and name in fact.fields:
        out["value"] = fact.fields[name]
    return out
