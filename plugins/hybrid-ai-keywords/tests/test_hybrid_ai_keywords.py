"""The plugin's own tests: what every plugin should check before it is published.

Run from this folder with ``python -m pytest tests`` once the package is installed
(``pip install -e .``). The hybrid-ai repository tests the installed plugin end to end in
``tests/test_plugin_package.py``.
"""

from __future__ import annotations

import pytest
from hybrid_ai import Plugins
from hybrid_ai.testing import check_stage

from hybrid_ai_keywords import KeywordFlagStage, contains_any, word_count


def test_stage_meets_the_contract() -> None:
    # Construction, declarations, a stable version, warm_up twice, process, and a real engine.
    report = check_stage(KeywordFlagStage, params={"lexicon": {"fraud": ["stolen", "scam"]}},
                         text="my card was stolen")
    [flag] = report.output
    assert flag.data == {"name": "fraud", "matched": ["stolen"], "spans": [[12, 18]]}
    assert flag.source == "keywords"


def test_stage_finds_nothing_without_error() -> None:
    report = check_stage(KeywordFlagStage, params={"lexicon": {"fraud": ["stolen"]}},
                         text="where is my card?")
    assert report.output == []


def test_bad_lexicon_names_the_flag() -> None:
    with pytest.raises(ValueError, match="flag 'fraud': keyword #1 is int"):
        KeywordFlagStage(lexicon={"fraud": [1]})  # type: ignore[list-item]


def test_the_entry_point_registers_everything() -> None:
    plugins = Plugins()  # a fresh manager: loads the installed entry points now
    assert plugins.stages.get("keyword_flags") is KeywordFlagStage
    assert plugins.rule_functions.get("contains_any") is contains_any
    assert plugins.rule_functions.get("word_count") is word_count


def test_rule_functions_are_null_safe() -> None:
    assert contains_any(None, ["stolen"]) is None
    assert word_count(None) is None
    assert contains_any("STOLEN card", ["stolen"]) is True
    assert word_count("my card was stolen") == 4
