"""The stage contract every component meets, built-in or plugin.

A stage declares which fact kinds it ``requires`` and ``produces`` (checked when the graph is
built), whether it is ``blocking`` (run on the engine's thread pool) and its ``cost`` (read by
cascades). Construction does no work; ``warm_up()`` loads models; ``process(view)`` returns new
facts, a :class:`~hybrid_ai.StageOutput`, or None for "nothing to add".

    class Shout(BaseStage):
        produces = ("shout",)
        def process(self, view): return [NewFact("shout", {"text": view.case.text.upper()})]
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._facts import FactView, NewFact, StageOutput

__all__ = ["BaseStage", "ProcessResult", "Stage", "StageFactory"]

ProcessResult = StageOutput | Sequence[NewFact] | None


@runtime_checkable
class Stage(Protocol):
    """What the engine needs from a stage (``BaseStage`` provides sensible defaults)."""

    requires: tuple[str, ...]
    produces: tuple[str, ...]
    blocking: bool
    cost: float

    @property
    def version(self) -> str: ...

    def warm_up(self) -> None: ...

    def process(self, view: FactView) -> ProcessResult | Awaitable[ProcessResult]: ...


StageFactory = Callable[..., Stage]


class BaseStage:
    """Defaults for the stage contract; subclasses set the class attributes and ``process``.

    Keyword parameters given to the constructor are kept in ``params`` and fingerprinted into
    ``version`` so caches and traces change when the configuration does.
    """

    requires: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    blocking: bool = False
    cost: float = 0.0

    def __init__(self, **params: Any) -> None:
        self.params: Mapping[str, Any] = dict(params)

    @functools.cached_property
    def version(self) -> str:
        """A short hash of the class and its parameters (computed once: cache keys read it)."""
        blob = json.dumps(
            [type(self).__qualname__, self.params], sort_keys=True, default=repr
        ).encode()
        return hashlib.blake2b(blob, digest_size=6).hexdigest()

    def warm_up(self) -> None:
        """Load whatever is heavy; the default has nothing to load."""

    def process(self, view: FactView) -> ProcessResult | Awaitable[ProcessResult]:
        raise NotImplementedError(f"{type(self).__name__} must implement process(view)")
