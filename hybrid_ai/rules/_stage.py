"""The ``rules`` stage: evaluates a rule file against the blackboard and writes what fires.

    - stage: rules
      with: {path: rules/support_triage.yaml}

Rules fire in salience order, each at most once per case, over the facts present when the stage
runs; the facts a condition names are its evidence in the provenance, with the rule id and the
rule file's content version.
"""

from __future__ import annotations

from typing import Any

from .._facts import Fact, FactView, NewFact
from .._plugins import active_plugins
from .._run import route_env
from .._stage import BaseStage
from ._ruleset import CompiledRule, RuleSet, load_rules

__all__ = ["RulesStage"]


class RulesStage(BaseStage):
    """Forward rules over facts -> ``decision`` / ``flag`` / declared fact kinds."""

    def __init__(self, *, path: str, produces: list[str] | None = None) -> None:
        super().__init__(path=path, produces=produces)
        # Compiling here is cheap and lets the graph check what the rules need and make.
        functions = dict(active_plugins().rule_functions.items())
        self.ruleset: RuleSet = load_rules(path, functions)
        self.requires = tuple(sorted(self.ruleset.fact_kinds))
        made = {r.kind for r in self.ruleset.rules} | set(produces or ())
        self.produces = tuple(sorted(made))

    @property
    def version(self) -> str:
        return self.ruleset.version

    def process(self, view: FactView) -> list[NewFact]:
        env = route_env(view)
        out: list[NewFact] = []
        for rule in self.ruleset.rules:
            if rule.condition(env):
                out.append(self._fire(rule, env, view))
        return out

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
