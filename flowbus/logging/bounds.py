"""Bounds on what one log line may render: fields, containers, tracebacks, URLs, secrets."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

_MAX_FIELDS = 64
_MAX_DEPTH = 6  # nesting rendered inside one field; deeper levels show as `[…]`
_TRACEBACK_FRAMES = 20
_TRACEBACK_LINES = 16  # the traceback budget, in multiples of value_chars
_TRACEBACK_KEYS = ("exception", "stack", "stack_info")

_SECRET_WORDS = (
    *("token", "password", "passwd", "secret", "authorization", "jwt"),
    *("api_key", "apikey", "cookie", "credential"),
)
_MASK = "***"

_QUERY = re.compile(r"\?([^\s?#\"'<>]*=[^\s#\"'<>]*)")
_PASSWORD = re.compile(r"(//[^/\s:@]*):[^/\s@]*@")
# Shown as their Unicode pictures (newline as ␊, escape as ␛): printable, and left alone
# by the console renderer's quoting.
_CONTROL = {code: chr(0x2400 + code) for code in range(0x20) if code != ord("\t")}


class BoundedFields:
    """structlog processor: every field bounded, secrets masked, exceptions as short text."""

    def __init__(self, value_chars: int, *, escape_control: bool = False) -> None:
        self.value_chars = value_chars
        self.traceback_chars = _TRACEBACK_LINES * value_chars
        self.escape_control = escape_control

    def __call__(
        self, _logger: object, _method: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        exc_info = event_dict.pop("exc_info", None)
        tracebacks = {key: event_dict.pop(key) for key in _TRACEBACK_KEYS if key in event_dict}
        bounded: structlog.types.EventDict = {}
        for key, value in itertools.islice(event_dict.items(), _MAX_FIELDS):
            name = self._text(str(key))
            bounded[name] = _MASK if _is_secret(name) else self._value(name, value)
        if len(event_dict) > _MAX_FIELDS:
            bounded["fields_dropped"] = len(event_dict) - _MAX_FIELDS
        for key, text in tracebacks.items():
            bounded[key] = self._traceback_text(str(text).splitlines())
        if exception := exception_of(exc_info):
            lines = format_exception(exception, self.value_chars, self.traceback_chars)
            bounded["exception"] = self._traceback_text(lines)
        return bounded

    def _value(self, key: str, value: object) -> object:
        if key == "headers":
            value = _header_names(value)
        if value is None or isinstance(value, bool | float):
            return value
        if isinstance(value, int) and value.bit_length() <= 64:
            return value
        if isinstance(value, str):
            return self._text(value)
        rendering = _Rendering(self.value_chars)
        rendering.add_value(value, 0)
        if rendering.exact and isinstance(value, list | tuple | dict):
            return value
        return self._text(rendering.text())

    def _text(self, text: str) -> str:
        cut = cut_text(text, self.value_chars)
        return cut.translate(_CONTROL) if self.escape_control else cut

    def _traceback_text(self, lines: list[str]) -> str:
        kept: list[str] = []
        size = 0
        for line in lines:
            line = self._text(line.rstrip("\n"))
            size += len(line) + 1
            if size > self.traceback_chars:
                kept.append(f"…(traceback cut at {self.traceback_chars} chars)")
                break
            kept.append(line)
        return "\n".join(kept)


def format_exception(exception: BaseException, line_chars: int, total_chars: int) -> list[str]:
    """The innermost frames of `exception`'s traceback as plain lines, without locals.

    Each line is cut to `line_chars`, URLs in them redacted, and lines stop once
    `total_chars` are reached; the cost does not depend on the exception's contents.
    """
    depth = sum(1 for _ in traceback.walk_tb(exception.__traceback__))
    lines: list[str] = []
    if depth > _TRACEBACK_FRAMES:
        lines.append(f"(innermost {_TRACEBACK_FRAMES} of {depth} frames)")
    size = 0
    summary = traceback.TracebackException.from_exception(
        exception, limit=-_TRACEBACK_FRAMES, max_group_width=5, max_group_depth=3
    )
    for chunk in summary.format():
        for line in chunk.splitlines():
            lines.append(cut_text(line, line_chars))
            size += len(lines[-1]) + 1
        if size > total_chars:
            break
    return lines


def cut_text(text: str, limit: int) -> str:
    """`text` at most `limit` characters long, redacted, with a marker of what was cut."""
    rest = len(text) - limit
    if rest > 0:
        return f"{redact_urls(text[:limit])}…(+{rest} chars)"
    return redact_urls(text)


def redact_urls(text: str) -> str:
    """Mask the values of query strings and the passwords of URLs found in `text`."""
    if "?" in text:
        text = _QUERY.sub(_masked_query, text)
    if "@" in text:
        text = _PASSWORD.sub(rf"\1:{_MASK}@", text)
    return text


def _masked_query(match: re.Match[str]) -> str:
    pairs = (pair.partition("=") for pair in match.group(1).split("&"))
    return "?" + "&".join(f"{name}={_MASK}" if eq else name for name, eq, _ in pairs)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _header_names(headers: object) -> object:
    if isinstance(headers, Mapping):
        return {name: _MASK for name in headers}
    if isinstance(headers, list | tuple):
        return [pair[0] if isinstance(pair, tuple | list) and pair else _MASK for pair in headers]
    return _MASK


def exception_of(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info:
        return sys.exc_info()[1]
    return None


class _Rendering:
    """A repr-like rendering of a value that stops after `budget` characters.

    It walks containers item by item (dicts unsorted) to at most `_MAX_DEPTH` levels, so
    the cost depends on the budget, not on the value. `exact` says whether the text is
    the whole value with nothing cut, masked or redacted.
    """

    def __init__(self, budget: int) -> None:
        self.left = budget
        self.parts: list[str] = []
        self.exact = True

    def text(self) -> str:
        return "".join(self.parts)

    def add(self, text: str) -> bool:
        if len(text) > self.left:
            self.parts.append(text[: self.left])
            self.left = 0
            self.exact = False
            return False
        self.parts.append(text)
        self.left -= len(text)
        return True

    def add_value(self, value: object, depth: int) -> bool:
        if isinstance(value, str | bytes):
            return self._add_string(value)
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4096:
            self.exact = False
            return self.add(f"<int of {value.bit_length()} bits>")
        if isinstance(value, Mapping):
            return self._add_items(value.items(), "{", "}", depth, mapping=True)
        if isinstance(value, list | tuple | set | frozenset):
            opener, closer = _BRACKETS.get(type(value), (f"{type(value).__name__}([", "])"))
            return self._add_items(value, opener, closer, depth, mapping=False)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
            opener = f"{type(value).__name__}("
            return self._add_items(fields, opener, ")", depth, mapping=True, keyword=True)
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
        return self.add(text)

    def _add_string(self, value: str | bytes) -> bool:
        head = value[: self.left]
        text = repr(head)
        if isinstance(head, str):
            redacted = redact_urls(text)
            self.exact = self.exact and redacted == text
            text = redacted
        if len(head) < len(value):
            self.exact = False
        return self.add(text) and len(head) == len(value)

    def _add_items(
        self,
        items: Iterable[Any],
        opener: str,
        closer: str,
        depth: int,
        *,
        mapping: bool,
        keyword: bool = False,
    ) -> bool:
        if depth >= _MAX_DEPTH:
            self.exact = False
            return self.add(f"{opener}…{closer}")
        if not self.add(opener):
            return False
        for index, item in enumerate(items):
            if index and not self.add(", "):
                return False
            if mapping:
                key, value = item
                if keyword and not self.add(f"{key}="):
                    return False
                if not keyword and not (self.add_value(key, depth + 1) and self.add(": ")):
                    return False
                if isinstance(key, str) and _is_secret(key):
                    self.exact = False
                    value = _MASK
            else:
                value = item
            if not self.add_value(value, depth + 1):
                return False
        return self.add(closer)


_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}


class BoundedArgs(logging.Filter):
    """Cut the string and container arguments of stdlib records before they are formatted.

    Third-party libraries log with `%s` arguments; a payload among them would otherwise be
    rendered in full before any field limit applies.
    """

    def __init__(self, value_chars: int) -> None:
        super().__init__()
        self.value_chars = value_chars

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._bounded(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: self._bounded(arg) for key, arg in record.args.items()}
        return True

    def _bounded(self, arg: object) -> object:
        if isinstance(arg, str):
            return cut_text(arg, self.value_chars)
        if isinstance(arg, bytes | Mapping | list | tuple | set | frozenset):
            rendering = _Rendering(self.value_chars)
            rendering.add_value(arg, 0)
            return arg if rendering.exact else cut_text(rendering.text(), self.value_chars)
        return arg
