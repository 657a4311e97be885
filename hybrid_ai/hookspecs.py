"""Every hook hybrid-ai calls, in one place (pluggy project name ``hybrid_ai``).

A plugin is a module or object with functions marked ``@hookimpl`` whose names match the specs
below. It is found through the entry-point group ``hybrid_ai`` (``[project.entry-points.hybrid_ai]
my_plugin = "my_package.plugin"``), through ``plugins:`` in a pipeline file, or passed to
``Engine(..., plugins=[...])``. The built-in components register through these same hooks.

    from hybrid_ai import hookimpl
    @hookimpl
    def hybrid_ai_stages(): return {"shout": Shout}

Registration hooks return a mapping of name to object; the engine merges all plugins' mappings
into one registry per kind, and two plugins claiming one name is an error. Observation hooks are
called synchronously on the engine's event loop: keep them cheap and never block in them; their
return values are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._engine import Engine
    from ._facts import Case, Fact
    from ._result import Result, StageTrace

PROJECT = "hybrid_ai"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# --- registration: what a plugin adds ------------------------------------------------------


@hookspec
def hybrid_ai_stages() -> Mapping[str, Callable[..., Any]] | None:
    """Stage factories by component name, called once when a plugin manager is built.

    Each factory takes keyword parameters (the ``with:`` block of a pipeline node) and returns a
    stage meeting :class:`hybrid_ai.Stage`; it must not load anything heavy. Return None to add
    no stages.
    """


@hookspec
def hybrid_ai_rule_functions() -> Mapping[str, Callable[..., Any]] | None:
    """Functions that rule conditions and route expressions may call, by name.

    Called once per plugin manager; the names join the expression language's whitelist. Functions
    must be pure (no I/O). Return None to add none.
    """


@hookspec
def hybrid_ai_fact_types() -> Mapping[str, type[Any]] | None:
    """Fact schemas by kind (pydantic models); facts of a registered kind are validated when a
    stage emits them. Return None to declare none."""


@hookspec
def hybrid_ai_merge_policies() -> Mapping[str, Callable[..., Any]] | None:
    """Fan-in merge policies for ``parallel`` nodes, by name (see ``hybrid_ai.MergePolicy``).

    Called once per plugin manager. Return None to add none.
    """


@hookspec
def hybrid_ai_fusion_strategies() -> Mapping[str, Callable[..., Any]] | None:
    """Fusion strategies for the ``fuse`` stage, by name (see ``hybrid_ai.fusion``).

    Called once per plugin manager. Return None to add none.
    """


@hookspec
def hybrid_ai_kg_loaders() -> Mapping[str, Callable[..., Any]] | None:
    """Knowledge-graph file loaders by format name (``"nt"``, ``"json"``, ...).

    Each takes a path and returns a ``hybrid_ai.kg.TripleStore``. Return None to add none.
    """


@hookspec
def hybrid_ai_llm_backends() -> Mapping[str, Callable[..., Any]] | None:
    """LLM backend factories by name (``"encoder"``, ...), taking keyword parameters and doing no
    work until warmed up. Return None to add none."""


@hookspec
def hybrid_ai_cli_commands() -> Mapping[str, Any] | None:
    """Extra ``hybrid-ai`` sub-commands: a name mapped to a ``typer.Typer`` app or a function.

    Called when the CLI starts. Return None to add none.
    """


# --- observation: what a plugin may watch ---------------------------------------------------


@hookspec
def hybrid_ai_engine_started(engine: Engine) -> None:
    """Called once when an engine has built its graph and warmed up its stages."""


@hookspec
def hybrid_ai_stage_started(case: Case, stage: str) -> None:
    """Called before a stage runs for a case (once per stage, not per retry)."""


@hookspec
def hybrid_ai_stage_finished(case: Case, stage: str, trace: StageTrace) -> None:
    """Called after a stage ran or was served from cache (a failure calls ``stage_failed``;
    a stage a cascade did not reach calls neither)."""


@hookspec
def hybrid_ai_stage_failed(case: Case, stage: str, error: BaseException, trace: StageTrace) -> None:
    """Called when a stage failed after its retries, before its ``on_error`` policy applies."""


@hookspec
def hybrid_ai_decision_made(case: Case, result: Result) -> None:
    """Called once per case when its result is complete (also when it failed or abstained)."""


@hookspec
def hybrid_ai_veto_applied(case: Case, decision: Fact, overruled: list[Fact]) -> None:
    """Called when a veto decision overrules other decisions or predictions during fusion."""
