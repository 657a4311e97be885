"""Plugin discovery and the registries built from the registration hooks.

    plugins = Plugins.default()            # built-ins + entry points of group "hybrid_ai"
    plugins = plugins.with_modules(["my_pkg.plugin"])   # plus an explicit list
    plugins.stages.get("embed")            # a miss lists the names that exist
"""

from __future__ import annotations

import contextvars
import importlib
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar

import pluggy

from . import hookspecs
from ._errors import PluginError, UnknownComponentError

__all__ = ["PluginInfo", "Plugins", "Registry", "active_plugins"]

T = TypeVar("T")
ENTRY_POINT_GROUP = "hybrid_ai"
BUILTINS = "hybrid_ai.builtins"
# Set while a graph is built, so components that compile rules see the pipeline's own plugins.
_ACTIVE: contextvars.ContextVar[Plugins | None] = contextvars.ContextVar("hybrid_ai_plugins",
                                                                         default=None)


def active_plugins() -> Plugins:
    """The plugins of the graph being built, else the process-wide default."""
    return _ACTIVE.get() or Plugins.default()


class Registry(Generic[T]):
    """Named components of one kind: ``registry.get(name)``, ``name in registry``, ``names()``."""

    def __init__(self, kind: str, entries: Mapping[str, T], owners: Mapping[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)
        self._owners = dict(owners)

    def get(self, name: str) -> T:
        """The entry called ``name``; UnknownComponentError lists the names that exist."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponentError(self.kind, name, self._entries) from None

    def owner(self, name: str) -> str:
        """The plugin that registered ``name``."""
        return self._owners[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, with the distribution that provided it (None for local ones)."""

    name: str
    distribution: str | None
    version: str | None
    provides: Mapping[str, tuple[str, ...]]


class Plugins:
    """A pluggy manager for project ``hybrid_ai`` plus the registries its hooks fill."""

    _default: Plugins | None = None
    _default_lock = threading.Lock()

    def __init__(self, *, entry_points: bool = True, modules: Sequence[str] = (),
                 objects: Sequence[object] = (), search: Sequence[Path] = (),
                 beside: Path | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        from . import _builtins

        self.pm.register(_builtins, name=BUILTINS)
        if entry_points:
            self._load_entry_points()
        self.modules = tuple(modules)
        for module in self.modules:
            self._register_module(module, import_plugin(module, search, beside))
        for obj in objects:
            self.pm.register(obj, name=_object_name(obj, self.pm))
        self.hook = self.pm.hook

    def _register_module(self, module: str, plugin: object) -> None:
        if self.pm.is_registered(plugin):  # also installed through its entry point
            return
        self.pm.register(plugin, name=module)
        if not self.pm.get_hookcallers(plugin):
            self.pm.unregister(plugin)
            raise PluginError(
                f"module {module!r} holds no hybrid-ai hooks (functions named hybrid_ai_* "
                "marked @hookimpl); check the name in `plugins:` or -p, or see docs/plugins.md")

    @classmethod
    def default(cls) -> Plugins:
        """The process-wide manager: built-ins and entry points, loaded once."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def with_modules(self, modules: Sequence[str], objects: Sequence[object] = (),
                     search: Sequence[Path] = (), *, beside: Path | None = None) -> Plugins:
        """A new manager with these plugin modules and objects added (self is unchanged);
        ``search`` lists trusted folders where the modules may also live, ``beside`` the
        pipeline's folder, named in the error when a module is there but not trusted."""
        if not modules and not objects:
            return self
        return Plugins(modules=(*self.modules, *modules), objects=objects, search=search,
                       beside=beside)

    def _load_entry_points(self) -> None:
        try:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            raise PluginError(
                f"a plugin of entry-point group {ENTRY_POINT_GROUP!r} failed to load: {exc!r}; "
                "fix or uninstall that package (`hybrid-ai plugins` lists what is installed)"
            ) from exc

    def _registry(self, kind: str, hook: Callable[..., list[Any]]) -> Registry[Any]:
        entries: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for impl in reversed(hook.get_hookimpls()):  # type: ignore[attr-defined]
            provided = impl.function() or {}
            for name, obj in provided.items():
                if name in entries:
                    raise PluginError(
                        f"{kind} {name!r} is registered by both {owners[name]!r} and "
                        f"{impl.plugin_name!r}; rename one or uninstall one of the plugins"
                    )
                entries[name], owners[name] = obj, impl.plugin_name
        return Registry(kind, entries, owners)

    @cached_property
    def stages(self) -> Registry[Callable[..., Any]]:
        return self._registry("stage", self.hook.hybrid_ai_stages)

    @cached_property
    def rule_functions(self) -> Registry[Callable[..., Any]]:
        return self._registry("rule function", self.hook.hybrid_ai_rule_functions)

    @cached_property
    def fact_types(self) -> Registry[type[Any]]:
        return self._registry("fact type", self.hook.hybrid_ai_fact_types)

    @cached_property
    def merge_policies(self) -> Registry[Callable[..., Any]]:
        return self._registry("merge policy", self.hook.hybrid_ai_merge_policies)

    @cached_property
    def fusion_strategies(self) -> Registry[Callable[..., Any]]:
        return self._registry("fusion strategy", self.hook.hybrid_ai_fusion_strategies)

    @cached_property
    def kg_loaders(self) -> Registry[Callable[..., Any]]:
        return self._registry("knowledge-graph loader", self.hook.hybrid_ai_kg_loaders)

    @cached_property
    def llm_backends(self) -> Registry[Callable[..., Any]]:
        return self._registry("LLM backend", self.hook.hybrid_ai_llm_backends)

    @cached_property
    def cli_commands(self) -> Registry[Any]:
        return self._registry("CLI command", self.hook.hybrid_ai_cli_commands)

    def info(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution and what it provides."""
        dists = {id(p): d for p, d in self.pm.list_plugin_distinfo()}
        return [self._info(name, plugin, dists.get(id(plugin)))
                for name, plugin in self.pm.list_name_plugin()]

    def _info(self, name: str, plugin: object, dist: Any) -> PluginInfo:
        provides = {kind: tuple(n for n in reg if reg.owner(n) == name)
                    for kind, reg in self._all_registries()}
        if dist is None and name == BUILTINS:
            from importlib.metadata import version

            return PluginInfo(name, "hybrid-ai", version("hybrid-ai"),
                              {k: v for k, v in provides.items() if v})
        return PluginInfo(
            name=name,
            distribution=dist.project_name if dist is not None else None,
            version=dist.version if dist is not None else None,
            provides={k: v for k, v in provides.items() if v},
        )

    def _all_registries(self) -> Iterable[tuple[str, Registry[Any]]]:
        return [("stages", self.stages), ("rule functions", self.rule_functions),
                ("fact types", self.fact_types), ("merge policies", self.merge_policies),
                ("fusion strategies", self.fusion_strategies), ("kg loaders", self.kg_loaders),
                ("llm backends", self.llm_backends), ("cli commands", self.cli_commands)]


_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


def import_plugin(module: str, search: Sequence[Path] = (), beside: Path | None = None) -> object:
    """Import a plugin module named in a pipeline's ``plugins:`` list or on the command line.

    The module is looked up on ``sys.path`` first, then in ``search`` (the pipeline's folder,
    when its reader trusted the code there), so a plugin kept beside its pipeline works without
    PYTHONPATH. Whatever goes wrong while importing it is a PluginError naming the module.
    """
    if not _MODULE_NAME.match(module):
        raise PluginError(f"plugin {module!r} is not a module name; write a dotted Python "
                          "module name such as `my_plugin` or `package.plugin`, not a path")
    try:
        return _import(module)
    except ImportError as exc:
        top_missing = isinstance(exc, ModuleNotFoundError) and exc.name == module.split(".")[0]
        if not top_missing:
            raise PluginError(_not_importable(module, exc)) from exc
        if not search:
            raise PluginError(_not_importable(module, exc, beside)) from exc
    return _import_from(module, search)


def _import(module: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise
    except Exception as exc:  # the module's own code failed: say which module, and how
        raise PluginError(f"plugin module {module!r} failed while importing: "
                          f"{type(exc).__name__}: {exc}; fix the module") from exc


def _import_from(module: str, search: Sequence[Path]) -> object:
    added = [str(p) for p in search if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        return _import(module)
    except ImportError as exc:
        raise PluginError(_not_importable(module, exc)) from exc
    finally:
        for entry in added:
            sys.path.remove(entry)


def _not_importable(module: str, exc: ImportError, beside: Path | None = None) -> str:
    top = module.split(".")[0]
    if beside is not None and ((beside / f"{top}.py").is_file() or (beside / top).is_dir()):
        return (f"plugin module {module!r} is beside the pipeline file ({beside}) but not "
                "installed; a pipeline file is data, so the code beside it is imported only "
                "when you trust it: pass --trust-code (CLI) or trust_code=True "
                "(Engine.from_yaml / read_pipeline), or install the module")
    return (f"plugin module {module!r} could not be imported: {exc}; check the name and that its "
            "package is installed (or on PYTHONPATH)")


def _object_name(obj: object, pm: pluggy.PluginManager) -> str:
    """A readable name for a plugin object (its class), unique within the manager."""
    base = obj.__name__ if isinstance(obj, types.ModuleType) else \
        f"{type(obj).__module__}.{type(obj).__qualname__}"
    name, n = base, 1
    while pm.has_plugin(name):
        n += 1
        name = f"{base}#{n}"
    return name
