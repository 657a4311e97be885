"""Model loading without transformers' progress bars, which do not belong in an engine's output.

    with quiet_loading(transformers):
        model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["quiet_loading"]


@contextlib.contextmanager
def quiet_loading(transformers: Any) -> Iterator[None]:
    """Turn transformers' progress bars off for the block, then restore the user's setting."""
    logging = transformers.utils.logging
    was_on = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            logging.enable_progress_bar()
