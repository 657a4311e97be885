"""Rules: YAML rule files compiled from the safe expression language, and the ``rules`` stage.

String ``when:`` rules are evaluated once over the blackboard; ``when:`` lists of patterns are
forward-chaining production rules run by :class:`Engine` (an incremental Rete matcher); CSV
decision tables (:func:`load_table`) apply the DMN hit policies.
"""

from ._casetests import CaseResult, TestReport, run_tests
from ._check import Finding, LintReport, check_paths
from ._engine import Activation, Engine, Firing, RuleLimitError
from ._explain import ExplainReport, RuleExplanation, explain_rules
from ._patterns import compile_rule, compile_rules
from ._rete import Fact, Rule
from ._ruleset import CompiledRule, RuleSet, load_rules
from ._stage import RulesStage
from ._tablecheck import check_table
from ._tableload import load_table, parse_table
from ._tables import DecisionTable, DecisionTableError, TableFinding, TableHit, TableRow

__all__ = [
    "Activation",
    "CaseResult",
    "CompiledRule",
    "DecisionTable",
    "DecisionTableError",
    "Engine",
    "ExplainReport",
    "Fact",
    "Finding",
    "Firing",
    "LintReport",
    "Rule",
    "RuleExplanation",
    "RuleLimitError",
    "RuleSet",
    "RulesStage",
    "TableFinding",
    "TableHit",
    "TableRow",
    "TestReport",
    "check_paths",
    "check_table",
    "compile_rule",
    "compile_rules",
    "explain_rules",
    "load_rules",
    "load_table",
    "parse_table",
    "run_tests",
]
