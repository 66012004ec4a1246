"""YAML read with a position for every value, so errors can say `FILE:LINE:COL`.

PyYAML's safe loader forgets where things were and silently keeps the last of two equal
keys; both would make a broken pack hard to fix, so we compose nodes ourselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from policies.errors import PolicyError

Path = tuple[str | int, ...]


@dataclass
class Located:
    """A plain Python value (dict/list/scalar) plus the line and column of each path in it."""

    file: str
    value: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The closest known position to `path` (the key itself when `key`)."""
        if key and path in self.key_positions:
            return self.key_positions[path]
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.positions:
                return self.positions[path[:depth]]
        return (1, 1)

    def error(self, path: Path, message: str, *, key: bool = False) -> PolicyError:
        line, col = self.where(path, key=key)
        return PolicyError(self.file, line, message, col)


def load_located(text: str, file: str) -> Located:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or exc.context or "invalid YAML"
        raise PolicyError(file, line, f"YAML syntax error: {problem}", col) from None
    except yaml.YAMLError as exc:
        raise PolicyError(file, None, f"YAML error: {exc}") from None
    if node is None:
        raise PolicyError(file, 1, "the file is empty", 1)
    located = Located(file=file, value=None)
    located.value = _convert(node, (), located)
    return located


def _convert(node: yaml.Node, path: Path, located: Located) -> Any:
    located.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in _pairs(node, located):
            key = str(key_node.value)  # as written: YAML 1.1 would read the key `on:` as True
            child = (*path, key)
            located.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                raise located.error(child, f"duplicate key {key!r}", key=True)
            result[key] = _convert(value_node, child, located)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, index), located) for index, item in enumerate(node.value)]
    return _scalar(node)


def _pairs(node: yaml.MappingNode, located: Located) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            raise PolicyError(located.file, line, "mapping keys must be plain names", col)
        yield key_node, value_node


def _scalar(node: yaml.Node) -> Any:
    if node.tag == "tag:yaml.org,2002:timestamp":
        return node.value  # keep "2026-11-28T10:00:00Z" as written; we parse times ourselves
    # The SafeLoader's resolver gives ints, floats, bools and nulls their YAML 1.1 meaning.
    constructor = yaml.SafeLoader("")
    return constructor.construct_object(node, deep=True)
