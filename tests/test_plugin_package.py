"""The template plugin ``hybrid-ai-keywords``, installed as a real distribution.

These tests install nothing: ``make setup`` runs ``pip install -e plugins/hybrid-ai-keywords``.
They check that the entry point is found, and that the plugin's stage and rule functions work
where users meet them: a pipeline read from YAML, a route condition, and a rule file.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hybrid_ai
from hybrid_ai import Engine, PipelineError, Plugins, Result, read_pipeline

DIST = "hybrid-ai-keywords"
PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / DIST
SETUP_HINT = (f"the plugin package {DIST} is not installed in this environment; run `make setup` "
              f"or `pip install -e plugins/{DIST}`")


@pytest.fixture(autouse=True)
def _plugin_installed() -> None:
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        pytest.fail(SETUP_HINT, pytrace=False)


def run_yaml(text: str, case: Any) -> Result:
    """Build an engine from pipeline YAML text and run one case through it."""
    spec = read_pipeline("inline.yaml", text=text)
    with Engine(spec) as engine:
        return engine.run(case)


def by_name(result: Result) -> dict[str, Any]:
    return {f.data["name"]: f for f in result.of("flag")}


# --- discovery -------------------------------------------------------------------------------


def test_entry_point_is_declared_by_the_distribution() -> None:
    eps = [ep for ep in metadata.distribution(DIST).entry_points if ep.group == "hybrid_ai"]
    assert [(ep.name, ep.value) for ep in eps] == [("keywords", "hybrid_ai_keywords.plugin")]


def test_a_fresh_plugin_manager_lists_the_plugin_and_what_it_provides() -> None:
    infos = [i for i in Plugins().info() if i.distribution == DIST]
    assert len(infos) == 1, [(i.name, i.distribution) for i in Plugins().info()]
    info = infos[0]
    assert info.name == "keywords"
    assert info.version == metadata.version(DIST)
    assert info.provides == {"stages": ("keyword_flags",),
                             "rule functions": ("contains_any", "word_count")}


def test_the_registries_hold_the_plugins_objects() -> None:
    from hybrid_ai_keywords import KeywordFlagStage, contains_any, word_count

    plugins = Plugins()
    assert plugins.stages.get("keyword_flags") is KeywordFlagStage
    assert plugins.stages.owner("keyword_flags") == "keywords"
    assert plugins.rule_functions.get("contains_any") is contains_any
    assert plugins.rule_functions.get("word_count") is word_count


def test_without_entry_points_the_stage_is_unknown() -> None:
    assert "keyword_flags" not in Plugins(entry_points=False).stages


def _plugin_sources() -> Iterator[Path]:
    yield from sorted((PLUGIN_DIR / "hybrid_ai_keywords").glob("*.py"))


def test_the_plugin_uses_only_the_public_api() -> None:
    offenders = []
    for path in _plugin_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno}: {n}" for n in names
                          if n.startswith("hybrid_ai.") or n.startswith("hybrid_ai._")]
            if isinstance(node, ast.ImportFrom) and node.module == "hybrid_ai":
                offenders += [f"{path.name}:{node.lineno}: hybrid_ai.{a.name}" for a in node.names
                              if a.name not in hybrid_ai.__all__]
    assert not offenders, "plugins must import from `hybrid_ai` only: " + ", ".join(offenders)


def test_the_package_ships_its_type_marker() -> None:
    files = metadata.files(DIST) or []
    assert (PLUGIN_DIR / "hybrid_ai_keywords" / "py.typed").is_file()
    installed = {Path(str(f)).as_posix() for f in files}
    # An editable install lists no package files; a regular (wheel) one must hold the marker.
    if "hybrid_ai_keywords/__init__.py" in installed:
        assert "hybrid_ai_keywords/py.typed" in installed


# --- the stage in a pipeline read from YAML --------------------------------------------------

FLAGS_PIPELINE = """
name: keyword-flags
pipeline:
  serial:
    - stage: keyword_flags
      id: kw
      with:
        lexicon:
          fraud: [stolen, fraud, "unauthorized charge"]
          urgent: [urgent, asap]
          refund: [refund, money back]
"""


def test_the_stage_writes_one_flag_per_matching_entry_with_provenance() -> None:
    text = "URGENT: my card was stolen, and an unauthorized\n charge appeared. Stolen!"
    result = run_yaml(FLAGS_PIPELINE, text)
    assert result.ok, result.error
    flags = by_name(result)
    assert list(flags) == ["fraud", "urgent"]  # lexicon order; no refund words in the text

    fraud = flags["fraud"]
    assert fraud.data["matched"] == ["stolen", "unauthorized charge"]
    assert [text[a:b] for a, b in fraud.data["spans"]] == [
        "stolen", "unauthorized\n charge", "Stolen"]
    assert fraud.confidence == pytest.approx(0.75)  # two distinct keywords: 1 - 0.5 ** 2
    assert flags["urgent"].data == {"name": "urgent", "matched": ["urgent"], "spans": [[0, 6]]}
    assert flags["urgent"].confidence == pytest.approx(0.5)

    root = result.of("input")[0]
    for fact in flags.values():
        assert fact.provenance.stage == "kw"
        assert fact.provenance.source == "keywords"
        assert fact.provenance.inputs == (root.id,)
    trace = {t.stage: t for t in result.trace}
    assert trace["kw"].status == "ok"
    assert trace["kw"].confidence == pytest.approx(0.75)  # the strongest flag


def test_the_stage_matches_whole_words_only_by_default() -> None:
    result = run_yaml(FLAGS_PIPELINE, "a fraudulent refunder, stolenness: no match here")
    assert result.ok, result.error
    assert result.of("flag") == []


def test_the_stage_options_from_yaml() -> None:
    pipeline = """
pipeline:
  stage: keyword_flags
  with:
    lexicon: {brand: [ACME], part: [fraud]}
    case_sensitive: true
    whole_words: false
"""
    result = run_yaml(pipeline, "acme and ACME; fraudulent")
    flags = by_name(result)
    assert flags["brand"].data["spans"] == [[9, 13]]  # case-sensitive: only the capitals
    assert flags["part"].data["matched"] == ["fraud"]  # inside a word: whole_words is off
    assert flags["part"].provenance.stage == "keyword_flags"  # the id defaults to the component


def test_the_stage_passes_the_conformance_check() -> None:
    testing = pytest.importorskip("hybrid_ai.testing")
    check_stage = getattr(testing, "check_stage", None)
    if check_stage is None:
        pytest.skip("hybrid_ai.testing.check_stage is not available yet")
    from hybrid_ai_keywords import KeywordFlagStage

    report = check_stage(KeywordFlagStage, params={"lexicon": {"fraud": ["stolen", "fraud"]}},
                         text="my card was stolen")
    assert [f.kind for f in report.output] == ["flag"]


# --- the rule functions in a route condition -------------------------------------------------

ROUTE_PIPELINE = """
pipeline:
  route:
    branches:
      - when: "contains_any(text, ['stolen', 'fraud'])"
        then:
          stage: keyword_flags
          id: fraud_desk
          with: {lexicon: {fraud: [stolen, fraud]}}
      - when: "word_count(fields.note) > 3"
        then:
          stage: keyword_flags
          id: long_note
          with: {lexicon: {card: [card]}}
    default:
      stage: keyword_flags
      id: general
      with: {lexicon: {card: [card]}}
"""


def _branch(result: Result) -> str:
    assert result.ok, result.error
    ran = [t.stage for t in result.trace if t.component == "keyword_flags"]
    assert len(ran) == 1, ran
    return ran[0]


@pytest.mark.parametrize(
    ("case", "branch"),
    [
        ("my card was stolen", "fraud_desk"),
        ("FRAUD on my card", "fraud_desk"),  # case-insensitive
        ("is this fraudulent? my card", "general"),  # whole words only
        ("where is my card", "general"),  # fields.note is missing: word_count gives null
        ({"text": "my card", "fields": {"note": "the customer called twice today"}}, "long_note"),
        ({"text": "my card", "fields": {"note": "called twice"}}, "general"),
    ],
)
def test_rule_functions_choose_the_route_branch(case: Any, branch: str) -> None:
    assert _branch(run_yaml(ROUTE_PIPELINE, case)) == branch


def test_an_unknown_rule_function_in_a_route_is_a_pipeline_error() -> None:
    pipeline = ROUTE_PIPELINE.replace("contains_any(", "contains_all(")
    spec = read_pipeline("inline.yaml", text=pipeline)
    with pytest.raises(PipelineError, match="contains_all") as caught:
        Engine(spec)
    assert "contains_any" in str(caught.value)  # the hint lists what exists


# --- the rule functions in a rule file, used by the built-in `rules` stage -------------------

RULES = """
rules:
  - id: fraud_words
    salience: 10
    when: "contains_any(text, ['stolen', 'fraud', 'someone used my card'])"
    then:
      decision: {label: fraud_team}
      strength: veto
      reason: "fraud words in a {word_count(text)}-word message"
  - id: flagged_urgent
    when: "flag.name == 'urgent'"
    then:
      decision: {label: priority_queue}
  - id: long_message
    when: "word_count(text) >= 8"
    then: {flag: long_message}
"""


def _rules_pipeline(path: Path) -> str:
    return f"""
pipeline:
  serial:
    - stage: keyword_flags
      with: {{lexicon: {{urgent: [urgent, asap]}}}}
    - stage: rules
      with: {{path: "{path.as_posix()}"}}
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "keyword_rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def test_rule_functions_in_a_rule_file(rules_file: Path) -> None:
    result = run_yaml(_rules_pipeline(rules_file), "Someone  used my card, please block it")
    assert result.ok, result.error
    assert result.decision == "fraud_team"
    decision = result.decision_fact
    assert decision is not None
    assert decision.data["reason"] == "fraud words in a 7-word message"
    assert decision.provenance.source == "rule:fraud_words"
    assert [f.data["name"] for f in result.of("flag")] == []  # 7 words: not a long message


def test_rules_read_the_stages_flags(rules_file: Path) -> None:
    result = run_yaml(_rules_pipeline(rules_file), "please answer asap, it is about my statement")
    assert result.ok, result.error
    assert result.decision == "priority_queue"
    flags = {f.data["name"]: f for f in result.of("flag")}
    assert set(flags) == {"urgent", "long_message"}
    assert flags["urgent"].provenance.source == "keywords"
    assert flags["long_message"].provenance.source == "rule:long_message"
    decision = result.decision_fact
    assert decision is not None
    assert flags["urgent"].id in decision.provenance.inputs  # the flag is the rule's evidence


def test_the_rules_stage_requires_the_flag_fact(rules_file: Path) -> None:
    pipeline = f"""
pipeline:
  stage: rules
  with: {{path: "{rules_file.as_posix()}"}}
"""
    with pytest.raises(PipelineError, match="requires fact 'flag'"):
        Engine(read_pipeline("inline.yaml", text=pipeline))


# --- the functions and the matcher on their own ---------------------------------------------


def test_contains_any_is_whole_word_case_insensitive_and_null_safe() -> None:
    from hybrid_ai_keywords import contains_any

    assert contains_any("My card was STOLEN.", ["stolen", "fraud"]) is True
    assert contains_any("fraudulent", ["fraud"]) is False
    assert contains_any("a credit\n  card", ["credit card"]) is True  # phrases span whitespace
    assert contains_any("I love c++!", ["c++"]) is True  # punctuation at the edges is fine
    assert contains_any("stolen", "stolen") is True  # one word may be given bare
    assert contains_any("stolen", []) is False
    assert contains_any("stolen", ["", "  "]) is False  # blank words never match
    assert contains_any(None, ["stolen"]) is None
    assert contains_any("stolen", None) is None
    with pytest.raises(TypeError, match="needs text"):
        contains_any(42, ["x"])
    with pytest.raises(TypeError, match="words must be text"):
        contains_any("x", ["x", 1])


def test_word_count() -> None:
    from hybrid_ai_keywords import word_count

    assert word_count("Don't stop-me now, 42 times!") == 5
    assert word_count("") == 0
    assert word_count("   ") == 0
    assert word_count(None) is None
    with pytest.raises(TypeError):
        word_count(["a"])


def test_rule_functions_in_compiled_expressions() -> None:
    from hybrid_ai import EvaluationError, compile_expression

    functions = dict(Plugins().rule_functions.items())
    expr = compile_expression("contains_any(text, ['stolen']) and word_count(text) < 5",
                              functions=functions, names={"text"})
    assert expr({"text": "card stolen"}) is True
    assert not expr({"text": None})
    with pytest.raises(EvaluationError, match="contains_any"):
        expr({"text": 3})


def _flags(lexicon: dict[str, list[str]], text: str, **options: Any) -> dict[str, Any]:
    from hybrid_ai_keywords import KeywordFlagStage

    from hybrid_ai import Blackboard, Case

    stage = KeywordFlagStage(lexicon=lexicon, **options)
    output = stage.process(Blackboard(Case(text=text)))  # no warm_up: compiles on first use
    assert not isinstance(output, (list, tuple)) and output is not None
    return {f.data["name"]: f for f in output.facts}


def test_the_longest_keyword_wins_and_matches_do_not_overlap() -> None:
    text = "credit card fraud, then a credit card"
    flag = _flags({"x": ["credit card", "credit card fraud"]}, text)["x"]
    assert flag.data["matched"] == ["credit card fraud", "credit card"]
    assert [text[a:b] for a, b in flag.data["spans"]] == ["credit card fraud", "credit card"]


def test_repeats_count_once_in_the_confidence() -> None:
    flag = _flags({"x": ["stolen", "Stolen", "theft"]}, "stolen STOLEN Stolen")["x"]
    assert flag.data["matched"] == ["stolen"]  # duplicates in another case are the same keyword
    assert len(flag.data["spans"]) == 3
    assert flag.confidence == pytest.approx(0.5)


def test_the_version_follows_the_parameters() -> None:
    from hybrid_ai_keywords import KeywordFlagStage

    one = KeywordFlagStage(lexicon={"x": ["a"]})
    assert one.version == KeywordFlagStage(lexicon={"x": ["a"]}).version
    assert one.version != KeywordFlagStage(lexicon={"x": ["b"]}).version
    assert one.version != KeywordFlagStage(lexicon={"x": ["a"]}, whole_words=False).version


def test_a_large_lexicon_stays_fast() -> None:
    import time

    words = [f"term{i}x{i * 7 % 13}" for i in range(5000)]
    text = " ".join(f"word{i}" for i in range(300)) + " term4999x" + str(4999 * 7 % 13)
    start = time.perf_counter()
    flags = _flags({"big": words}, text)
    assert flags["big"].data["matched"] == [words[-1]]
    assert time.perf_counter() - start < 5  # a plain regex alternation takes seconds here


# --- bad parameters are reported when the graph is built -------------------------------------


@pytest.mark.parametrize(
    ("lexicon", "expected"),
    [
        ("{}", "`lexicon` is empty"),
        ("{fraud: [stolen, 42]}", "flag 'fraud': keyword #2 is int 42"),
        ("{fraud: stolen}", "flag 'fraud': keywords must be a list"),
        ("{fraud: []}", "flag 'fraud' has no keywords"),
        ("{fraud: [stolen, '  ']}", "flag 'fraud': keyword #2 is blank"),
        ("[stolen, fraud]", "`lexicon` must map flag names to lists of keywords"),
    ],
)
def test_bad_parameters_are_a_pipeline_error_naming_the_stage(lexicon: str, expected: str) -> None:
    pipeline = f"""
pipeline:
  serial:
    - stage: keyword_flags
      id: fraud_words
      with:
        lexicon: {lexicon}
"""
    spec = read_pipeline("inline.yaml", text=pipeline)
    with pytest.raises(PipelineError) as caught:
        Engine(spec)
    message = str(caught.value)
    assert "stage 'fraud_words' (keyword_flags): invalid parameters" in message
    assert expected in message
    assert "inline.yaml:" in message  # points at the file (and line) of the stage
    [problem] = caught.value.problems
    assert problem.location.line == 4


def test_a_non_boolean_option_is_a_pipeline_error() -> None:
    pipeline = """
pipeline:
  stage: keyword_flags
  with: {lexicon: {fraud: [stolen]}, whole_words: "no"}
"""
    with pytest.raises(PipelineError, match="`whole_words` must be true or false"):
        Engine(read_pipeline("inline.yaml", text=pipeline))


def test_a_missing_lexicon_is_a_pipeline_error() -> None:
    pipeline = "pipeline: {stage: keyword_flags}\n"
    with pytest.raises(PipelineError, match=r"keyword_flags.*lexicon"):
        Engine(read_pipeline("inline.yaml", text=pipeline))
