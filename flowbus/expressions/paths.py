"""JMESPath queries (a superset of plain dot paths such as `trigger.data.amount`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions


class PathError(ValueError):
    """A query that does not compile or fails on the data."""


class Path:
    """A compiled JMESPath query."""

    __slots__ = ("_parsed", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise PathError("path must be a non-empty string")
        try:
            self._parsed = jmespath.compile(source)
        except jmespath.exceptions.JMESPathError as exc:
            raise PathError(f"{source!r}: {' '.join(str(exc).split())}") from None
        self.source = source

    def search(self, data: Mapping[str, Any] | Any) -> Any:
        try:
            return self._parsed.search(data)
        except jmespath.exceptions.JMESPathError as exc:
            raise PathError(f"{self.source!r}: {exc}") from None

    def __repr__(self) -> str:
        return f"Path({self.source!r})"
