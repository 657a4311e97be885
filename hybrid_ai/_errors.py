"""Every error hybrid-ai raises on purpose derives from one root, :class:`HybridAIError`.

The tree::

    HybridAIError
    ├── ConfigError              a pipeline, rule or knowledge file is wrong (file:line:col)
    │   ├── PipelineError        wiring problems, all of them, found before anything runs
    │   └── ExpressionError      an expression does not parse or uses unknown names/functions
    ├── UnknownComponentError    a registry lookup missed (also a LookupError); lists the names
    ├── PluginError              a plugin failed to import or register
    ├── MissingDependencyError   an optional dependency or model is absent (also an ImportError)
    ├── InputError               a case or input record is malformed (also a ValueError)
    ├── CaseTimeoutError         a whole case ran past its deadline (also a TimeoutError)
    ├── rules.RuleLimitError     a rule evaluation crossed max_fires, max_facts or timeout_s
    ├── rules.DecisionTableError a decision table broke its hit policy (UNIQUE matched twice)
    └── StageError               a stage failed at run time
        ├── StageTimeoutError    it ran past its timeout
        └── StageOutputError     it returned something that is not a stage output

Catch ``HybridAIError`` to handle all of them; every message says what is wrong, where, and what
to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "CaseTimeoutError",
    "ConfigError",
    "ExpressionError",
    "HybridAIError",
    "InputError",
    "Location",
    "MissingDependencyError",
    "PipelineError",
    "PluginError",
    "Problem",
    "StageError",
    "StageOutputError",
    "StageTimeoutError",
    "UnknownComponentError",
]


@dataclass(frozen=True)
class Location:
    """Where something was written: ``Location("p.yaml", 3, 5)`` renders as ``p.yaml:3:5``."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file or "<string>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True)
class Problem:
    """One finding: ``Problem("unknown stage 'x'", Location("p.yaml", 4), hint="use: a, b")``."""

    message: str
    location: Location = Location()
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class HybridAIError(Exception):
    """The root of every error hybrid-ai raises on purpose."""


class ConfigError(HybridAIError):
    """A configuration file (pipeline, rules, knowledge) is invalid; ``problems`` lists each one."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        details = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + details)


class PipelineError(ConfigError):
    """A pipeline cannot be built; every wiring problem is listed together."""


class ExpressionError(ConfigError):
    """An expression does not parse, or names a variable or function that does not exist."""

    def __init__(self, message: str, location: Location = Location(), hint: str | None = None):
        self.message, self.location, self.hint = message, location, hint
        super().__init__(str(Problem(message, location, hint)))


class UnknownComponentError(HybridAIError, LookupError):
    """A registry has no entry of that name; ``available`` lists the names that exist."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind, self.name = kind, name
        self.available: tuple[str, ...] = tuple(sorted(available))
        listed = ", ".join(self.available) or "none registered"
        super().__init__(
            f"unknown {kind} {name!r}; available: {listed}. "
            "Install or list the plugin that provides it."
        )


class PluginError(HybridAIError):
    """A plugin could not be imported or registered."""


class MissingDependencyError(HybridAIError, ImportError):
    """An optional dependency or model is not installed; the message has the install line."""

    def __init__(self, what: str, install: str) -> None:
        self.install = install
        super().__init__(f"{what} is not installed; install it with: {install}")


class InputError(HybridAIError, ValueError):
    """A case or input record is malformed (which record, which field, and why)."""


class CaseTimeoutError(HybridAIError, TimeoutError):
    """A case ran past the deadline given to ``run``/``arun``; its stages were cancelled."""


class StageError(HybridAIError):
    """A stage failed while running; ``stage`` names it."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"stage {stage!r}: {message}")


class StageTimeoutError(StageError):
    """A stage ran past its ``timeout``."""


class StageOutputError(StageError):
    """A stage returned something other than a list of facts or a ``StageOutput``."""
