"""Cases, facts with provenance, and the blackboard every stage reads and writes.

A request enters as a :class:`Case`; the engine turns it into the root ``input`` fact. Stages
read facts through a :class:`FactView` and return :class:`NewFact` drafts; the engine stamps
each draft with an id and a :class:`Provenance` (stage, source, the facts it came from).

    case = Case(text="my card was stolen", fields={"country": "FR"})
    board = Blackboard(case); board.last("input").data["text"]
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import InputError

__all__ = ["Blackboard", "Case", "Fact", "FactView", "NewFact", "Provenance", "StageOutput"]

INPUT_KIND = "input"


class Case(BaseModel):
    """One request: ``Case(text="where is my card?", fields={"customer": "c1"})``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], min_length=1)
    text: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)
    budget: float | None = Field(default=None, ge=0, description="cost budget for cascades")

    @classmethod
    def coerce(cls, value: Case | str | Mapping[str, Any], *, where: str = "input") -> Case:
        """``Case.coerce("text")`` or ``Case.coerce({"text": ..., "fields": {...}})``."""
        if isinstance(value, Case):
            return value
        if isinstance(value, str):
            return cls(text=value)
        if not isinstance(value, Mapping):
            raise InputError(
                f"{where}: expected a Case, a str or a mapping, got {type(value).__name__}; "
                'pass e.g. {"text": "...", "fields": {...}}'
            )
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            raise InputError(f"{where}: invalid case: {_first_errors(exc)}") from exc


def _first_errors(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'case'}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts) + " (valid keys: id, text, fields, budget)"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who made a fact and from what: stage id, source (rule, model, call), input fact ids."""

    stage: str
    source: str
    inputs: tuple[int, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fact:
    """A typed fact on the blackboard: ``fact.kind``, ``fact.data["label"]``, its provenance."""

    id: int
    kind: str
    data: Mapping[str, Any]
    provenance: Provenance
    confidence: float | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """``fact.get("label")`` reads one field of the data."""
        return self.data.get(key, default)


@dataclass(frozen=True, slots=True)
class NewFact:
    """What a stage returns: ``NewFact("intent", {"label": "card_arrival"}, confidence=0.9)``.

    ``derived_from`` lists the facts it was computed from; ``source`` names the rule, model or
    call that made it (default: the stage's component); ``detail`` holds bindings, paths, params.
    """

    kind: str
    data: Mapping[str, Any]
    confidence: float | None = None
    derived_from: Sequence[Fact] = ()
    source: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StageOutput:
    """New facts plus the stage's own confidence, read by cascades and merge policies."""

    facts: list[NewFact] = field(default_factory=list)
    confidence: float | None = None


class FactView:
    """Read access to facts: ``view.of("prediction")``, ``view.last("intent")``, ``view.case``."""

    __slots__ = ("_by_kind", "_facts", "_parent", "case")

    def __init__(self, case: Case, parent: FactView | None = None) -> None:
        self.case = case
        self._parent = parent
        self._facts: list[Fact] = []
        self._by_kind: dict[str, list[Fact]] = {}

    def of(self, kind: str) -> list[Fact]:
        """Every fact of ``kind``, oldest first."""
        mine = self._by_kind.get(kind, [])
        if self._parent is None:
            return list(mine)
        return self._parent.of(kind) + mine

    def last(self, kind: str) -> Fact | None:
        """The newest fact of ``kind``, or None."""
        mine = self._by_kind.get(kind)
        if mine:
            return mine[-1]
        return self._parent.last(kind) if self._parent is not None else None

    def all(self) -> list[Fact]:
        """Every fact, oldest first."""
        return (self._parent.all() if self._parent is not None else []) + self._facts

    def kinds(self) -> set[str]:
        """The kinds present."""
        own = {k for k, v in self._by_kind.items() if v}
        return own | (self._parent.kinds() if self._parent is not None else set())

    def __iter__(self) -> Iterator[Fact]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._facts) + (len(self._parent) if self._parent is not None else 0)


class Blackboard(FactView):
    """The working memory of one case; ``child()`` gives a layer for a parallel branch."""

    __slots__ = ("_ids",)

    def __init__(
        self,
        case: Case,
        parent: Blackboard | None = None,
        ids: Iterator[int] | None = None,
    ) -> None:
        super().__init__(case, parent)
        self._ids = ids if ids is not None else itertools.count(0)
        if parent is None:
            data = {"id": case.id, "text": case.text, "fields": case.fields}
            self.add(NewFact(INPUT_KIND, data, source="case"), stage=INPUT_KIND)

    def add(self, draft: NewFact, *, stage: str, source: str | None = None) -> Fact:
        """Stamp a draft with an id and provenance and store it."""
        prov = Provenance(
            stage=stage,
            source=draft.source or source or stage,
            inputs=tuple(f.id for f in draft.derived_from),
            detail=draft.detail,
        )
        fact = Fact(next(self._ids), draft.kind, draft.data, prov, draft.confidence)
        self._store(fact)
        return fact

    def _store(self, fact: Fact) -> None:
        self._facts.append(fact)
        self._by_kind.setdefault(fact.kind, []).append(fact)

    def child(self) -> Blackboard:
        """A layer that sees this board and keeps its own writes until ``merge``."""
        return Blackboard(self.case, parent=self, ids=self._ids)

    def own(self) -> list[Fact]:
        """The facts written to this layer itself."""
        return list(self._facts)

    def merge(self, facts: Sequence[Fact]) -> None:
        """Adopt facts written in a child layer (their ids are already unique)."""
        for fact in facts:
            self._store(fact)
