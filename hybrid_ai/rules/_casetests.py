"""Rule tests: YAML cases run through the ``rules`` stage, with a diff per failure and coverage.

    report = run_tests("rules/support_triage.tests.yaml")
    report.passed, report.uncovered          # True, []
    print(report.text())

A tests file names its rule file (relative to itself) and lists cases::

    rules: support_triage.yaml
    stage: {strategy: depth}                # optional: more parameters of the rules stage
    cases:
      - name: a stolen card goes to the fraud team
        given:
          text: "my card was stolen"
          fields: {channel: chat}
          facts:                            # KIND: data, or KIND: [data, ...]
            intent: {label: lost_or_stolen_card, confidence: 0.9}
        expect:
          fired: [stolen_or_compromised_card]     # these fired (others may too)
          not_fired: [route_by_knowledge]
          decision: {label: fraud, strength: veto}  # the decide stage's choice; null: none
          facts: {flag: {name: vip}}               # made facts containing these fields

Each case builds a blackboard (the ``input`` fact, then the given facts; a ``confidence`` field
is also the fact's confidence, as a model's would be), runs :class:`RulesStage` on it exactly as
a pipeline does, and then the ``decide`` stage for the decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._errors import ConfigError, HybridAIError, Location, Problem
from .._facts import Blackboard, Case, NewFact
from .._yaml import LineDict, LineList, load_yaml_file, location_at
from ._stage import RulesStage

__all__ = ["CaseResult", "TestReport", "board_for", "find_tests", "run_case", "run_tests"]

FactsSpec = Mapping[str, Any]


class _Given(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)
    facts: dict[str, Any] = Field(default_factory=dict)


class _Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fired: list[str] = Field(default_factory=list)
    not_fired: list[str] = Field(default_factory=list)
    decision: dict[str, Any] | None = None
    no_decision: bool = False
    facts: dict[str, Any] = Field(default_factory=dict)


class _CaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    given: _Given = Field(default_factory=_Given)
    expect: _Expect = Field(default_factory=_Expect)


class _TestsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: str
    stage: dict[str, Any] = Field(default_factory=dict)
    cases: list[_CaseSpec] = Field(min_length=1)


@dataclass
class CaseResult:
    """One case: what fired, what was decided and made, and the failures (empty: passed)."""

    name: str
    location: str
    fired: list[str]
    decision: dict[str, Any] | None
    facts: list[dict[str, Any]]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No expectation failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "location": self.location, "passed": self.passed,
                "fired": self.fired, "decision": self.decision, "facts": self.facts,
                "failures": self.failures}


@dataclass
class TestReport:
    """The cases of one tests file, and the rules of its rule file that no case fired."""

    __test__ = False  # not a pytest class, despite the name

    file: str
    rules_file: str
    rule_ids: list[str]
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every case passed."""
        return all(c.passed for c in self.cases)

    @property
    def uncovered(self) -> list[str]:
        """Rules that fired in no case, in file order."""
        fired = {r for c in self.cases for r in c.fired}
        return [r for r in self.rule_ids if r not in fired]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"file": self.file, "rules": self.rules_file, "passed": self.passed,
                "counts": {"cases": len(self.cases),
                           "failed": sum(not c.passed for c in self.cases)},
                "coverage": {"rules": len(self.rule_ids),
                             "fired": len(self.rule_ids) - len(self.uncovered),
                             "uncovered": self.uncovered},
                "cases": [c.to_dict() for c in self.cases]}

    def text(self) -> str:
        """PASS/FAIL per case with the diffs, then the coverage line."""
        lines = []
        for case in self.cases:
            lines.append(f"{'PASS' if case.passed else 'FAIL'}  {case.name}  ({case.location})")
            lines.extend(f"      {line}" for f in case.failures for line in f.splitlines())
        failed = sum(not c.passed for c in self.cases)
        lines.append(f"{self.file}: {len(self.cases) - failed} passed, {failed} failed")
        covered = len(self.rule_ids) - len(self.uncovered)
        line = f"coverage: {covered}/{len(self.rule_ids)} rules fired"
        if self.uncovered:
            line += "; never fired: " + ", ".join(self.uncovered)
        lines.append(line)
        return "\n".join(lines)


def find_tests(path: str | Path) -> list[Path]:
    """The tests files a path names: itself, ``*.tests.yaml`` under a directory, or the
    ``NAME.tests.yaml`` next to a rule file ``NAME.yaml``."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.name.endswith((".tests.yaml",
                                                                     ".tests.yml")))
    if path.name.endswith((".tests.yaml", ".tests.yml")):
        return [path]
    sibling = path.with_name(path.stem + ".tests.yaml")
    if sibling.exists():
        return [sibling]
    raise ConfigError(f"{path}: no tests found", [Problem(
        "not a tests file", Location(str(path)),
        f"write the cases in {sibling} (a file ending in .tests.yaml) or name it directly")])


def run_tests(path: str | Path) -> TestReport:
    """Run every case of one tests file (raises ConfigError when the file is invalid)."""
    path = Path(path)
    raw = load_yaml_file(path)
    spec = _validate(raw, str(path))
    rules_path = (path.parent / spec.rules).resolve()
    try:
        stage = RulesStage(path=str(rules_path), **spec.stage)
    except TypeError as exc:
        raise ConfigError(f"{path}: invalid `stage` parameters: {exc}", [Problem(
            str(exc), raw.location_of("stage") if isinstance(raw, LineDict) else Location())]
        ) from None
    ruleset = stage.ruleset
    ids = _file_order(rules_path, [r.id for r in ruleset.rules + ruleset.chaining])
    ids += [f"{t.id}:{row.number}" for t in ruleset.tables for row in t.rows]
    report = TestReport(str(path), spec.rules, ids)
    places = _case_locations(raw, str(path))
    for case, where in zip(spec.cases, places, strict=True):
        report.cases.append(run_case(stage, case.model_dump(), where))
    return report


def _file_order(rules_path: Path, ids: list[str]) -> list[str]:
    """The rule ids in the order the file lists them (the rule set sorts by salience)."""
    raw = load_yaml_file(rules_path) if rules_path.suffix.lower() != ".csv" else {}
    items = raw.get("rules") if isinstance(raw, Mapping) else None
    written = [str(r.get("id")) for r in items or [] if isinstance(r, Mapping)]
    return [i for i in written if i in ids] + [i for i in ids if i not in written]


def _validate(raw: Any, file: str) -> _TestsFile:
    try:
        return _TestsFile.model_validate(raw)
    except ValidationError as exc:
        default = getattr(raw, "location", Location(file, 1))
        problems = [Problem(f"{'.'.join(map(str, e['loc']))}: {e['msg']}",
                            location_at(raw, tuple(e["loc"]), default)) for e in exc.errors()]
        raise ConfigError(f"{file} is not a valid rule tests file", problems) from None


def _case_locations(raw: Any, file: str) -> list[str]:
    cases = raw.get("cases") if isinstance(raw, LineDict) else None
    if isinstance(cases, LineList):
        return [str(loc) for loc in cases.item_locations]
    return [file] * len(cases or [])


def board_for(given: Mapping[str, Any], case_id: str = "case") -> Blackboard:
    """A blackboard holding a case's ``text``/``fields`` and the ``facts`` given (by kind)."""
    board = Blackboard(Case(id=case_id, text=str(given.get("text") or ""),
                            fields=dict(given.get("fields") or {})))
    for kind, items in (given.get("facts") or {}).items():
        for data in items if isinstance(items, list) else [items]:
            if not isinstance(data, Mapping):
                raise ConfigError(f"the given {kind!r} fact must be a mapping of fields, "
                                  f"not {data!r}")
            confidence = data.get("confidence")
            number = isinstance(confidence, (int, float)) and not isinstance(confidence, bool)
            board.add(NewFact(str(kind), dict(data), confidence=confidence if number else None,
                              source="given"), stage="given")
    return board


def run_case(stage: RulesStage, case: Mapping[str, Any], where: str = "") -> CaseResult:
    """Run one case (``{"name", "given", "expect"}``) through the stage and check it."""
    name = str(case.get("name", "case"))
    board = board_for(case.get("given") or {}, name)
    try:
        made, fired = stage.evaluate(board)
    except HybridAIError as exc:
        return CaseResult(name, where, [], None, [], [f"the rules failed: {exc}"])
    fired = list(dict.fromkeys([r for d in made for r in _fired_by(d)] + fired))
    for draft in made:
        board.add(draft, stage="rules")
    decision = _decide(board)
    facts = [{"kind": d.kind, **dict(d.data)} for d in made]
    result = CaseResult(name, where, fired, decision, facts)
    result.failures = _compare(case.get("expect") or {}, result, made)
    return result


def _fired_by(draft: NewFact) -> list[str]:
    """The rule (or decision table and its rows ``table:N``) that made a fact."""
    detail = draft.detail
    if "table" in detail:
        table = str(detail["table"])
        return [table, *(f"{table}:{n}" for n in detail.get("rows", ()))]
    return [str(detail["rule"])] if "rule" in detail else []


def _decide(board: Blackboard) -> dict[str, Any] | None:
    from ..fusion import DecideStage

    final = DecideStage().process(board)
    if not final or final[0].data.get("abstain"):
        return None
    keep = ("label", "strength", "rule", "reason", "priority", "salience")
    data = dict(final[0].data)
    return {k: data[k] for k in (*keep, *sorted(data)) if k in data
            and k not in ("final", "overruled", "alternatives")}


def _compare(expect: Mapping[str, Any], result: CaseResult,
             made: Sequence[NewFact]) -> list[str]:
    out = [f"expected rule {r!r} to fire; fired: {_listing(result.fired)}"
           for r in expect.get("fired") or [] if r not in result.fired]
    out += [f"rule {r!r} fired but should not have; fired: {_listing(result.fired)}"
            for r in expect.get("not_fired") or [] if r in result.fired]
    wanted = expect.get("decision")
    if wanted is not None:
        out.extend(_decision_diff(wanted, result.decision))
    elif expect.get("no_decision") and result.decision is not None:
        out.append(f"expected no decision, got {_show(result.decision)}")
    for kind, items in (expect.get("facts") or {}).items():
        for want in items if isinstance(items, list) else [items]:
            out.extend(_fact_diff(str(kind), want, made))
    return out


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"


def _decision_diff(want: Mapping[str, Any], got: Mapping[str, Any] | None) -> list[str]:
    if got is None:
        return [f"expected decision {_show(want)}, but no rule decided"]
    diff = _field_diff(want, got)
    return [f"decision differs (- expected, + got):\n{diff}"] if diff else []


def _field_diff(want: Mapping[str, Any], got: Mapping[str, Any]) -> str:
    lines = []
    for key, value in want.items():
        if got.get(key) != value:
            lines.append(f"- {key}: {value!r}")
            lines.append(f"+ {key}: {got.get(key)!r}")
    return "\n".join(lines)


def _fact_diff(kind: str, want: Any, made: Sequence[NewFact]) -> list[str]:
    if not isinstance(want, Mapping):
        return [f"expected {kind} fact must be a mapping of fields, not {want!r}"]
    same = [d for d in made if d.kind == kind]
    if any(all(d.data.get(k) == v for k, v in want.items()) for d in same):
        return []
    if not same:
        return [f"expected a {kind} fact with {_show(want)}; the rules made no {kind} fact"]
    closest = max(same, key=lambda d: sum(d.data.get(k) == v for k, v in want.items()))
    return [f"no {kind} fact has {_show(want)}; the closest (- expected, + got):\n"
            + _field_diff(want, closest.data)]


def _show(data: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in data.items()) + "}"
