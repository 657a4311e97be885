"""Generative LLM stages: zero-shot classification by label likelihood, and field extraction.

    - stage: zero_shot
      with: {labels: {positive: "good news", negative: "bad news", neutral: "neither"}}
    - stage: extract
      with: {fields: {amount: float, currency: str}, retries: 2}

``zero_shot`` scores every label as the answer to a prompt and turns the scores into
probabilities (it never parses free text). ``extract`` asks for one JSON object, validates it
against the declared fields, and on a parse or validation error asks again with the error shown;
when every attempt fails the stage fails (its ``on_error`` policy decides), never guessing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError, create_model

from .._errors import StageError
from .._facts import FactView, NewFact
from .._stage import BaseStage
from ._generative import Generator, get_generator
from ._http import ChatClient

__all__ = ["ExtractStage", "ZeroShotStage"]

FIELD_TYPES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "date": dt.date,
    "list[str]": list[str],
}
_CLASSIFY = ("Which category fits this customer text best?\nCategories: {labels}\n"
             "Text: {text}\nAnswer with the category only.")


class TextGenerator(Protocol):
    """What ``extract`` needs: the local :class:`Generator` or a served model's ChatClient."""

    @property
    def name(self) -> str: ...

    def warm_up(self) -> Any: ...

    def generate(self, prompt: str, *, max_new_tokens: int | None = None) -> str: ...


class _GenerativeStage(BaseStage):
    blocking = True
    cost = 50.0

    def __init__(self, generator: Any, **params: Any) -> None:
        super().__init__(**params)
        self._generator = generator

    @property
    def generator(self) -> Any:
        if self._generator is None:
            self._generator = get_generator(self.params.get("model_path"))
        return self._generator

    def warm_up(self) -> None:
        self.generator.warm_up()


class ZeroShotStage(_GenerativeStage):
    """Zero-shot classification: each label's likelihood as the model's answer -> prediction."""

    requires = ("input",)
    produces = ("prediction",)

    def __init__(self, *, labels: list[str] | Mapping[str, str], prompt: str = _CLASSIFY,
                 temperature: float = 0.1, model_path: str | None = None,
                 model: str = "zero-shot", generator: Generator | None = None) -> None:
        names = dict(labels) if isinstance(labels, Mapping) else {str(x): str(x) for x in labels}
        if len(names) < 2:
            raise ValueError("zero_shot needs at least two labels")
        if "{text}" not in prompt:
            raise ValueError("the prompt must contain {text}")
        super().__init__(generator, labels=names, prompt=prompt, temperature=temperature,
                         model_path=model_path, model=model)
        self.labels = names

    def process(self, view: FactView) -> list[NewFact]:
        listed = ", ".join(self.labels)
        prompt = str(self.params["prompt"]).replace("{labels}", listed).replace(
            "{text}", view.case.text)
        scores = self.generator.score_options(prompt, list(self.labels.values()))
        proba = np.exp((scores - scores.max()) / float(self.params["temperature"]))
        proba /= proba.sum()
        ranked = sorted(zip(self.labels, proba.tolist(), strict=True), key=lambda kv: -kv[1])
        label, top = ranked[0]
        data = {"model": self.params["model"], "label": label, "proba": dict(ranked)}
        root = view.last("input")
        return [NewFact("prediction", data, confidence=top, derived_from=[root] if root else [],
                        source=f"llm:{self.generator.name}")]


class ExtractStage(_GenerativeStage):
    """Fields from the text into a typed schema, validated; retried with the error shown.

    The local model answers by default; ``base_url`` + ``served_model`` send the prompts to an
    OpenAI-compatible server instead, with the API key read from the ``api_key_env`` variable
    (keys never live in pipeline files).
    """

    requires = ("input",)
    produces = ("extracted",)

    def __init__(self, *, fields: Mapping[str, str], instructions: str = "", retries: int = 2,
                 model_path: str | None = None, base_url: str | None = None,
                 served_model: str | None = None, api_key_env: str | None = None,
                 generator: TextGenerator | None = None) -> None:
        self.schema = _schema(fields)
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if (base_url is None) != (served_model is None):
            raise ValueError("give both base_url and served_model, or neither")
        if base_url is not None and generator is None:
            key = os.environ.get(api_key_env) if api_key_env else None
            generator = ChatClient(base_url=base_url, model=str(served_model), api_key=key)
        super().__init__(generator, fields=dict(fields), instructions=instructions,
                         retries=retries, model_path=model_path, base_url=base_url,
                         served_model=served_model, api_key_env=api_key_env)

    def process(self, view: FactView) -> list[NewFact]:
        prompt = self._prompt(view.case.text)
        errors: list[str] = []
        for attempt in range(int(self.params["retries"]) + 1):
            answer = self.generator.generate(prompt)
            try:
                values = _validated(self.schema, answer)
            except ValueError as exc:
                errors.append(f"attempt {attempt + 1}: {exc}")
                prompt = _repair(prompt, answer, str(exc))
                continue
            return [self._fact(view, values, attempt + 1)]
        raise StageError("extract", "no valid JSON for the declared fields after "
                         f"{len(errors)} attempt(s): " + "; ".join(errors))

    def _prompt(self, text: str) -> str:
        keys = ", ".join(f'"{k}" ({t})' for k, t in self.params["fields"].items())
        extra = f"{self.params['instructions']}\n" if self.params["instructions"] else ""
        return (f"{extra}Extract these fields from the text as one JSON object with the keys "
                f"{keys}. Use null when a field is not in the text.\nText: {text}\nJSON:")

    def _fact(self, view: FactView, values: dict[str, Any], attempts: int) -> NewFact:
        root = view.last("input")
        return NewFact("extracted", {"values": values, "attempts": attempts},
                       derived_from=[root] if root else [], source=f"llm:{self.generator.name}")


def _schema(fields: Mapping[str, str]) -> type[BaseModel]:
    if not fields:
        raise ValueError("extract needs at least one field")
    unknown = {k: t for k, t in fields.items() if t not in FIELD_TYPES}
    if unknown:
        raise ValueError(f"unknown field type(s) {unknown}; use one of: {', '.join(FIELD_TYPES)}")
    spec: dict[str, Any] = {k: (FIELD_TYPES[t] | None, None) for k, t in fields.items()}
    return create_model("Extracted", **spec)


def _validated(schema: type[BaseModel], answer: str) -> dict[str, Any]:
    """The first JSON object in ``answer``, checked against the schema (ValueError if not)."""
    start = answer.find("{")
    if start < 0:
        raise ValueError("the answer holds no JSON object")
    try:
        obj, _ = json.JSONDecoder().raw_decode(answer[start:])
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    try:
        return schema.model_validate(obj).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _repair(prompt: str, answer: str, error: str) -> str:
    return (f"{prompt}\n{answer.strip()}\nThat answer is wrong ({error}). Reply with the corrected "
            "JSON object only.\nJSON:")
