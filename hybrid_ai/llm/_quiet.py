"""Model loading: the lazy torch/transformers import, without their progress bars.

    torch, transformers = import_backend()
    with quiet_loading(transformers):
        model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from hybrid_ai._errors import MissingDependencyError

__all__ = ["import_backend", "load_local", "quiet_loading"]


def import_backend() -> tuple[Any, Any]:
    """``(torch, transformers)``, or the install line when they are missing."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            "torch and transformers", "pip install 'hybrid-ai[llm]'"
        ) from exc
    return torch, transformers


@contextlib.contextmanager
def quiet_loading(transformers: Any) -> Iterator[None]:
    """Turn transformers' progress bars off for the block, then restore the user's setting."""
    logging = transformers.utils.logging
    was_on = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        with _quiet_gguf():
            yield
    finally:
        if was_on:
            logging.enable_progress_bar()


@contextlib.contextmanager
def _quiet_gguf() -> Iterator[None]:
    """transformers' GGUF reader draws its own tqdm bar, deaf to the switch above: give it a
    silent one for the block."""
    import importlib

    try:
        module: Any = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except ImportError:  # no GGUF support installed: nothing to silence
        module = None
    original = getattr(module, "tqdm", None)
    if original is None:
        yield
        return
    module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        module.tqdm = original


def load_local(path: Any, loader: str, *, what: str, **options: Any) -> tuple[Any, Any]:
    """``(tokenizer, AutoX.from_pretrained(path))`` from local files only, quietly.

    ``load_local(path, "AutoModel", what="an encoder")``; a missing or broken folder becomes a
    ConfigError naming ``what`` and ``path``.
    """
    from hybrid_ai._errors import ConfigError

    _, transformers = import_backend()
    try:
        with quiet_loading(transformers):
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            loaded = getattr(transformers, loader).from_pretrained(
                path, local_files_only=True, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"could not load {what} from {path}: {exc}; the folder must hold a transformers "
            "model saved with save_pretrained (config.json, weights and tokenizer files)"
        ) from exc
    return tokenizer, loaded
