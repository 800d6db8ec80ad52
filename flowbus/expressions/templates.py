"""`{{ path }}` templates in action configs: substitution only, never code.

A string that is exactly one `{{ path }}` is replaced by the value at that path with its
JSON type kept (a number stays a number, an object stays an object); placeholders inside
longer strings are rendered as text (objects and lists as JSON). A path is a dot path with
optional list indexes, e.g. `input.items[0].sku`, resolved against the scope
(`input`, `variables`, `steps`, `trigger`, `instance`). A missing path renders as null
(or the empty string inside text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


class TemplateError(ValueError):
    """A template with a malformed placeholder."""


def _compile_path(source: str) -> tuple[str | int, ...]:
    if not source:
        raise TemplateError("empty placeholder {{ }}")
    parts: list[str | int] = []
    for segment in source.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise TemplateError(f"bad path {source!r} in placeholder (at {segment!r})")
        parts.append(match.group(1))
        parts.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(parts)


def _resolve(path: tuple[str | int, ...], scope: Mapping[str, Any]) -> Any:
    value: Any = scope
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return None
            value = value[part]
        else:
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


class _Node:
    __slots__ = ()

    def render(self, scope: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class _Constant(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def render(self, scope: Mapping[str, Any]) -> Any:
        return self.value


class _Whole(_Node):
    __slots__ = ("path",)

    def __init__(self, path: tuple[str | int, ...]) -> None:
        self.path = path

    def render(self, scope: Mapping[str, Any]) -> Any:
        return _resolve(self.path, scope)


class _Text(_Node):
    __slots__ = ("pieces",)

    def __init__(self, pieces: list[str | tuple[str | int, ...]]) -> None:
        self.pieces = pieces

    def render(self, scope: Mapping[str, Any]) -> Any:
        return "".join(
            piece if isinstance(piece, str) else _as_text(_resolve(piece, scope))
            for piece in self.pieces
        )


class _Object(_Node):
    __slots__ = ("items",)

    def __init__(self, items: list[tuple[str, _Node]]) -> None:
        self.items = items

    def render(self, scope: Mapping[str, Any]) -> Any:
        return {key: node.render(scope) for key, node in self.items}


class _List(_Node):
    __slots__ = ("nodes",)

    def __init__(self, nodes: list[_Node]) -> None:
        self.nodes = nodes

    def render(self, scope: Mapping[str, Any]) -> Any:
        return [node.render(scope) for node in self.nodes]


def _literal(text: str, whole: str) -> str:
    if "{{" in text:
        raise TemplateError(f"unclosed placeholder in {whole!r}")
    return text


def _compile(value: Any, where: str) -> _Node:
    if isinstance(value, str):
        matches = list(_PLACEHOLDER.finditer(value))
        if not matches:
            if "{{" in value:
                prefix = f"{where}: " if where else ""
                raise TemplateError(f"{prefix}unclosed placeholder in {value!r}")
            return _Constant(value)
        try:
            if len(matches) == 1 and matches[0].span() == (0, len(value)):
                return _Whole(_compile_path(matches[0].group(1)))
            pieces: list[str | tuple[str | int, ...]] = []
            cursor = 0
            for match in matches:
                if match.start() > cursor:
                    pieces.append(_literal(value[cursor : match.start()], value))
                pieces.append(_compile_path(match.group(1)))
                cursor = match.end()
            if cursor < len(value):
                pieces.append(_literal(value[cursor:], value))
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc}" if where else str(exc)) from None
        return _Text(pieces)
    if isinstance(value, Mapping):
        return _Object(
            [(str(k), _compile(v, f"{where}.{k}" if where else str(k))) for k, v in value.items()]
        )
    if isinstance(value, list):
        return _List([_compile(v, f"{where}[{i}]") for i, v in enumerate(value)])
    return _Constant(value)


class Template:
    """Any JSON value whose strings may hold `{{ path }}` placeholders, compiled once."""

    __slots__ = ("_root", "source")

    def __init__(self, source: Any, where: str = "") -> None:
        self.source = source
        self._root = _compile(source, where)

    def render(self, scope: Mapping[str, Any]) -> Any:
        return self._root.render(scope)

    @property
    def is_constant(self) -> bool:
        return isinstance(self._root, _Constant)

    def __repr__(self) -> str:
        return f"Template({self.source!r})"
