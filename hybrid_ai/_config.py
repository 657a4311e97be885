"""The pipeline file format: pydantic models for each node kind, and the YAML reader.

A node is one of ``stage``, ``serial``, ``parallel``, ``route``, ``cascade`` or ``use`` (a node
defined once under ``define:``). ``hybrid-ai schema`` prints the JSON schema of this format.

    spec = read_pipeline("examples/support-triage/pipeline.yaml")   # PipelineSpec, or ConfigError
    spec = PipelineSpec(pipeline=serial(stage("embed"), stage("rules", path="r.yaml")))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ._errors import ConfigError, Location, Problem
from ._yaml import LineDict, load_yaml_file, load_yaml_text, location_at

__all__ = [
    "CascadeSpec",
    "Node",
    "ParallelSpec",
    "PipelineSpec",
    "RouteBranch",
    "RouteSpec",
    "SerialSpec",
    "StageSpec",
    "UseSpec",
    "cascade",
    "parallel",
    "read_pipeline",
    "route",
    "serial",
    "stage",
]

OnError = Literal["fail", "skip", "fallback"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    _location: Location = PrivateAttr(default_factory=Location)

    @property
    def location(self) -> Location:
        return self._location


class StageSpec(_Spec):
    """``stage: embed`` with its parameters (``with:``) and its run-time policy."""

    stage: str = Field(description="component name from the stage registry")
    id: str | None = Field(default=None, description="unique id; defaults to the component name")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: float | None = Field(default=None, gt=0, description="seconds before it fails")
    retries: int = Field(default=0, ge=0, le=10)
    backoff: float = Field(default=0.05, ge=0, description="first retry delay, doubled each time")
    on_error: OnError = "fail"
    fallback: StageSpec | None = None
    cache: bool = Field(default=False, description="reuse outputs for identical inputs")
    cost: float | None = Field(default=None, ge=0, description="overrides the stage's own cost")
    threshold: float | None = Field(default=None, ge=0, le=1, description="cascade stop level")
    _instance: Any = PrivateAttr(default=None)

    @property
    def node_id(self) -> str:
        return self.id or self.stage


class SerialSpec(_Spec):
    """``serial: [node, ...]``: run each node in order."""

    serial: list[Node] = Field(min_length=1)


class ParallelSpec(_Spec):
    """``parallel: {merge: union, branches: [...]}``: fan out, then merge at fan-in."""

    class Body(_Spec):
        merge: str | None = Field(default=None, description="fan-in merge policy (required)")
        branches: list[Node] = Field(min_length=2)

    parallel: Body


class RouteBranch(_Spec):
    """``{when: "intent.label == 'x'", then: node}``."""

    when: str
    then: Node
    _when_location: Location | None = PrivateAttr(default=None)

    @property
    def when_location(self) -> Location:
        """Where the condition's text starts, so expression errors point at the token."""
        return self._when_location or self.location


class RouteSpec(_Spec):
    """``route: {branches: [...], default: node}``: the first true condition picks a branch."""

    class Body(_Spec):
        branches: list[RouteBranch] = Field(min_length=1)
        default: Node | None = None

    route: Body


class CascadeSpec(_Spec):
    """``cascade: {budget: 5, stages: [...]}``: cheapest first, stop at a confident stage."""

    class Body(_Spec):
        stages: list[StageSpec] = Field(min_length=1)
        budget: float | None = Field(default=None, ge=0)
        order: Literal["cost", "declared"] = "cost"

    cascade: Body


class UseSpec(_Spec):
    """``use: name``: the node defined under ``define: {name: ...}``."""

    use: str


# Union, not `|`: the members refer to Node before it exists, so the strings must resolve late.
Node = Union[StageSpec, SerialSpec, ParallelSpec, RouteSpec, CascadeSpec, UseSpec]  # noqa: UP007

for _model in (SerialSpec, ParallelSpec.Body, RouteBranch, RouteSpec.Body, CascadeSpec.Body):
    _model.model_rebuild()


class PipelineSpec(_Spec):
    """A whole pipeline file."""

    name: str = "pipeline"
    description: str = ""
    plugins: list[str] = Field(default_factory=list, description="plugin modules to import")
    budget: float | None = Field(default=None, ge=0, description="default cascade budget")
    define: dict[str, Node] = Field(default_factory=dict)
    pipeline: Node
    _file: str | None = PrivateAttr(default=None)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _trust_code: bool = PrivateAttr(default=False)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in ``with:`` blocks are resolved against."""
        return self._base_dir

    @property
    def code_dirs(self) -> tuple[Path, ...]:
        """Folders ``plugins:`` modules may be imported from besides the installed packages:
        the pipeline's own, only when its reader trusted the code there (``trust_code``)."""
        return (self._base_dir,) if self._trust_code else ()


_NODE_KEYS: dict[str, type[_Spec]] = {
    "stage": StageSpec, "serial": SerialSpec, "parallel": ParallelSpec,
    "route": RouteSpec, "cascade": CascadeSpec, "use": UseSpec,
}


class _Reader:
    """Turns a loaded YAML tree into specs, collecting every problem with its location."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def fail(self, message: str, where: Location, hint: str | None = None) -> None:
        self.problems.append(Problem(message, where, hint))

    def where(self, raw: Any) -> Location:
        return getattr(raw, "location", Location(self.file))

    def node(self, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            self.fail("expected a node (a mapping)", self.where(raw), _node_hint())
            return None
        keys = [k for k in _NODE_KEYS if k in raw]
        if len(keys) != 1:
            found = ", ".join(map(str, raw)) or "nothing"
            self.fail(f"a node needs exactly one of its kind keys, found: {found}",
                      self.where(raw), _node_hint())
            return None
        return self.build(_NODE_KEYS[keys[0]], self.children(keys[0], raw), raw)

    def children(self, kind: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        data = dict(raw)
        if kind == "serial":
            data["serial"] = self.node_list(raw["serial"])
        elif kind == "parallel" and isinstance(raw["parallel"], Mapping):
            body = dict(raw["parallel"])
            body["branches"] = self.node_list(body.get("branches"))
            data["parallel"] = self.build(ParallelSpec.Body, body, raw["parallel"])
        elif kind == "route" and isinstance(raw["route"], Mapping):
            data["route"] = self.route_body(raw["route"])
        elif kind == "cascade" and isinstance(raw["cascade"], Mapping):
            body = dict(raw["cascade"])
            body["stages"] = self.node_list(body.get("stages"))
            data["cascade"] = self.build(CascadeSpec.Body, body, raw["cascade"])
        elif kind == "stage" and isinstance(raw.get("fallback"), Mapping):
            data["fallback"] = self.node(raw["fallback"])
        return data

    def route_body(self, raw: Mapping[str, Any]) -> Any:
        body = dict(raw)
        branches = []
        for item in raw.get("branches") or []:
            if isinstance(item, Mapping) and "then" in item:
                item = {**item, "then": self.node(item["then"]), "_raw": item}
            raw_item = item.get("_raw", item) if isinstance(item, Mapping) else item
            branch = self.build(RouteBranch, item, raw_item)
            if branch is not None and isinstance(raw_item, LineDict):
                branch._when_location = raw_item.value_location_of("when")
            branches.append(branch)
        body["branches"] = branches
        if raw.get("default") is not None:
            body["default"] = self.node(raw["default"])
        return self.build(RouteSpec.Body, body, raw)

    def node_list(self, raw: Any) -> Any:
        if not isinstance(raw, list):
            return raw  # pydantic reports the type error at the right place
        return [self.node(item) for item in raw]

    def build(self, model: type[_Spec], data: Any, raw: Any) -> Any:
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if k != "_raw"}
            if _has_failed_child(data, raw):
                return None  # the child already reported its problem
        try:
            spec = model.model_validate(data)
        except ValidationError as exc:
            self.report(exc, raw)
            return None
        spec._location = self.where(raw)
        return spec

    def report(self, exc: ValidationError, raw: Any) -> None:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
            where = location_at(raw, loc, self.where(raw))
            path = ".".join(map(str, loc)) or "node"
            hint = _field_hint(err)
            self.fail(f"{path}: {err['msg']}", where, hint)


def _has_failed_child(data: Mapping[str, Any], raw: Any) -> bool:
    for key, value in data.items():
        if value is None and isinstance(raw, Mapping) and raw.get(key) is not None:
            return True
        if isinstance(value, list) and any(v is None for v in value):
            return True
    return False


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (part.endswith("Spec") or part.startswith("function-"))


def _field_hint(err: Mapping[str, Any]) -> str | None:
    if err["type"] == "extra_forbidden":
        return "remove it, or check its spelling against `hybrid-ai schema`"
    if err["type"] == "literal_error":
        return f"use one of {err.get('ctx', {}).get('expected')}"
    if err["type"] in ("float_parsing", "int_parsing", "bool_parsing", "string_type",
                       "float_type", "int_type", "bool_type", "list_type", "dict_type"):
        return "see the field's type in `hybrid-ai schema`"
    return None


def _node_hint() -> str:
    return "one of: " + ", ".join(_NODE_KEYS)


def read_pipeline(source: str | Path, *, text: str | None = None,
                  base_dir: str | Path | None = None, trust_code: bool = False) -> PipelineSpec:
    """Read a pipeline file (or ``text`` named ``source``); every problem is reported at once.

    Relative paths resolve against ``base_dir``: by default the file's folder, or the current
    directory for ``text``. A pipeline file is data: the modules its ``plugins:`` list names
    are imported from the installed packages, and from ``base_dir`` only with ``trust_code``
    (the caller vouches for the Python files there).
    """
    file = str(source)
    raw = load_yaml_text(text, file) if text is not None else load_yaml_file(source)
    reader = _Reader(file)
    if not isinstance(raw, LineDict):
        raise ConfigError(f"{file} must hold a mapping with a `pipeline:` key",
                          [Problem("not a mapping", Location(file, 1))])
    data = dict(raw)
    if "pipeline" in raw:
        data["pipeline"] = reader.node(raw["pipeline"])
    if isinstance(raw.get("define"), Mapping):
        data["define"] = {k: reader.node(v) for k, v in raw["define"].items()}
    spec = _finish(reader, data, raw, file)
    spec._file, spec._trust_code = file, trust_code
    if base_dir is not None:
        spec._base_dir = Path(base_dir).resolve()
    else:
        spec._base_dir = Path(file).resolve().parent if text is None else Path.cwd()
    return spec


def _finish(reader: _Reader, data: dict[str, Any], raw: LineDict, file: str) -> PipelineSpec:
    if reader.problems:
        raise ConfigError(f"{file} has {len(reader.problems)} problem(s)", reader.problems)
    spec = reader.build(PipelineSpec, data, raw)
    if reader.problems or spec is None:
        raise ConfigError(f"{file} has {len(reader.problems)} problem(s)", reader.problems)
    assert isinstance(spec, PipelineSpec)
    return spec


def stage(component: str | Any, *, id: str | None = None, **params: Any) -> StageSpec:
    """``stage("embed", batch_size=16)`` or ``stage(MyStage(), id="mine", timeout=2.0)``.

    Policy keywords (timeout, retries, backoff, on_error, fallback, cache, cost, threshold) set the
    policy; every other keyword is a parameter of the component.
    """
    policy = {k: params.pop(k) for k in list(params) if k in _POLICY_KEYS}
    if isinstance(component, str):
        return StageSpec.model_validate({"stage": component, "id": id, "with": params, **policy})
    spec = StageSpec(stage=type(component).__name__, id=id, **policy)
    spec._instance = component
    return spec


_POLICY_KEYS = frozenset(StageSpec.model_fields) - {"stage", "id", "with_"}


def serial(*nodes: Node) -> SerialSpec:
    """``serial(stage("a"), stage("b"))``."""
    return SerialSpec(serial=list(nodes))


def parallel(*branches: Node, merge: str) -> ParallelSpec:
    """``parallel(stage("a"), stage("b"), merge="union")``."""
    return ParallelSpec(parallel=ParallelSpec.Body(merge=merge, branches=list(branches)))


def route(*branches: tuple[str, Node], default: Node | None = None) -> RouteSpec:
    """``route(("fields.amount > 100", stage("review")), default=stage("auto"))``."""
    items = [RouteBranch(when=cond, then=node) for cond, node in branches]
    return RouteSpec(route=RouteSpec.Body(branches=items, default=default))


def cascade(*stages: StageSpec, budget: float | None = None) -> CascadeSpec:
    """``cascade(stage("tfidf", threshold=0.8), stage("llm"), budget=5)``."""
    return CascadeSpec(cascade=CascadeSpec.Body(stages=list(stages), budget=budget))
