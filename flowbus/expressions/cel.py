"""Conditions in CEL (Common Expression Language): side-effect free, no loops, no I/O.

CEL is the expression language of Kubernetes admission policies and Google's IAM
conditions; it cannot run code, read files or loop forever, which is what we want for
expressions written in workflow definitions. Programs are compiled once at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cel


class ExpressionError(ValueError):
    """An expression that does not compile, or fails while it is evaluated."""


class Expression:
    """A compiled CEL expression, evaluated against a scope of named variables."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("expression must be a non-empty string")
        try:
            self._program = cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ExpressionError(_first_line(str(exc))) from None
        self.source = source

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        try:
            return self._program.execute(dict(scope))
        except Exception as exc:  # the binding raises builtins of several kinds
            raise ExpressionError(f"{self.source!r}: {type(exc).__name__}: {exc}") from None

    def test(self, scope: Mapping[str, Any]) -> bool:
        """Evaluate as a condition: the result must be a boolean."""
        result = self.evaluate(scope)
        if not isinstance(result, bool):
            raise ExpressionError(
                f"{self.source!r} gave {type(result).__name__} {result!r}, not a boolean"
            )
        return result

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _first_line(message: str) -> str:
    return " ".join(message.split())[:300]
