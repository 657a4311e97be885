"""Model-free stages for the core tests, registered as a plugin module.

Pipelines name them with ``plugins: [tests._stages_for_tests]``; Python tests import the classes.
Every stage here is instant and deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hybrid_ai import BaseStage, FactView, NewFact, hookimpl


class LabelStage(BaseStage):
    """``t_label``: one ``prediction`` with a fixed label and confidence."""

    produces = ("prediction",)

    def __init__(self, *, label: str = "a", conf: float = 0.9, model: str | None = None) -> None:
        super().__init__(label=label, conf=conf, model=model)

    def process(self, view: FactView) -> list[NewFact]:
        label, conf = self.params["label"], float(self.params["conf"])
        proba = {label: conf, "other": round(1.0 - conf, 6)}
        data = {"label": label, "proba": proba, "model": self.params["model"] or label}
        return [NewFact("prediction", data, confidence=conf, derived_from=[view.last("input")])]


class EchoStage(BaseStage):
    """``t_echo``: an ``echo`` fact with the upper-cased text."""

    produces = ("echo",)

    def process(self, view: FactView) -> list[NewFact]:
        root = view.last("input")
        return [NewFact("echo", {"label": view.case.text.upper()}, derived_from=[root])]


class FailOnStage(BaseStage):
    """``t_fail_on``: raises when the case text contains ``word``, else predicts the text."""

    produces = ("prediction",)

    def __init__(self, *, word: str = "boom") -> None:
        super().__init__(word=word)

    def process(self, view: FactView) -> list[NewFact]:
        if self.params["word"] in view.case.text:
            raise RuntimeError(f"found {self.params['word']!r}")
        return [NewFact("prediction", {"label": view.case.text}, confidence=1.0)]


@hookimpl
def hybrid_ai_stages() -> Mapping[str, Callable[..., Any]]:
    return {"t_echo": EchoStage, "t_fail_on": FailOnStage, "t_label": LabelStage}
