"""What the LLM stages do with awkward input: empty, too long, or not text at all.

    text, warnings = case_text(view, field=None, max_chars=2000)
    if text is None: return [abstain(view, "prediction", warnings, ...)]

Every stage reads its text through :func:`case_text`, so each one answers bad input the same
way: an empty or non-text input gives an explicit abstention (``label: None, abstain: True``
plus the reason), a long one is cut and the cut is written into the fact's ``warnings``, and
neither ever raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._facts import Fact, FactView, NewFact

__all__ = ["abstain", "case_text", "root_of"]


def root_of(view: FactView) -> list[Fact]:
    """The input fact as a one-element list (or empty), for ``derived_from``."""
    root = view.last("input")
    return [root] if root is not None else []


def case_text(view: FactView, *, field: str | None = None,
              max_chars: int | None = None) -> tuple[str | None, list[str]]:
    """The case's text (or ``fields[field]``) and warnings; None when there is nothing to read.

    ``max_chars`` cuts a longer text at the last whitespace before the limit, so a word is
    never split in half, and says so in the warnings.
    """
    where = "the case text" if field is None else f"case field {field!r}"
    value: Any = view.case.text if field is None else view.case.fields.get(field)
    if value is None and field is not None:
        known = ", ".join(sorted(view.case.fields)) or "none"
        return None, [f"{where} is missing (fields present: {known})"]
    if not isinstance(value, str):
        return None, [f"{where} is {type(value).__name__}, not text; nothing to read"]
    if not value.strip():
        return None, [f"{where} is empty; nothing to read"]
    if max_chars is not None and len(value) > max_chars:
        cut = value[:max_chars]
        space = cut.rfind(" ")
        cut = cut[:space] if space > max_chars // 2 else cut
        return cut, [f"{where} truncated from {len(value)} to {len(cut)} characters"]
    return value, []


def abstain(view: FactView, kind: str, warnings: Sequence[str], *, source: str,
            model: str | None = None) -> NewFact:
    """A fact saying the stage could not answer, and why: ``{"label": None, "abstain": True}``."""
    data: dict[str, Any] = {"label": None, "abstain": True, "reason": "; ".join(warnings),
                            "warnings": list(warnings)}
    if model is not None:
        data["model"] = model
    return NewFact(kind, data, confidence=0.0, derived_from=root_of(view), source=source,
                   detail={"warnings": list(warnings)})
