"""The ``rules`` stage: evaluates a rule file against the blackboard and writes what fires.

    - stage: rules
      with: {path: rules/support_triage.yaml}

Rules fire in salience order, each at most once per case, over the facts present when the stage
runs; the facts a condition names are its evidence in the provenance, with the rule id and the
rule file's content version.

Chaining rules (``when:`` a list of patterns) run after them in a fresh :class:`Engine` per case:
every blackboard fact enters working memory as ``(kind, data)``, the rules fire to a fixpoint
(``strategy`` depth | breadth, ``max_fires``), and the facts they inserted that are still there
and are of kind ``decision``, ``flag`` or a kind listed in ``produces`` become new facts with
provenance ``rule:<id>``, the bindings and the matched facts.
"""

from __future__ import annotations

from typing import Any

from .._errors import ConfigError
from .._facts import Fact, FactView, NewFact
from .._plugins import active_plugins
from .._run import route_env
from .._stage import BaseStage
from ._engine import Engine, Firing, Strategy
from ._rete import Fact as EngineFact
from ._ruleset import CompiledRule, RuleSet, load_rules

__all__ = ["RulesStage"]


class RulesStage(BaseStage):
    """Forward rules over facts -> ``decision`` / ``flag`` / declared fact kinds."""

    def __init__(self, *, path: str, produces: list[str] | None = None,
                 strategy: Strategy = "depth", max_fires: int = 100_000) -> None:
        super().__init__(path=path, produces=produces)
        # Compiling here is cheap and lets the graph check what the rules need and make.
        functions = dict(active_plugins().rule_functions.items())
        self.ruleset: RuleSet = load_rules(path, functions)
        self.requires = tuple(sorted(self.ruleset.fact_kinds))
        if strategy not in ("depth", "breadth"):
            raise ConfigError(f"rules stage: unknown strategy {strategy!r}; use depth or breadth")
        self.strategy, self.max_fires = strategy, max_fires
        self.outputs = frozenset({"decision", "flag", *(produces or ())})
        self._salience = {r.id: r.salience for r in self.ruleset.chaining}
        chained = {k for r in self.ruleset.chaining for k in r.makes} & self.outputs
        made = {r.kind for r in self.ruleset.rules} | set(produces or ()) | chained
        self.produces = tuple(sorted(made))

    @property
    def version(self) -> str:
        if (self.strategy, self.max_fires) == ("depth", 100_000):
            return self.ruleset.version
        return f"{self.ruleset.version}+{self.strategy}/{self.max_fires}"  # results differ

    def process(self, view: FactView) -> list[NewFact]:
        env = route_env(view)
        out: list[NewFact] = []
        for rule in self.ruleset.rules:
            if rule.condition(env):
                out.append(self._fire(rule, env, view))
        if self.ruleset.chaining:
            out.extend(self._chain(view))
        return out

    def _chain(self, view: FactView) -> list[NewFact]:
        engine = Engine(self.ruleset.chaining, strategy=self.strategy, max_fires=self.max_fires)
        board = view.all()
        inserted = engine.insert_all((f.kind, dict(f.data)) for f in board)
        origin = {fact.id: f for fact, f in zip(inserted, board, strict=True)}
        engine.run()
        out: dict[int, NewFact] = {}  # by engine fact: an identical insert is the same fact
        for firing in engine.firings:
            for fact in firing.inserted:
                if fact.kind in self.outputs and engine.memory.get(fact.id) is fact \
                        and fact.id not in origin and fact.id not in out:
                    out[fact.id] = self._chained(firing, fact, origin)
        return list(out.values())

    def _chained(self, firing: Firing, fact: EngineFact, origin: dict[int, Fact]) -> NewFact:
        data = dict(fact.fields)
        if fact.kind == "decision":  # the decide stage reads these; fill what the rule left out
            data.setdefault("strength", "advise")
            data.setdefault("reason", f"rule {firing.rule}")
            data.setdefault("rule", firing.rule)
            data.setdefault("salience", self._salience.get(firing.rule, 0))
        evidence = [origin[i] for i in firing.matched if i in origin]
        return NewFact(fact.kind, data, derived_from=evidence, source=f"rule:{firing.rule}",
                       detail={"rule": firing.rule, "ruleset": self.ruleset.path,
                               "version": self.ruleset.version, "bindings": firing.bindings,
                               "matched": firing.matched})

    def _fire(self, rule: CompiledRule, env: dict[str, Any], view: FactView) -> NewFact:
        data = {k: value(env) for k, value in rule.data.items()}
        reason = rule.reason(env)
        if rule.kind == "decision":
            data.update(strength=rule.strength, reason=reason or f"rule {rule.id}", rule=rule.id,
                        salience=rule.salience)
        elif reason:
            data["reason"] = reason
        evidence = _evidence(rule, view)
        return NewFact(rule.kind, data, derived_from=evidence, source=f"rule:{rule.id}",
                       detail={"rule": rule.id, "ruleset": self.ruleset.path,
                               "version": self.ruleset.version, "when": rule.condition.source,
                               "line": rule.location.line})


def _evidence(rule: CompiledRule, view: FactView) -> list[Fact]:
    names = rule.condition.names
    kinds = [n for n in names if n not in ("text", "fields", "case", "facts")]
    facts = [f for kind in kinds if (f := view.last(kind)) is not None]
    if names & {"text", "fields", "case"} or not facts:
        root = view.last("input")
        facts = ([root] if root is not None else []) + facts
    return facts
