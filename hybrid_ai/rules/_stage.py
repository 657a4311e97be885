"""The ``rules`` stage: evaluates a rule file against the blackboard and writes what fires.

    - stage: rules
      with: {path: rules/support_triage.yaml}      # or a decision table: {path: pricing.csv}

Rules fire in salience order, each at most once per case, over the facts present when the stage
runs; the facts a condition names are its evidence in the provenance, with the rule id and the
rule file's content version. Decision tables (``tables:`` in the rule file, or a ``.csv``
``path``) are evaluated next, over the same facts: each result becomes a fact of the table's
kind with provenance ``table:<id>``, the row(s), line and the table's version.

Chaining rules (``when:`` a list of patterns) run after them in a fresh :class:`Engine` per case:
every blackboard fact enters working memory as ``(kind, data)``, and so does every decision-table
result of this case (chaining rules can match what a table decided), the rules fire to a fixpoint
(``strategy`` depth | breadth), and the facts they inserted that are still there and are of kind
``decision``, ``flag`` or a kind listed in ``produces`` become new facts with provenance
``rule:<id>``, the bindings and the matched facts.

Limits per case: ``max_fires`` (100,000), ``max_facts`` (1,000,000) and ``timeout_s`` (10 s);
crossing one raises :class:`RuleLimitError` naming the limit, the rule fired last, and this key.

``reload()`` (re-read the file) and ``replace(ruleset)`` swap the rule set atomically while cases
run: a case uses the rule set it started with, whole, and its facts carry that version.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._facts import Fact, FactView, NewFact
from .._plugins import active_plugins
from .._run import route_env
from .._stage import BaseStage
from ._engine import Engine, Firing, Strategy
from ._rete import Fact as EngineFact
from ._ruleset import CONTEXT_NAMES, CompiledRule, RuleSet, load_rules
from ._tables import DecisionTable, TableHit

__all__ = ["RulesStage"]

_DEFAULTS = ("depth", 100_000)


@dataclass(frozen=True)
class _Loaded:
    """One rule set and what the stage derived from it; swapped whole on reload."""

    ruleset: RuleSet
    salience: Mapping[str, int]
    requires: tuple[str, ...]
    made: frozenset[str]


class RulesStage(BaseStage):
    """Forward rules and decision tables over facts -> ``decision`` / ``flag`` / declared kinds."""

    def __init__(self, *, path: str, produces: list[str] | None = None,
                 strategy: Strategy = "depth", max_fires: int = 100_000,
                 max_facts: int = 1_000_000, timeout_s: float = 10.0) -> None:
        super().__init__(path=path, produces=produces)
        if strategy not in ("depth", "breadth"):
            raise ConfigError(f"rules stage: unknown strategy {strategy!r}; use depth or breadth")
        for name, value in (("max_fires", max_fires), ("max_facts", max_facts),
                            ("timeout_s", timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"rules stage: {name} must be a positive number, "
                                  f"not {value!r}")
        self.path, self.strategy, self.max_fires = path, strategy, max_fires
        self.max_facts, self.timeout_s = max_facts, timeout_s
        self.outputs = frozenset({"decision", "flag", *(produces or ())})
        self._declared = tuple(produces or ())
        self._lock = threading.Lock()
        # Compiling here is cheap and lets the graph check what the rules need and make.
        self._loaded = self._derive(load_rules(path, self._functions()))
        self.requires = self._loaded.requires
        self.produces = tuple(sorted(self._loaded.made))

    @staticmethod
    def _functions() -> dict[str, Any]:
        return dict(active_plugins().rule_functions.items())

    def _derive(self, ruleset: RuleSet) -> _Loaded:
        chained = {k for r in ruleset.chaining for k in r.makes} & self.outputs
        made = ({r.kind for r in ruleset.rules} | {t.kind for t in ruleset.tables}
                | set(self._declared) | chained)
        return _Loaded(ruleset, {r.id: r.salience for r in ruleset.chaining},
                       tuple(sorted(ruleset.fact_kinds)), frozenset(made))

    @property
    def ruleset(self) -> RuleSet:
        """The rule set cases use now."""
        return self._loaded.ruleset

    @property
    def version(self) -> str:
        loaded = self._loaded
        if (self.strategy, self.max_fires) == _DEFAULTS:
            return loaded.ruleset.version
        return f"{loaded.ruleset.version}+{self.strategy}/{self.max_fires}"  # results differ

    # ---- replacing the rule set while cases run ----------------------------------------------
    def reload(self, path: str | Path | None = None) -> RuleSet:
        """Re-read the rule file (or another) and swap it in atomically; returns the new set.

        A file that does not load raises ConfigError and the running rule set stays.
        """
        return self.replace(load_rules(path or self.path, self._functions()))

    def replace(self, ruleset: RuleSet) -> RuleSet:
        """Swap in a compiled rule set atomically: cases already running finish on the old one.

        The new set may not need fact kinds the pipeline was not wired for, nor make kinds it
        did not declare: that needs a new pipeline (ConfigError says which kinds).
        """
        loaded = self._derive(ruleset)
        needs = sorted(set(loaded.requires) - set(self.requires))
        makes = sorted(loaded.made - set(self.produces))
        if needs or makes:
            raise ConfigError(
                f"rules stage: the new rule set {ruleset.path} "
                + (f"reads fact kinds {needs} " if needs else "")
                + (f"makes fact kinds {makes} " if makes else "")
                + "the pipeline was not built for; rebuild the pipeline to use it")
        with self._lock:
            self._loaded = loaded  # one reference swap: a running case keeps its own
        return ruleset

    # ---- running -----------------------------------------------------------------------------
    def process(self, view: FactView) -> list[NewFact]:
        return self.evaluate(view)[0]

    def evaluate(self, view: FactView) -> tuple[list[NewFact], list[str]]:
        """The facts the rules make, and every chaining rule that fired, in firing order
        (a chaining rule may fire and leave no fact behind: rule tests need to know)."""
        loaded = self._loaded  # read once: the whole case runs on this rule set
        ruleset = loaded.ruleset
        env = route_env(view)
        out: list[NewFact] = []
        for rule in ruleset.rules:
            if rule.condition(env):
                out.append(self._fire(ruleset, rule, env, view))
        tabled = [self._table(ruleset, table, hit, view)
                  for table in ruleset.tables for hit in table.evaluate(env)]
        out.extend(tabled)
        if not ruleset.chaining:
            return out, []
        chained, fired = self._chain(loaded, view, tabled)
        return out + chained, fired

    def _chain(self, loaded: _Loaded, view: FactView,
               tabled: list[NewFact]) -> tuple[list[NewFact], list[str]]:
        engine = Engine(loaded.ruleset.chaining, strategy=self.strategy,
                        max_fires=self.max_fires, max_facts=self.max_facts,
                        timeout_s=self.timeout_s)
        board = view.all()
        inserted = engine.insert_all((f.kind, dict(f.data)) for f in board)
        origin = {fact.id: f for fact, f in zip(inserted, board, strict=True)}
        given = set(origin) | {f.id for f in engine.insert_all(
            (new.kind, dict(new.data)) for new in tabled)}
        engine.run()
        out: dict[int, NewFact] = {}  # by engine fact: an identical insert is the same fact
        for firing in engine.firings:
            for fact in firing.inserted:
                if fact.kind in self.outputs and engine.memory.get(fact.id) is fact \
                        and fact.id not in given and fact.id not in out:
                    out[fact.id] = self._chained(loaded, firing, fact, origin)
        return list(out.values()), [firing.rule for firing in engine.firings]

    def _chained(self, loaded: _Loaded, firing: Firing, fact: EngineFact,
                 origin: dict[int, Fact]) -> NewFact:
        data = dict(fact.fields)
        confidence = None
        if fact.kind == "decision":  # the decide stage reads these; fill what the rule left out
            data.setdefault("strength", "advise")
            data.setdefault("reason", f"rule {firing.rule}")
            data.setdefault("rule", firing.rule)
            data.setdefault("salience", loaded.salience.get(firing.rule, 0))
            confidence = _confidence(data.get("confidence"))
        evidence = [origin[i] for i in firing.matched if i in origin]
        return NewFact(fact.kind, data, confidence=confidence, derived_from=evidence,
                       source=f"rule:{firing.rule}",
                       detail={"rule": firing.rule, "ruleset": loaded.ruleset.path,
                               "version": loaded.ruleset.version, "bindings": firing.bindings,
                               "matched": firing.matched})

    def _fire(self, ruleset: RuleSet, rule: CompiledRule, env: dict[str, Any],
              view: FactView) -> NewFact:
        data = {k: value(env) for k, value in rule.data.items()}
        reason = rule.reason(env)
        if rule.kind == "decision":
            data.update(strength=rule.strength, reason=reason or f"rule {rule.id}", rule=rule.id,
                        salience=rule.salience)
        elif reason:
            data["reason"] = reason
        evidence = _evidence(rule.condition.names, view)
        return NewFact(rule.kind, data, confidence=rule.confidence, derived_from=evidence,
                       source=f"rule:{rule.id}",
                       detail={"rule": rule.id, "ruleset": ruleset.path,
                               "version": ruleset.version, "when": rule.condition.source,
                               "line": rule.location.line})

    def _table(self, ruleset: RuleSet, table: DecisionTable, hit: TableHit,
               view: FactView) -> NewFact:
        data = dict(hit.values)
        confidence = _confidence(data.pop("confidence", None)) if "confidence" in data \
            else table.confidence
        first = hit.rows[0]
        rule = f"{table.id}:{first.number}"
        if table.kind == "decision":
            data.setdefault("strength", table.strength)
            data.setdefault("reason", first.annotation or f"table {table.id} row {first.number}")
            data.setdefault("rule", rule)
            data.setdefault("salience", table.salience)
        return NewFact(table.kind, data, confidence=confidence,
                       derived_from=_evidence(table.names, view), source=f"table:{rule}",
                       detail={"table": table.id, "file": table.path, "hit": table.hit,
                               "rows": [r.number for r in hit.rows],
                               "lines": [r.line for r in hit.rows],
                               "when": first.condition.source, "version": table.version,
                               "ruleset": ruleset.path, "ruleset_version": ruleset.version})


def _confidence(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


def _evidence(names: frozenset[str], view: FactView) -> list[Fact]:
    kinds = [n for n in names if n not in CONTEXT_NAMES]
    facts = [f for kind in kinds if (f := view.last(kind)) is not None]
    if names & {"text", "fields", "case"} or not facts:
        root = view.last("input")
        facts = ([root] if root is not None else []) + facts
    return facts
