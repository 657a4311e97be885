"""Safe YAML loading that remembers where each key and item was written.

    doc = load_yaml_text(text, "pipeline.yaml")
    doc.location_of("stage")     # Location("pipeline.yaml", 4, 7)

Only PyYAML's safe loader (``CSafeLoader`` when libyaml is there, else ``SafeLoader``) is
used: configuration is data, never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ._errors import ConfigError, Location, Problem
from ._files import read_text

__all__ = ["LineDict", "LineList", "load_yaml_file", "load_yaml_text", "location_at"]


class LineDict(dict[str, Any]):
    """A mapping that knows its own location and each key's."""

    location: Location
    key_locations: dict[str, Location]
    value_locations: dict[str, Location]

    def location_of(self, key: str) -> Location:
        return self.key_locations.get(key, self.location)

    def value_location_of(self, key: str) -> Location:
        """Where the value's own text starts (inside quotes; the line after ``>``/``|``)."""
        return self.value_locations.get(key, self.location_of(key))


class LineList(list[Any]):
    """A sequence that knows its own location and each item's."""

    location: Location
    item_locations: list[Location]


def _loc(node: yaml.Node, file: str) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _text_start(node: yaml.Node, file: str) -> Location:
    mark = node.start_mark
    style = getattr(node, "style", None)
    if style in ('"', "'"):
        return Location(file, mark.line + 1, mark.column + 2)
    if style in (">", "|"):
        # Block scalars start on the next line; their indentation is not kept by the parser.
        return Location(file, mark.line + 2, None)
    return Location(file, mark.line + 1, mark.column + 1)


# libyaml's parser with the same safe constructors when PyYAML was built with it: 5-10x faster
# on large rule files, and its nodes carry the same line/column marks.
_SAFE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _loader_for(file: str) -> type[yaml.SafeLoader]:
    class _Loader(_SAFE):  # type: ignore[valid-type,misc]
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
        result = LineDict()
        result.location, result.key_locations, result.value_locations = _loc(node, file), {}, {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = _key(loader, key_node, file)
            if key in result:  # YAML would keep the last silently: a lost `when:` or `with:`
                raise _problem(file, f"duplicate key {key!r} (first at "
                               f"{result.key_locations[str(key)]})", _loc(key_node, file),
                               "remove one of them, or merge what they hold")
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_locations[str(key)] = _loc(key_node, file)
            result.value_locations[str(key)] = _text_start(value_node, file)
        return result

    def sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
        result = LineList(loader.construct_object(item, deep=True) for item in node.value)
        result.location = _loc(node, file)
        result.item_locations = [_loc(item, file) for item in node.value]
        return result

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, sequence)
    return _Loader


def _key(loader: yaml.SafeLoader, node: yaml.Node, file: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise _problem(file, "a mapping key must be plain text, not a list or mapping",
                       _loc(node, file), "write the key as a word, e.g. `name:`")
    return loader.construct_object(node, deep=True)


def _problem(file: str, message: str, where: Location, hint: str) -> ConfigError:
    return ConfigError(f"{file} is not valid YAML", [Problem(message, where, hint)])


def load_yaml_text(text: str, file: str = "<string>") -> Any:
    """Parse YAML text; a syntax error becomes a ConfigError with file:line:col."""
    loader = _loader_for(file)(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = Problem(f"YAML syntax error: {exc.problem}", where, _hint(exc))
        raise ConfigError(f"{file} is not valid YAML", [problem]) from None
    finally:
        loader.dispose()


def _hint(exc: yaml.MarkedYAMLError) -> str:
    if isinstance(exc, yaml.constructor.ConstructorError):
        return "tags such as !!python/object are not allowed in data files; remove the tag"
    if "another document" in str(exc.problem):
        return "one document per file: remove the `---` line and what follows, or split it"
    return "fix the indentation/quotes"


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file (UTF-8)."""
    path = Path(path)
    return load_yaml_text(read_text(path), str(path))


def location_at(root: Any, loc: tuple[int | str, ...], default: Location) -> Location:
    """The location of the item at a pydantic error ``loc`` path inside a loaded document."""
    best, node = default, root
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            best, node = node.location_of(part), node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and part < len(node):
            best, node = node.item_locations[part], node[part]
        else:
            break
    return best
