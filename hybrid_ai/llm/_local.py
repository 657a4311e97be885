"""transformers pipelines over a local model directory that the user names (never a hub id).

    ner = local_pipeline(Path("models/ner"), "token-classification", what="ner_model",
                         aggregation_strategy="simple")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._errors import ConfigError, MissingDependencyError

__all__ = ["local_pipeline"]

# The Auto class that reads a checkpoint for each task we load.
_AUTO = {"token-classification": "AutoModelForTokenClassification",
         "text-classification": "AutoModelForSequenceClassification"}


def local_pipeline(directory: Path, task: str, *, what: str, fix: str = "",
                   **options: Any) -> Any:
    """A CPU pipeline for ``task``; ``what`` names the option in errors, ``fix`` adds a hint."""
    if not (directory / "config.json").is_file():
        raise ConfigError(f"{what} {directory} is not a model directory (no config.json); give "
                          f"a folder saved with save_pretrained{fix}")
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependencyError("transformers", "pip install 'hybrid-ai[llm]'") from exc
    from ._quiet import quiet_loading

    try:
        with quiet_loading(transformers):
            tokenizer = transformers.AutoTokenizer.from_pretrained(directory,
                                                                   local_files_only=True)
            model = getattr(transformers, _AUTO[task]).from_pretrained(directory,
                                                                       local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"could not load a {task} model from {directory}: {exc}") from exc
    build: Any = transformers.pipeline  # typed per literal task; ours is checked via _AUTO
    return build(task, model=model, tokenizer=tokenizer, device="cpu", **options)
