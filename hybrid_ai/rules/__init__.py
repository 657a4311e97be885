"""Rules: YAML rule files compiled from the safe expression language, and the ``rules`` stage.

String ``when:`` rules are evaluated once over the blackboard; ``when:`` lists of patterns are
forward-chaining production rules run by :class:`Engine` (an incremental Rete matcher).
"""

from ._engine import Activation, Engine, Firing, RuleLimitError
from ._patterns import compile_rule, compile_rules
from ._rete import Fact, Rule
from ._ruleset import CompiledRule, RuleSet, load_rules
from ._stage import RulesStage

__all__ = [
    "Activation",
    "CompiledRule",
    "Engine",
    "Fact",
    "Firing",
    "Rule",
    "RuleLimitError",
    "RuleSet",
    "RulesStage",
    "compile_rule",
    "compile_rules",
    "load_rules",
]
