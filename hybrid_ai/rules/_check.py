"""Static analysis of rule files: load errors, unsatisfiable, unreachable, contradictory,
subsumed and self-triggering rules, and paths compared with values of different types.

    report = check_paths(["rules/support_triage.yaml"], pipeline="examples/x/pipeline.yaml")
    report.errors                                    # findings of severity "error"
    print(report.text())

Conditions are read from the compiled syntax tree (never from their text) and put in
disjunctive normal form over *atoms*. A comparison of one path (``intent.label``,
``fields.amount``) with constants becomes a set of the values that pass it -- number intervals,
text sets (finite or all-but-finite), booleans, ``null`` -- so ``x > 5 and x < 3`` is an empty
set, and ``x in ['a', 'b'] and x == 'c'`` too. Anything else (a regular expression, a call, a
join between two facts) is an opaque atom: it only contradicts its own negation. Pattern rules
map to the same form: the field tests of a rule's ``n``-th pattern of kind ``K`` read the path
``K#n.field``, and a simple rule's ``K.field`` reads ``K#0.field``, so rules of both kinds
compare with each other.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigError, ExpressionError, HybridAIError
from .._expr import (
    BoolOp,
    Compare,
    Conditional,
    GetAttr,
    GetItem,
    ListExpr,
    Name,
    Node,
    Unary,
    parse_expression,
    unparse,
)
from .._expr import Literal as Lit
from .._yaml import LineDict, LineList, load_yaml_text
from ._ruleset import CONTEXT_NAMES, load_rules
from ._stage import RulesStage
from ._tables import DecisionTable

__all__ = ["Finding", "LintReport", "RuleRef", "check_paths", "rule_files"]

Severity = Literal["error", "warning", "info"]
PathKey = tuple[Any, ...]
MAX_TERMS = 256  # a condition with more alternatives than this is not analysed (it is rare)

# ---- value sets --------------------------------------------------------------------------------

Interval = tuple[float, bool, float, bool]  # low, low included, high, high included
_ALL_NUMBERS: tuple[Interval, ...] = ((-math.inf, False, math.inf, False),)


def _interval_empty(iv: Interval) -> bool:
    lo, lo_in, hi, hi_in = iv
    return lo > hi or (lo == hi and not (lo_in and hi_in))


def _intersect_intervals(a: Sequence[Interval], b: Sequence[Interval]) -> tuple[Interval, ...]:
    out = []
    for lo1, li1, hi1, hi1_in in a:
        for lo2, li2, hi2, hi2_in in b:
            lo, li = (lo1, li1) if lo1 > lo2 else (lo2, li2) if lo2 > lo1 else (lo1, li1 and li2)
            hi, hi_in = ((hi1, hi1_in) if hi1 < hi2 else (hi2, hi2_in) if hi2 < hi1
                         else (hi1, hi1_in and hi2_in))
            if not _interval_empty((lo, li, hi, hi_in)):
                out.append((lo, li, hi, hi_in))
    return tuple(sorted(out))


def _complement_intervals(a: Sequence[Interval]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    lo, lo_in = -math.inf, False
    for start, start_in, end, end_in in sorted(a):
        gap = (lo, lo_in, start, not start_in)
        if not _interval_empty(gap):
            out.append(gap)
        lo, lo_in = end, not end_in
    if not _interval_empty((lo, lo_in, math.inf, False)):
        out.append((lo, lo_in, math.inf, False))
    return tuple(out)


@dataclass(frozen=True)
class Domain:
    """The values a path may hold: numbers, texts (``texts`` or all but ``texts``), booleans,
    ``null`` and anything else (lists, mappings)."""

    numbers: tuple[Interval, ...] = _ALL_NUMBERS
    texts: frozenset[str] = frozenset()
    all_texts_but: bool = True
    bools: frozenset[bool] = frozenset({True, False})
    null: bool = True
    other: bool = True

    def __and__(self, o: Domain) -> Domain:
        if self.all_texts_but and o.all_texts_but:
            texts, co = self.texts | o.texts, True
        elif self.all_texts_but:
            texts, co = o.texts - self.texts, False
        elif o.all_texts_but:
            texts, co = self.texts - o.texts, False
        else:
            texts, co = self.texts & o.texts, False
        return Domain(_intersect_intervals(self.numbers, o.numbers), texts, co,
                      self.bools & o.bools, self.null and o.null, self.other and o.other)

    def __invert__(self) -> Domain:
        return Domain(_complement_intervals(self.numbers), self.texts, not self.all_texts_but,
                      frozenset({True, False}) - self.bools, not self.null, not self.other)

    def __or__(self, o: Domain) -> Domain:
        return ~(~self & ~o)

    @property
    def empty(self) -> bool:
        """No value at all is in the set."""
        return not (self.numbers or self.all_texts_but or self.texts or self.bools
                    or self.null or self.other)

    def admits(self, value: Any) -> bool:
        """Whether ``value`` is in the set."""
        return not (self & _equal_to(value)).empty


_NOTHING = Domain((), frozenset(), False, frozenset(), False, False)


def _equal_to(value: Any) -> Domain:
    if value is None:
        return Domain((), frozenset(), False, frozenset(), True, False)
    if isinstance(value, bool):
        return Domain((), frozenset(), False, frozenset({value}), False, False)
    if isinstance(value, (int, float)):
        return Domain(((float(value), True, float(value), True),), frozenset(), False,
                      frozenset(), False, False)
    if isinstance(value, str):
        return Domain((), frozenset({value}), False, frozenset(), False, False)
    return Domain((), frozenset(), False, frozenset(), False, True)


def _ordered(op: str, bound: float) -> Domain:
    iv = {"<": (-math.inf, False, bound, False), "<=": (-math.inf, False, bound, True),
          ">": (bound, False, math.inf, False), ">=": (bound, True, math.inf, False)}[op]
    return Domain((iv,), frozenset(), False, frozenset(), False, False)


# An empty list or mapping is falsy too, so "other" values are in both sets.
_FALSY = Domain(((0.0, True, 0.0, True),), frozenset({""}), False, frozenset({False}), True, True)
_TRUTHY = Domain(_complement_intervals(((0.0, True, 0.0, True),)), frozenset({""}), True,
                 frozenset({True}), False, True)

# ---- conditions in disjunctive normal form -----------------------------------------------------


@dataclass(frozen=True)
class Term:
    """A conjunction: a value set per path, and opaque atoms with their polarity."""

    paths: Mapping[PathKey, Domain] = field(default_factory=dict)
    opaque: frozenset[tuple[str, bool]] = frozenset()
    notes: Mapping[PathKey, tuple[str, ...]] = field(default_factory=dict, compare=False)

    def __and__(self, o: Term) -> Term:
        paths, notes = dict(self.paths), dict(self.notes)
        for key, dom in o.paths.items():
            paths[key] = paths[key] & dom if key in paths else dom
        for key, said in o.notes.items():
            notes[key] = tuple(dict.fromkeys(notes.get(key, ()) + said))
        return Term(paths, self.opaque | o.opaque, notes)

    def conflict(self) -> str | None:
        """Why no value satisfies the conjunction, or None when it may hold."""
        for key, dom in self.paths.items():
            if dom.empty:
                tests = " and ".join(f"`{t}`" for t in self.notes.get(key, ()))
                return f"no value of {_show_path(key)} passes " + (tests or "every test on it")
        for atom, positive in self.opaque:
            if positive and (atom, False) in self.opaque:
                return f"`{atom}` is required both to hold and not to hold"
        return None


Dnf = list[Term]
_TRUE: Dnf = [Term()]


class _TooComplex(Exception):
    pass


def _show_path(key: PathKey) -> str:
    head = str(key[0]).split("#")[0] if "#" in str(key[0]) else str(key[0])
    return ".".join([head, *(str(k) for k in key[1:])])


def _and(a: Dnf, b: Dnf) -> Dnf:
    out = [x & y for x in a for y in b]
    out = [t for t in out if t.conflict() is None] or ([out[0]] if out else [])
    if len(out) > MAX_TERMS:
        raise _TooComplex
    return out


def _or(a: Dnf, b: Dnf) -> Dnf:
    if len(a) + len(b) > MAX_TERMS:
        raise _TooComplex
    return a + b


class Normalizer:
    """Turns expression trees into DNF; ``names`` maps a variable to the path it stands for."""

    def __init__(self, names: Callable[[str], PathKey | None],
                 display: Callable[[str], str] | None = None) -> None:
        self.names, self.display = names, display

    def path(self, node: Node) -> PathKey | None:
        if isinstance(node, Name):
            return self.names(node.name)
        if isinstance(node, GetAttr):
            base = self.path(node.obj)
            return None if base is None else (*base, node.name)
        if isinstance(node, GetItem) and isinstance(node.index, Lit) \
                and isinstance(node.index.value, (str, int)):
            base = self.path(node.obj)
            return None if base is None else (*base, node.index.value)
        return None

    def dnf(self, node: Node, positive: bool = True) -> Dnf:
        if isinstance(node, BoolOp):
            conj = (node.op == "and") == positive
            parts = [self.dnf(v, positive) for v in node.values]
            result = parts[0]
            for part in parts[1:]:
                result = _and(result, part) if conj else _or(result, part)
            return result
        if isinstance(node, Unary) and node.op == "not":
            return self.dnf(node.operand, not positive)
        if isinstance(node, Lit):
            return _TRUE if bool(node.value) == positive else []
        if isinstance(node, Compare):
            return self._compare(node, positive)
        if isinstance(node, Conditional):
            yes = _and(self.dnf(node.test), self.dnf(node.body, positive))
            return _or(yes, _and(self.dnf(node.test, False), self.dnf(node.orelse, positive)))
        key = self.path(node)
        if key is not None:
            return [Term({key: _TRUTHY if positive else _FALSY})]
        return [Term(opaque=frozenset({(self.text(node), positive)}))]

    def _compare(self, node: Compare, positive: bool) -> Dnf:
        lefts = (node.left, *node.comparators[:-1])
        atoms = [self.atom(left, op, right)
                 for left, op, right in zip(lefts, node.ops, node.comparators, strict=True)]
        if positive:
            return [_conj(atoms)]
        return [_negate(atom) for atom in atoms]

    def atom(self, left: Node, op: str, right: Node) -> Term:
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
        key, other, op2 = self.path(left), right, op
        if (key is None or not _constant(other)) and op in flipped:
            key, other, op2 = self.path(right), left, flipped[op]
        dom = _atom_domain(op2, other) if key is not None else None
        node = Compare(left, (op,), (right,))
        if key is None or dom is None:
            return Term(opaque=frozenset({(self.text(node), True)}))
        return Term({key: dom}, notes={key: (self.show(node),)})

    def text(self, node: Node) -> str:
        """Canonical text of a sub-expression, with variables replaced by their paths."""
        return unparse(_rename(node, lambda n: ".".join(map(str, self.names(n) or (n,)))))

    def show(self, node: Node) -> str:
        """The sub-expression as its author wrote it (``?x`` for a pattern variable)."""
        return unparse(_rename(node, self.display)) if self.display else unparse(node)


def _rename(node: Node, names: Callable[[str], str]) -> Node:
    if isinstance(node, Name):
        return Name(names(node.name))
    fields: dict[str, Any] = {}
    for name, value in vars(node).items():
        if isinstance(value, Node):
            fields[name] = _rename(value, names)
        elif isinstance(value, tuple) and value and isinstance(value[0], Node):
            fields[name] = tuple(_rename(v, names) for v in value)
    return type(node)(**{**vars(node), **fields}) if fields else node


def _constant(node: Node) -> bool:
    return isinstance(node, Lit) or (isinstance(node, ListExpr)
                                     and all(isinstance(i, Lit) for i in node.items))


def _atom_domain(op: str, node: Node) -> Domain | None:
    if isinstance(node, Lit):
        value = node.value
        if op in ("==", "!="):
            dom = _equal_to(value)
            return dom if op == "==" else ~dom
        if op in ("<", "<=", ">", ">=") and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            return _ordered(op, float(value))
        return None
    if isinstance(node, ListExpr) and op in ("in", "not in") and _constant(node):
        dom = _NOTHING
        for item in node.items:
            assert isinstance(item, Lit)
            dom = dom | _equal_to(item.value)
        return dom if op == "in" else ~dom
    return None


def _conj(terms: Iterable[Term]) -> Term:
    out = Term()
    for term in terms:
        out = out & term
    return out


def _negate(term: Term) -> Term:
    # Atoms hold one path or one opaque test, so negating one is negating its only part.
    if term.paths:
        ((key, dom),) = term.paths.items()
        said = tuple(f"not ({t})" for t in term.notes.get(key, ()))
        return Term({key: ~dom}, notes={key: said})
    ((text, positive),) = term.opaque
    return Term(opaque=frozenset({(text, not positive)}))


def satisfiable(dnf: Dnf) -> bool:
    """Whether some term of the DNF may hold."""
    return any(t.conflict() is None for t in dnf)


def _overlap(a: Dnf, b: Dnf) -> bool:
    return any((x & y).conflict() is None for x in a for y in b)


def _implies(a: Dnf, b: Dnf, negate_b: Callable[[], Dnf]) -> bool:
    try:
        return not satisfiable(_and(a, negate_b()))
    except _TooComplex:
        return False


# ---- findings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRef:
    """A rule named in a finding: its id and where it is written."""

    id: str
    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Finding:
    """One problem: ``severity`` error | warning | info, a ``code``, the rules involved."""

    severity: Severity
    code: str
    message: str
    rules: tuple[RuleRef, ...] = ()
    location: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "location": self.location or (str(self.rules[0]) if self.rules else None),
                "rules": [{"id": r.id, "file": r.file, "line": r.line} for r in self.rules],
                "hint": self.hint}

    def text(self) -> str:
        """``file:line: severity[code]: message (also: rule at file:line) (hint)``."""
        where = self.location or (str(self.rules[0]) if self.rules else "")
        text = f"{where}: {self.severity}[{self.code}]: {self.message}"
        others = [f"{r.id} at {r}" for r in self.rules[1:]]
        if others:
            text += f" (see {', '.join(others)})"
        return text + (f"\n    hint: {self.hint}" if self.hint else "")


@dataclass
class LintReport:
    """Every finding of a check run, in file order."""

    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    rules: int = 0

    @property
    def errors(self) -> list[Finding]:
        """The findings of severity error (they make the check fail)."""
        return [f for f in self.findings if f.severity == "error"]

    def codes(self) -> list[str]:
        """The finding codes, in order (handy in tests)."""
        return [f.code for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        counts = {s: sum(f.severity == s for f in self.findings)
                  for s in ("error", "warning", "info")}
        return {"files": self.files, "rules": self.rules, "counts": counts,
                "findings": [f.to_dict() for f in self.findings]}

    def text(self, notes: bool = True) -> str:
        """One block per finding (notes only with ``notes``) and a summary line."""
        lines = [f.text() for f in self.findings if notes or f.severity != "info"]
        n = {s: sum(f.severity == s for f in self.findings) for s in ("error", "warning", "info")}
        hidden = "" if notes or not n["info"] else " (shown with --notes)"
        lines.append(f"{len(self.files)} file(s), {self.rules} rule(s): {n['error']} error(s), "
                     f"{n['warning']} warning(s), {n['info']} note(s){hidden}")
        return "\n".join(lines)


# ---- what a rule reads and does --------------------------------------------------------------


@dataclass(frozen=True)
class _Action:
    kind: str                 # decision, flag, a fact kind; modify / retract for pattern rules
    label: Any = None         # a decision's constant label or a flag's constant name
    constant: bool = False    # whether ``label`` is known statically
    strength: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    target: str | None = None  # the fact variable a modify / retract acts on


@dataclass
class _Rule:
    ref: RuleRef
    salience: int
    dnf: Dnf | None           # None: too complex to analyse
    actions: list[_Action]
    needs: dict[str, str]     # kind -> how it is needed: "pos", "exists" (pattern rules)
    reads: frozenset[str]     # kinds a simple rule's condition reads
    pattern: bool = False
    no_loop: bool = False
    simple_paths: frozenset[PathKey] = frozenset()
    fact_vars: dict[str, PathKey] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # positive patterns per kind
    raw_then: Any = None
    negate: Callable[[], Dnf] | None = None
    group: str = ""           # the rule set it belongs to (rules of one set are compared)
    table: str | None = None  # the decision table a row belongs to

    def same_action(self, other: _Rule) -> bool:
        if self.pattern or other.pattern:
            return bool(self.raw_then == other.raw_then)
        return self.actions == other.actions


_VAR_IN_TEXT = re.compile(r"('(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")|\?([A-Za-z_][A-Za-z0-9_]*)")
_OPERATOR = re.compile(r"^\s*(==|!=|<=|>=|<|>|in\s|not\s+in\s|matches\s|not\s+matches\s)")
_VAR = re.compile(r"\?([A-Za-z_][A-Za-z0-9_]*)")


def _simple_names(name: str) -> PathKey | None:
    return (name,) if name in CONTEXT_NAMES else (f"{name}#0",)


def _location_line(items: Any, index: int) -> int | None:
    locs = getattr(items, "item_locations", None)
    return locs[index].line if locs and index < len(locs) else None


def _simple_rule(raw: Mapping[str, Any], ref: RuleRef) -> _Rule:
    when = raw.get("when")
    text = "true" if when is True else "false" if when is False else str(when)
    where = raw.value_location_of("when") if isinstance(raw, LineDict) else None
    tree = parse_expression(text, where)
    norm = Normalizer(_simple_names)
    try:
        dnf: Dnf | None = norm.dnf(tree)
    except _TooComplex:
        dnf = None
    then = raw.get("then") or {}
    action = _simple_action(then)
    names = {n.name for n in _walk(tree) if isinstance(n, Name)}
    paths = frozenset(k for n in _walk(tree) if (k := norm.path(n)) is not None)
    return _Rule(ref, int(raw.get("salience", 0) or 0), dnf, [action], {},
                 frozenset(names - CONTEXT_NAMES), simple_paths=paths,
                 negate=lambda: norm.dnf(tree, False))


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children():
        yield from _walk(child)


def _static(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str) and (value.startswith("=") or _VAR.fullmatch(value.strip())):
        return value, False
    return value, True


def _simple_action(then: Mapping[str, Any]) -> _Action:
    strength = str(then.get("strength", "advise"))
    if isinstance(then.get("decision"), Mapping):
        label, constant = _static(then["decision"].get("label"))
        return _Action("decision", label, constant, strength, dict(then["decision"]))
    if then.get("flag") is not None:
        name, constant = _static(then["flag"])
        return _Action("flag", name, constant)
    fact: Mapping[str, Any] = then["fact"] if isinstance(then.get("fact"), Mapping) else {}
    return _Action(str(fact.get("kind", "")), fields=dict(fact.get("data") or {}))


class _PatternReader:
    """Reads one pattern rule's ``when`` list into DNF, with variables mapped to paths."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.vars: dict[str, PathKey] = {}
        self.fact_vars: dict[str, PathKey] = {}
        self.counts: dict[str, int] = {}
        self.needs: dict[str, str] = {}
        self.norm = Normalizer(self.lookup, self.display)

    def lookup(self, name: str) -> PathKey | None:
        if name in self.vars:
            return self.vars[name]
        return self.fact_vars.get(name)

    def display(self, name: str) -> str:
        if name == "this" and "this" in self.vars:
            return _show_path(self.vars["this"])
        return f"?{name}" if name in self.vars or name in self.fact_vars else name

    def read(self) -> Dnf:
        result = _TRUE
        for element in self.raw.get("when") or []:
            result = _and(result, self.element(element))
        return result

    def element(self, item: Any) -> Dnf:
        head, body = _head(item)
        if head == "test":
            return self.norm.dnf(_parse_vars(str(body)))
        if head in ("not", "exists", "forall"):
            if head == "exists" and isinstance(body, Mapping):
                for kind in body:
                    self.needs.setdefault(str(kind), "exists")
            return [Term(opaque=frozenset({(self.opaque_key(item), True)}))]
        return self.pattern(str(head), body if isinstance(body, Mapping) else {}, item)

    def opaque_key(self, item: Any) -> str:
        def subst(value: Any) -> Any:
            if isinstance(value, Mapping):
                return {str(k): subst(v) for k, v in value.items()}
            if isinstance(value, list):
                return [subst(v) for v in value]
            if isinstance(value, str):
                return _VAR.sub(lambda m: ".".join(map(str, self.lookup(m.group(1))
                                                       or (m.group(0),))), value)
            return value

        return json.dumps(subst(item), sort_keys=True, default=str)

    def pattern(self, kind: str, fields: Mapping[str, Any], item: Any) -> Dnf:
        index = self.counts.get(kind, 0)
        self.counts[kind] = index + 1
        self.needs[kind] = "pos"
        base = (f"{kind}#{index}",)
        result = _TRUE
        for name, spec in fields.items():
            result = _and(result, self.field((*base, str(name)), spec))
        var = _VAR.fullmatch(str(item.get("as", "")).strip()) if isinstance(item, Mapping) \
            else None
        if var:
            self.fact_vars[var.group(1)] = base
        return result

    def field(self, key: PathKey, spec: Any) -> Dnf:
        # Every field a pattern names is in its terms (with no constraint at least), so the
        # loop lint knows which fields a fact must have to match.
        present = [Term({key: Domain()})]
        var = _VAR.fullmatch(spec.strip()) if isinstance(spec, str) else None
        if var and var.group(1) in self.vars:
            other = self.vars[var.group(1)]
            pair = sorted(_show_key(k) for k in (key, other))
            return [Term({key: Domain()}, frozenset({(f"{pair[0]} == {pair[1]}", True)}))]
        if var:
            self.vars[var.group(1)] = key
            return present
        if isinstance(spec, str) and _OPERATOR.match(spec):
            self.vars["this"] = key
            try:
                return _and(present, self.norm.dnf(_parse_vars("this " + spec)))
            finally:
                del self.vars["this"]
        return [Term({key: _equal_to(spec)})]


def _show_key(key: PathKey) -> str:
    return ".".join(map(str, key))


def _parse_vars(text: str) -> Node:
    return parse_expression(_VAR_IN_TEXT.sub(lambda m: m.group(1) or " " + m.group(2), text))


def _head(item: Any) -> tuple[str, Any]:
    keys = [k for k in item if k != "as"] if isinstance(item, Mapping) else []
    return (str(keys[0]), item[keys[0]]) if keys else ("", None)


def _pattern_actions(then: Any) -> list[_Action]:
    out = []
    for action in then if isinstance(then, list) else []:
        head, body = _head(action)
        if head in ("insert", "logical") and isinstance(body, Mapping):
            for kind, fields in body.items():
                fields = fields if isinstance(fields, Mapping) else {}
                label, constant = _static(fields.get("label" if kind == "decision" else "name"))
                strength = str(fields.get("strength", "advise" if kind == "decision" else ""))
                out.append(_Action(str(kind), label, constant, strength, dict(fields)))
        elif head == "modify" and isinstance(body, Mapping):
            for target, fields in body.items():
                var = _VAR.fullmatch(str(target).strip())
                out.append(_Action("modify", fields=dict(fields or {}),
                                   target=var.group(1) if var else None))
    return out


def _pattern_rule(raw: Mapping[str, Any], ref: RuleRef) -> _Rule:
    reader = _PatternReader(raw)
    try:
        dnf: Dnf | None = reader.read()
    except _TooComplex:
        dnf = None
    return _Rule(ref, int(raw.get("salience", 0) or 0), dnf, _pattern_actions(raw.get("then")),
                 reader.needs, frozenset(), pattern=True, no_loop=bool(raw.get("no_loop")),
                 fact_vars=reader.fact_vars, counts=reader.counts, raw_then=raw.get("then"))


# ---- reading files ---------------------------------------------------------------------------

RULE_SUFFIXES = (".yaml", ".yml", ".csv")


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """The rule files named, directories searched for ``*.yaml`` (tests files left out)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out.extend(p for p in sorted(path.rglob("*"))
                       if p.suffix in RULE_SUFFIXES and not _is_tests_file(p))
        else:
            out.append(path)
    return list(dict.fromkeys(out))  # a file named twice is still checked once


def _is_tests_file(path: Path) -> bool:
    return path.name.endswith((".tests.yaml", ".tests.yml"))


def _read_file(path: Path, functions: Mapping[str, Callable[..., Any]] | None,
               report: LintReport) -> list[_Rule]:
    report.files.append(str(path))
    try:
        ruleset = load_rules(path, functions or {})
        raw = None if path.suffix.lower() == ".csv" else \
            load_yaml_text(path.read_text(encoding="utf-8"), str(path))
    except ConfigError as exc:
        problems = exc.problems or ()
        report.findings.extend(
            Finding("error", "load-error", p.message, location=str(p.location), hint=p.hint)
            for p in problems)
        if not problems:
            report.findings.append(Finding("error", "load-error", str(exc), location=str(path)))
        return []
    except HybridAIError as exc:
        report.findings.append(Finding("error", "load-error", str(exc), location=str(path)))
        return []
    except OSError as exc:
        report.findings.append(Finding("error", "load-error", f"cannot read: {exc.strerror}",
                                       location=str(path)))
        return []
    rules = _rules_of(raw, path)
    for table in ruleset.tables:
        report.findings.extend(_table_finding(table.id, f) for f in table.check())
        rules.extend(_table_rows(table, str(path)))
    return rules


def _table_finding(table: str, finding: Any) -> Finding:
    refs = tuple(RuleRef(table, str(loc.file), loc.line) for loc in finding.locations)
    return Finding("error" if finding.severity == "error" else "warning",
                   f"table-{finding.code}", finding.message, refs,
                   str(finding.locations[0]) if finding.locations else None,
                   finding.hint or None)


def _table_rows(table: DecisionTable, group: str) -> list[_Rule]:
    """Each row of a decision table, as a rule with the row's whole condition."""
    names = [o.name for o in table.outputs]
    out = []
    for row in table.rows:
        norm = Normalizer(_simple_names)
        tree = row.condition.ast
        try:
            dnf: Dnf | None = norm.dnf(tree)
        except _TooComplex:
            dnf = None
        values = {name: text if text.startswith("=") else row.outputs[name]({})
                  for name, text in zip(names, row.output_text, strict=False)}
        label = values.get("label")
        constant = not (isinstance(label, str) and label.startswith("="))
        action = _Action(table.kind, label, constant and "label" in values, table.strength,
                         values)
        out.append(_Rule(RuleRef(f"{table.id}:{row.number}", table.path, row.line),
                         table.salience, dnf, [action], {},
                         frozenset(row.condition.names - CONTEXT_NAMES),
                         simple_paths=frozenset(k for n in _walk(tree)
                                                if (k := norm.path(n)) is not None),
                         negate=_negator(norm, tree), group=group, table=table.id))
    return out


def _negator(norm: Normalizer, tree: Node) -> Callable[[], Dnf]:
    return lambda: norm.dnf(tree, False)


def _rules_of(raw: Any, path: Path) -> list[_Rule]:
    items = raw.get("rules") if isinstance(raw, Mapping) else None
    out: list[_Rule] = []
    group = str(path)
    for i, item in enumerate(items if isinstance(items, LineList) else []):
        if not isinstance(item, Mapping) or "when" not in item:
            continue
        ref = RuleRef(str(item.get("id")), str(path), _location_line(items, i))
        try:
            reader = _pattern_rule if isinstance(item.get("when"), list) else _simple_rule
            rule = reader(item, ref)
            rule.group = group
            out.append(rule)
        except ExpressionError:
            continue  # load_rules accepted it; a variant we do not analyse is simply skipped
    return out


def read_pipeline_rules(pipeline: str | Path,
                        trust_code: bool = False) -> tuple[frozenset[str], list[Path]]:
    """The fact kinds a pipeline's stages declare they produce (plus ``input``), and the rule
    files its ``rules`` stages read (``trust_code``: as for ``read_pipeline``)."""
    from .._config import read_pipeline
    from .._engine import Engine

    engine = Engine(read_pipeline(pipeline, trust_code=trust_code))
    try:
        stages = engine.graph.stages()
        kinds = frozenset({"input"}).union(*(n.stage.produces for n in stages))
        files = [Path(n.stage.path) for n in stages
                 if isinstance(n.stage, RulesStage) and isinstance(n.stage.path, (str, Path))]
        return kinds, files
    finally:
        engine.close()


def check_paths(paths: Iterable[str | Path], *, pipeline: str | Path | None = None,
                kinds: Iterable[str] = (),
                functions: Mapping[str, Callable[..., Any]] | None = None,
                trust_code: bool = False) -> LintReport:
    """Load, analyse and lint rule files; ``pipeline`` or ``kinds`` name the fact kinds made
    outside the rules (without either, unproduced kinds are only notes). With no ``paths``, the
    files the pipeline's ``rules`` stages read are checked."""
    report = LintReport()
    if functions is None:
        from .._plugins import active_plugins

        functions = dict(active_plugins().rule_functions.items())
    files, outside = rule_files(paths), set(kinds)
    known = pipeline is not None or bool(outside)
    if pipeline is not None:
        try:
            made_there, used = read_pipeline_rules(pipeline, trust_code)
            outside |= made_there
            files = files or used
        except ConfigError as exc:
            known = bool(outside)  # what the pipeline makes is unknown after all
            report.findings.extend(
                Finding("error", "pipeline-error", p.message, location=str(p.location),
                        hint=p.hint) for p in exc.problems)
            if not exc.problems:
                report.findings.append(Finding("error", "pipeline-error", str(exc),
                                               location=str(pipeline)))
        except HybridAIError as exc:
            known = bool(outside)
            report.findings.append(Finding("error", "pipeline-error", str(exc),
                                           location=str(pipeline)))
    rules = [r for path in files for r in _read_file(path, functions, report)]
    report.rules = len(rules)
    made = {a.kind for r in rules for a in r.actions if a.kind not in ("modify",)}
    for lint in (_unsatisfiable, _self_triggering):
        report.findings.extend(f for r in rules for f in lint(r))
    report.findings.extend(_unproduced(rules, made | outside | {"input"}, known))
    report.findings.extend(_pairs(rules))
    report.findings.extend(_type_mismatches(rules))
    return report


# ---- the lints ---------------------------------------------------------------------------------


def _unsatisfiable(rule: _Rule) -> Iterator[Finding]:
    if rule.dnf is None:
        yield Finding("info", "not-analysed", f"rule {rule.ref.id!r} has a condition with more "
                      f"than {MAX_TERMS} alternatives; it was not analysed", (rule.ref,))
        return
    if satisfiable(rule.dnf):
        return
    why = rule.dnf[0].conflict() if rule.dnf else "the condition is constant false"
    yield Finding("error", "unsatisfiable", f"rule {rule.ref.id!r} can never fire: {why}",
                  (rule.ref,), hint="fix the bounds or remove the rule")


def _unproduced(rules: list[_Rule], producible: set[str], known: bool) -> Iterator[Finding]:
    for rule in rules:
        if rule.pattern:
            missing = sorted(k for k in rule.needs if k not in producible)
        else:
            missing = sorted(k for k in rule.reads if k not in producible
                             and not _fires_without(rule, k))
        if not missing:
            continue
        what = ", ".join(missing)
        if known:
            yield Finding("error", "unreachable", f"rule {rule.ref.id!r} needs facts of kind "
                          f"{what}, which neither the rules nor the pipeline produce",
                          (rule.ref,), hint="check the kind's spelling or add a stage making it")
        else:
            yield Finding("info", "external-kind", f"rule {rule.ref.id!r} needs facts of kind "
                          f"{what}, which no rule here produces", (rule.ref,),
                          hint="pass --pipeline (or --kind) to check that something makes them")


def _fires_without(rule: _Rule, kind: str) -> bool:
    """Whether a simple rule's condition can hold with no fact of ``kind`` (it reads null)."""
    if rule.dnf is None:
        return True
    root = f"{kind}#0"
    absent = Term({p: _equal_to(None) for p in rule.simple_paths if p[0] == root})
    return any((t & absent).conflict() is None for t in rule.dnf)


def _pairs(rules: list[_Rule]) -> Iterator[Finding]:
    # Each file is its own rule set (its own stage); only rules of one file are compared. An
    # unsatisfiable rule has its own finding; it would "overlap" or "be subsumed" vacuously.
    groups: dict[str, list[_Rule]] = {}
    for rule in rules:
        if rule.dnf is not None and satisfiable(rule.dnf):
            groups.setdefault(rule.group, []).append(rule)
    for members in groups.values():
        outlines = [_outline(r.dnf or []) for r in members]
        for i, j in _candidates(outlines):
            a, b = members[i], members[j]
            if (a.table is not None and a.table == b.table) \
                    or not _may_overlap(outlines[i], outlines[j]):
                continue  # a table's own rows: its hit policy and check judge them
            yield from _contradiction(a, b)
            yield from _subsumption(a, b)


# Comparing every pair of a file's rules is quadratic in DNF work: thousands of rules took
# minutes. An outline (per path that every term constrains, the union of its value sets) is a
# necessary condition for two rules to overlap, and subsumption between satisfiable rules needs
# overlap too; pairs are drawn from buckets of one finitely-valued path, then filtered by it.
Outline = dict[PathKey, Domain]


def _outline(dnf: Dnf) -> Outline:
    shared = set(dnf[0].paths) if dnf else set()
    for term in dnf[1:]:
        shared &= set(term.paths)
    out: Outline = {}
    for key in shared:
        union = dnf[0].paths[key]
        for term in dnf[1:]:
            union = union | term.paths[key]
        out[key] = union
    return out


def _may_overlap(a: Outline, b: Outline) -> bool:
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return all(not (dom & large[key]).empty for key, dom in small.items() if key in large)


def _values(dom: Domain) -> frozenset[object] | None:
    """The finitely many values a domain holds, or None when it is open-ended."""
    if dom.all_texts_but or dom.other or any(lo != hi for lo, _, hi, _ in dom.numbers):
        return None
    return frozenset([("n", lo) for lo, _, _, _ in dom.numbers] + [("s", t) for t in dom.texts]
                     + [("b", v) for v in dom.bools] + ([("null",)] if dom.null else []))


def _candidates(outlines: list[Outline]) -> list[tuple[int, int]]:
    """Index pairs (i < j, in order) that share a value on the most often finite path, plus
    every pair with a rule that leaves that path open."""
    finite = [{k: v for k, d in o.items() if (v := _values(d)) is not None} for o in outlines]
    counts: dict[PathKey, int] = {}
    for found in finite:
        for key in found:
            counts[key] = counts.get(key, 0) + 1
    n = len(outlines)
    if not counts:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    best = max(counts, key=lambda k: (counts[k], str(k)))
    buckets: dict[object, list[int]] = {}
    open_ended = []
    for i, found in enumerate(finite):
        if best not in found:
            open_ended.append(i)
        for value in found.get(best, ()):
            buckets.setdefault(value, []).append(i)
    pairs = {(a, b) for ids in buckets.values() for x, a in enumerate(ids) for b in ids[x + 1:]}
    pairs |= {(min(i, j), max(i, j)) for i in open_ended for j in range(n) if j != i}
    return sorted(pairs)


def _decisions(rule: _Rule) -> list[_Action]:
    return [x for x in rule.actions if x.kind == "decision" and x.constant]


def _contradiction(a: _Rule, b: _Rule) -> Iterator[Finding]:
    assert a.dnf is not None and b.dnf is not None
    pairs = [(x, y) for x in _decisions(a) for y in _decisions(b) if x.label != y.label]
    if not pairs or not _overlap(a.dnf, b.dnf):
        return
    x, y = pairs[0]
    says = (f"rules {a.ref.id!r} ({x.strength} {x.label!r}) and {b.ref.id!r} "
            f"({y.strength} {y.label!r}) can fire on the same facts with "
            "different decisions")
    if x.strength != y.strength:
        yield Finding("info", "contradiction", says + f"; {_stronger(x, y)} wins by precedence",
                      (a.ref, b.ref))
    elif a.salience != b.salience:
        yield Finding("warning", "contradiction", says + "; the higher salience wins",
                      (a.ref, b.ref), hint="make the conditions exclusive if that is not meant")
    elif x.strength == "advise":
        yield Finding("warning", "contradiction", says + " and the same salience: only advice, "
                      "but which one counts depends on the order", (a.ref, b.ref),
                      hint="make the conditions exclusive, or give one a higher salience")
    else:
        yield Finding("error", "contradiction", says + " and the same strength and salience, "
                      "so neither wins", (a.ref, b.ref),
                      hint="make the conditions exclusive, or give one a higher salience")


def _stronger(x: _Action, y: _Action) -> str:
    order = {"veto": 3, "override": 2, "advise": 1}
    return x.strength if order.get(x.strength, 0) > order.get(y.strength, 0) else y.strength


def _subsumption(a: _Rule, b: _Rule) -> Iterator[Finding]:
    if not a.same_action(b) or not _sound_pair(a, b):
        return
    assert a.dnf is not None and b.dnf is not None
    a_in_b = _implies(a.dnf, b.dnf, _negation(b))
    b_in_a = _implies(b.dnf, a.dnf, _negation(a))
    if a_in_b and b_in_a:
        yield Finding("warning", "duplicate", f"rules {a.ref.id!r} and {b.ref.id!r} have "
                      "equivalent conditions and the same action", (b.ref, a.ref),
                      hint=f"remove one of them ({b.ref.id!r})")
    elif a_in_b or b_in_a:
        narrow, wide = (a, b) if a_in_b else (b, a)
        yield Finding("warning", "subsumed", f"rule {narrow.ref.id!r} is subsumed by "
                      f"{wide.ref.id!r}: whenever it fires, {wide.ref.id!r} fires too with "
                      "the same action", (narrow.ref, wide.ref),
                      hint=f"remove {narrow.ref.id!r} or narrow {wide.ref.id!r}")


def _sound_pair(a: _Rule, b: _Rule) -> bool:
    # Pattern rules match any fact of a kind; only compare them with each other.
    return a.pattern == b.pattern


def _negation(rule: _Rule) -> Callable[[], Dnf]:
    if rule.negate is not None:
        return rule.negate
    dnf = rule.dnf or []

    def negate() -> Dnf:
        out = _TRUE
        for term in dnf:
            out = _and(out, _term_negation(term))
        return out

    return negate


def _term_negation(term: Term) -> Dnf:
    atoms = [Term({k: d}, notes={k: term.notes.get(k, ())}) for k, d in term.paths.items()]
    atoms += [Term(opaque=frozenset({o})) for o in term.opaque]
    return [_negate(a) for a in atoms]


def _self_triggering(rule: _Rule) -> Iterator[Finding]:
    if not rule.pattern or rule.no_loop or rule.dnf is None:
        return
    for action in rule.actions:
        if action.kind == "modify" and action.target in rule.fact_vars:
            base = rule.fact_vars[action.target]
            if _still_matches(rule.dnf, base, action.fields):
                yield _loop_finding(rule, f"modifies ?{action.target}, a fact its own pattern "
                                    f"{base[0].split('#')[0]!r} matches again after the change")
        elif any(_still_matches(rule.dnf, (f"{action.kind}#{i}",), action.fields, insert=True)
                 for i in range(rule.counts.get(action.kind, 0))):
            yield _loop_finding(rule, f"inserts facts of kind {action.kind!r}, which its "
                                "own pattern matches")


def _still_matches(dnf: Dnf, base: PathKey, fields: Mapping[str, Any],
                   insert: bool = False) -> bool:
    """Whether a fact changed (or made) with ``fields`` may match the pattern at ``base``."""
    for term in dnf:
        ok = True
        for key, dom in term.paths.items():
            if key[:1] != base or len(key) < 2:
                continue
            name = key[1]
            if name in fields:
                value, constant = _static(fields[name])
                if constant and not dom.admits(value):
                    ok = False
            elif insert:
                ok = False  # a field the pattern tests is missing from the new fact
        if ok:
            return True
    return False


def _loop_finding(rule: _Rule, what: str) -> Finding:
    return Finding("warning", "self-trigger", f"rule {rule.ref.id!r} {what}: it fires again "
                   "after each of its own firings until max_fires stops the run", (rule.ref,),
                   hint="add `no_loop: true`, or a condition the action makes false")


def _type_mismatches(rules: list[_Rule]) -> Iterator[Finding]:
    seen: dict[tuple[str, PathKey], dict[str, list[RuleRef]]] = {}
    for rule in rules:
        for term in rule.dnf or []:
            for key, dom in term.paths.items():
                for kind in _kinds_of(dom):
                    refs = seen.setdefault((rule.group, key), {}).setdefault(kind, [])
                    if rule.ref not in refs:
                        refs.append(rule.ref)
    for (_, key), kinds in seen.items():
        if "number" in kinds and "text" in kinds:
            involved = tuple(dict.fromkeys(kinds["number"] + kinds["text"]))
            yield Finding("warning", "type-mismatch", f"{_show_path(key)} is compared with "
                          "numbers in some conditions and with text in others", involved,
                          hint="convert one side (int(...), str(...)) or fix the constant")


def _kinds_of(dom: Domain) -> list[str]:
    # Only a set narrowed to one type says what the author expects the value to be.
    has_numbers = bool(dom.numbers) and dom.numbers != _ALL_NUMBERS
    has_texts = not dom.all_texts_but and bool(dom.texts)
    if has_numbers and not dom.all_texts_but and not dom.texts:
        return ["number"]
    if has_texts and not dom.numbers:
        return ["text"]
    return []
