"""Rules: YAML rule files compiled from the safe expression language, and the ``rules`` stage."""

from ._ruleset import CompiledRule, RuleSet, load_rules
from ._stage import RulesStage

__all__ = ["CompiledRule", "RuleSet", "RulesStage", "load_rules"]
