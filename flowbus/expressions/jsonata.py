"""JSONata expressions (https://jsonata.org), compiled once, evaluated with a time and depth
bound so that a runaway expression fails instead of holding up the worker."""

from __future__ import annotations

from typing import Any

import jsonata
import orjson

# Generous for any mapping of one event; a loop that never ends fails after this.
TIMEOUT_MS = 500
MAX_DEPTH = 500


class JsonataError(ValueError):
    """An expression that does not compile, fails on the data, or yields no JSON value."""


class JsonataExpression:
    """A compiled JSONata expression over JSON data."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise JsonataError("expression must be a non-empty string")
        try:
            self._compiled = jsonata.Jsonata(source)
        except Exception as exc:
            raise JsonataError(f"{source!r}: {exc}") from None
        self.source = source

    def evaluate(self, data: Any) -> Any:
        """The expression's value for `data` as plain JSON (None when it yields nothing)."""
        # A fresh frame per call: the library starts a frame's clock when the frame is
        # made, so bounds set once at compile time would expire for every later call.
        frame = self._compiled.create_frame()
        frame.set_runtime_bounds(TIMEOUT_MS, MAX_DEPTH)
        try:
            value = self._compiled.evaluate(data, frame)
        except Exception as exc:
            raise JsonataError(f"{self.source!r}: {exc}") from None
        try:
            # Plain lists and dicts, detached from `data`: the result is stored and
            # serialized later, and the library returns its own list type.
            return orjson.loads(orjson.dumps(value))
        except TypeError:
            raise JsonataError(f"{self.source!r}: the result is not a JSON value") from None

    def __repr__(self) -> str:
        return f"JsonataExpression({self.source!r})"
