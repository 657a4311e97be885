"""Zero-shot classification (label likelihood or label descriptions) and field extraction.

    - stage: zero_shot
      with: {labels: {positive: "good news", negative: "bad news", neutral: "neither"}}
    - stage: zero_shot
      with: {method: embedding, labels: {card_arrival: "my new card has not arrived"}}
    - stage: extract
      with: {fields: {amount: float, currency: str}, retries: 2}

``zero_shot`` with ``method: generative`` (the default) scores every label as the answer to a
prompt under the local causal LM and turns the scores into probabilities (it never parses free
text); ``method: embedding`` embeds each label's description with the sentence encoder and picks
the nearest (much cheaper, and better on many-class intent sets).

``extract`` asks for one JSON object, mends small slips locally (quotes, trailing commas, a
cut-off end), validates it against the declared fields, and on a parse or validation error asks
again with the error shown; when every attempt fails the stage fails (its ``on_error`` policy
decides), never guessing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError, create_model

from .._errors import ConfigError, StageError
from .._facts import FactView, NewFact
from .._stage import BaseStage
from ._encoder import Encoder, get_encoder
from ._generative import Generator, get_generator
from ._http import ChatClient
from ._stages import LabelSimilarity, softmax_top
from ._text import abstain, case_text, root_of

__all__ = ["ExtractStage", "ZeroShotStage", "label_descriptions", "repair_json"]

FIELD_TYPES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "date": dt.date,
    "list[str]": list[str],
}
ZERO_SHOT_METHODS = ("embedding", "generative")
_CLASSIFY = ("Which category fits this customer text best?\nCategories: {labels}\n"
             "Text: {text}\nAnswer with the category only.")
# Prompts longer than this are cut (with a warning): a 135M model gains nothing from more, and
# the cost of a forward pass grows with the square of the length.
MAX_TEXT_CHARS = 2000


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

    def _text(self, view: FactView) -> tuple[str | None, list[str]]:
        return case_text(view, field=self.params.get("field"),
                         max_chars=int(self.params.get("max_text_chars", MAX_TEXT_CHARS)))


def label_descriptions(labels: list[str] | Mapping[str, str]) -> dict[str, str]:
    """Labels to descriptions; a bare label describes itself: ``card_arrival`` -> "card arrival"."""
    if isinstance(labels, Mapping):
        names = {str(k): str(v) for k, v in labels.items()}
    elif isinstance(labels, (list, tuple)):
        names = {str(x): str(x).replace("_", " ") for x in labels}
    else:
        raise ConfigError(f"labels must be a list or a mapping of label: description, got "
                          f"{type(labels).__name__}")
    if len(names) < 2:
        raise ConfigError(f"zero-shot classification needs at least two labels, got {list(names)}")
    return names


class ZeroShotStage(_GenerativeStage):
    """Zero-shot classification from label descriptions -> prediction.

    ``method: generative`` scores each description's likelihood as the model's answer;
    ``method: embedding`` takes the cosine between the text and each description.
    """

    requires = ("input",)
    produces = ("prediction",)

    def __init__(self, *, labels: list[str] | Mapping[str, str], method: str = "generative",
                 prompt: str = _CLASSIFY, temperature: float | None = None,
                 model_path: str | None = None, model: str = "zero-shot",
                 generator: Generator | None = None, encoder: Encoder | None = None,
                 field: str | None = None, max_text_chars: int = MAX_TEXT_CHARS,
                 top_k: int = 5, calibrate: bool = True) -> None:
        names = label_descriptions(labels)
        if method not in ZERO_SHOT_METHODS:
            raise ConfigError(f"zero_shot method {method!r} is unknown; use one of: "
                              f"{', '.join(ZERO_SHOT_METHODS)}")
        if "{text}" not in prompt:
            raise ConfigError("the zero_shot prompt must contain {text}")
        # Log-probabilities and cosines live on different scales, hence different defaults.
        temp = temperature if temperature is not None else (
            0.1 if method == "generative" else 0.05)
        if temp <= 0:
            raise ConfigError(f"temperature must be positive, got {temp}")
        super().__init__(generator, labels=names, method=method, prompt=prompt,
                         temperature=temp, model_path=model_path, model=model, field=field,
                         max_text_chars=max_text_chars, top_k=top_k, calibrate=calibrate)
        self.labels = names
        self._prior: np.ndarray | None = None
        self._encoder = encoder
        self._descriptions: LabelSimilarity | None = None

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = get_encoder(self.params["model_path"])
        return self._encoder

    def warm_up(self) -> None:
        if self.params["method"] == "generative":
            self.generator.warm_up()
        elif self._descriptions is None:
            self._descriptions = LabelSimilarity.from_descriptions(self.encoder, self.labels)

    @property
    def _source(self) -> str:
        if self.params["method"] == "generative":
            return f"llm:{self.generator.name}"
        return f"llm:{self.encoder.name}/descriptions"

    def process(self, view: FactView) -> list[NewFact]:
        text, warnings = self._text(view)
        if text is None:
            return [abstain(view, "prediction", warnings, source=self._source,
                            model=self.params["model"])]
        scores = self._scores(text)
        label, top = softmax_top(scores, list(self.labels), float(self.params["temperature"]),
                                 int(self.params["top_k"]))
        data: dict[str, Any] = {"model": self.params["model"], "label": label, "proba": top}
        if warnings:
            data["warnings"] = warnings
        return [NewFact("prediction", data, confidence=top[label], derived_from=root_of(view),
                        source=self._source, detail={"warnings": warnings} if warnings else {})]

    def _scores(self, text: str) -> np.ndarray:
        if self.params["method"] == "embedding":
            if self._descriptions is None:
                self.warm_up()
            assert self._descriptions is not None
            return self._descriptions.similarities(self.encoder.encode([text])[0])
        scores = np.asarray(self.generator.score_options(self._prompt(text),
                                                         list(self.labels.values())))
        if not self.params["calibrate"]:
            return scores
        if self._prior is None:
            # Contextual calibration (Zhao et al., 2021): an option's score with no text at all
            # measures the model's bias toward it (long, predictable words score high), and is
            # subtracted so that only what the text adds decides.
            self._prior = np.asarray(self.generator.score_options(
                self._prompt("N/A"), list(self.labels.values())))
        calibrated: np.ndarray = scores - self._prior
        return calibrated

    def _prompt(self, text: str) -> str:
        listed = ", ".join(self.labels)
        return str(self.params["prompt"]).replace("{labels}", listed).replace("{text}", text)


class ExtractStage(_GenerativeStage):
    """Fields from the text into a typed schema, validated; retried with the error shown.

    The local model answers by default; ``base_url`` + ``served_model`` send the prompts to an
    OpenAI-compatible server instead, with the API key read from the ``api_key_env`` variable
    (keys never live in pipeline files). Empty input gives every field null and a warning,
    without calling the model.
    """

    requires = ("input",)
    produces = ("extracted",)

    def __init__(self, *, fields: Mapping[str, str], instructions: str = "", retries: int = 2,
                 model_path: str | None = None, base_url: str | None = None,
                 served_model: str | None = None, api_key_env: str | None = None,
                 generator: TextGenerator | None = None, field: str | None = None,
                 max_text_chars: int = MAX_TEXT_CHARS) -> None:
        self.schema = _schema(fields)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"extract retries must be an integer >= 0, got {retries!r}")
        if (base_url is None) != (served_model is None):
            raise ConfigError("extract: give both base_url and served_model, or neither")
        if base_url is not None and generator is None:
            key = os.environ.get(api_key_env) if api_key_env else None
            generator = ChatClient(base_url=base_url, model=str(served_model), api_key=key)
        super().__init__(generator, fields=dict(fields), instructions=instructions,
                         retries=retries, model_path=model_path, base_url=base_url,
                         served_model=served_model, api_key_env=api_key_env, field=field,
                         max_text_chars=max_text_chars)

    def process(self, view: FactView) -> list[NewFact]:
        text, warnings = self._text(view)
        if text is None:
            empty = dict.fromkeys(self.params["fields"])
            return [self._fact(view, empty, 0, warnings)]
        prompt = self._prompt(text)
        errors: list[str] = []
        for attempt in range(int(self.params["retries"]) + 1):
            answer = self.generator.generate(prompt)
            try:
                values, repaired = _validated(self.schema, answer)
            except ValueError as exc:
                errors.append(f"attempt {attempt + 1}: {exc}")
                prompt = _repair(prompt, answer, str(exc))
                continue
            return [self._fact(view, values, attempt + 1, warnings, repaired=repaired)]
        raise StageError("extract", "no valid JSON for the declared fields after "
                         f"{len(errors)} attempt(s): " + "; ".join(errors))

    def _prompt(self, text: str) -> str:
        keys = ", ".join(f'"{k}" ({t})' for k, t in self.params["fields"].items())
        extra = f"{self.params['instructions']}\n" if self.params["instructions"] else ""
        return (f"{extra}Extract these fields from the text as one JSON object with the keys "
                f"{keys}. Use null when a field is not in the text.\nText: {text}\nJSON:")

    def _fact(self, view: FactView, values: dict[str, Any], attempts: int,
              warnings: list[str], *, repaired: bool = False) -> NewFact:
        data: dict[str, Any] = {"values": values, "attempts": attempts}
        if repaired:
            data["repaired"] = True
        if warnings:
            data["warnings"] = warnings
        return NewFact("extracted", data, derived_from=root_of(view),
                       source=f"llm:{self.generator.name}",
                       detail={"warnings": warnings} if warnings else {})


def _schema(fields: Mapping[str, str]) -> type[BaseModel]:
    if not isinstance(fields, Mapping) or not fields:
        raise ConfigError("extract needs fields: a mapping of name: type, e.g. {amount: float}")
    unknown = {k: t for k, t in fields.items() if t not in FIELD_TYPES}
    if unknown:
        raise ConfigError(f"unknown field type(s) {unknown}; use one of: "
                          f"{', '.join(FIELD_TYPES)}")
    spec: dict[str, Any] = {k: (FIELD_TYPES[t] | None, None) for k, t in fields.items()}
    return create_model("Extracted", **spec)


def _validated(schema: type[BaseModel], answer: str) -> tuple[dict[str, Any], bool]:
    """The first JSON object in ``answer`` checked against the schema, and whether it needed a
    local repair first (ValueError, with the first problem, when even the repair fails)."""
    start = answer.find("{")
    if start < 0:
        raise ValueError("the answer holds no JSON object")
    repaired = False
    try:
        obj, _ = json.JSONDecoder().raw_decode(answer[start:])
    except json.JSONDecodeError as exc:
        fixed = repair_json(answer[start:])
        if fixed is None:
            raise ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
        obj, repaired = fixed, True
    if not isinstance(obj, dict):
        raise ValueError(f"the answer holds a JSON {type(obj).__name__}, not an object")
    try:
        return schema.model_validate(obj).model_dump(mode="json"), repaired
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


_PY_WORDS = re.compile(r"\b(None|True|False)\b")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def repair_json(text: str) -> Any | None:
    """Mend the usual small-model slips, or None: ``repair_json("{'a': 1,}") == {"a": 1}``.

    Handles single quotes, Python's None/True/False, trailing commas, a cut-off end (closing
    the open string, brackets and braces) and text after the object. It never invents values.
    """
    candidate = _PY_WORDS.sub(lambda m: {"None": "null", "True": "true", "False": "false"}[
        m.group()], text)
    if '"' not in candidate:
        candidate = candidate.replace("'", '"')
    candidate = _TRAILING_COMMA.sub(r"\1", _closed(candidate))
    try:
        obj, _ = json.JSONDecoder().raw_decode(candidate)
    except json.JSONDecodeError:
        return None
    return obj


def _closed(text: str) -> str:
    """``text`` with any string, list and object left open at its end closed, in order."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            in_string = escaped or char != '"'
            escaped = char == "\\" and not escaped
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
            if not stack:
                return text  # the object is complete; whatever follows is ignored by raw_decode
    tail = '"' if in_string else ""
    return text.rstrip().rstrip(",") + tail + "".join(reversed(stack))


def _repair(prompt: str, answer: str, error: str) -> str:
    return (f"{prompt}\n{answer.strip()}\nThat answer is wrong ({error}). Reply with the corrected "
            "JSON object only.\nJSON:")
