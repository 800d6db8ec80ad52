"""What the workflow context raises and reports: step errors, divergence from the
history, and the internal signals that end a task."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Sends one result record (event type, data) and returns once the broker has it."""

STEP_RESULT = "flowbus.result.step"
WORKFLOW_RESULT = "flowbus.result.workflow"
ACTIVITY_RESULT = "flowbus.result.activity"


class StepError(Exception):
    """A step or wait that failed, as recorded: the same on the first run and on replay.

    `type` is the class name of the original exception (`CardDeclined`), `message` its
    text; on the first run the original exception is the `__cause__`.
    """

    def __init__(self, name: str, type: str, message: str) -> None:
        super().__init__(f"step {name!r} failed: {type}: {message}")
        self.name = name
        self.type = type
        self.message = message


class NonDeterminism(BaseException):
    """The code reached another step or wait than the history records at that position.

    A `BaseException`, so workflow code catching `Exception` cannot hide it; the task ends
    with outcome `nondeterministic` and flowbus holds the instance.
    """

    def __init__(self, seq: int, expected: str, found: str) -> None:
        super().__init__(f"at position {seq} the history has {expected}, the code reached {found}")
        self.seq = seq
        self.expected = expected
        self.found = found


class _Suspend(BaseException):
    """Ends the task at a wait that has not ended; caught by the runner."""

    def __init__(self, wait: dict[str, Any]) -> None:
        super().__init__(f"waiting for {wait['kind']} {wait['name']!r}")
        self.wait = wait


class _Halt(BaseException):
    """A cancelled (or timed out) replay reached code past the history: nothing more runs."""


@dataclass
class _Compensation:
    name: str
    seq: int
    fn: Callable[[Any], Any]
    result: Any


def error_document(exc: BaseException) -> dict[str, Any]:
    """`{type, message}` for an exception, as result records carry it."""
    if isinstance(exc, StepError):
        return {"type": exc.type, "message": exc.message}
    return {"type": type(exc).__name__, "message": str(exc)}
