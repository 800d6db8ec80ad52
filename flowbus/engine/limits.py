"""Bounds on what a step may produce, given to the engine as data by the shell.

A step whose output, whose variables or whose published event would pass a bound fails
with the error type `PayloadTooLarge` (routable by `onFailure` like any other), so no
outcome event the broker would refuse is ever asked for. It is not retried: the same
input gives the same output, unless the step's `retryPolicy.retryOn` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flowbus.engine.state import ErrorInfo
from flowbus.limits import encoded_size

PAYLOAD_TOO_LARGE = "PayloadTooLarge"
# Room left in an event for its envelope and identifiers (CloudEvents attributes,
# instance, workflow and step ids, metadata): the payload may use the rest.
ENVELOPE_ALLOWANCE = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """The byte bounds of step outputs, instance variables and events (compact JSON)."""

    max_step_output_bytes: int = 256 * 1024
    max_variables_bytes: int = 512 * 1024
    max_event_bytes: int = 900_000
    workflow_task_timeout: timedelta = timedelta(seconds=60)
    """How long a code-first workflow task may go without a result before it is sent
    again (`worker.workflow_task_timeout`): a bound in time, given as data like the rest."""

    @property
    def max_event_payload_bytes(self) -> int:
        return max(0, self.max_event_bytes - ENVELOPE_ALLOWANCE)

    def check_output(self, step_id: str, output: Any) -> ErrorInfo | None:
        """`PayloadTooLarge` if a step's output passes its bound or would not fit in the
        `flowbus.step.completed` event that carries it."""
        size = encoded_size(output)
        if size > self.max_step_output_bytes:
            return too_large(
                step_id, "the output", size, self.max_step_output_bytes, "max_step_output_bytes"
            )
        if size > self.max_event_payload_bytes:
            return too_large(
                step_id,
                "the flowbus.step.completed event of the output",
                size,
                self.max_event_payload_bytes,
                "max_event_bytes",
            )
        return None

    def check_variables(self, step_id: str | None, variables: dict[str, Any]) -> ErrorInfo | None:
        size = encoded_size(variables)
        if size > self.max_variables_bytes:
            return too_large(
                step_id, "the variables", size, self.max_variables_bytes, "max_variables_bytes"
            )
        return None

    def check_event(self, step_id: str | None, event_type: str, payload: Any) -> ErrorInfo | None:
        """`PayloadTooLarge` if an event the step publishes would pass `max_event_bytes`."""
        size = encoded_size(payload)
        if size > self.max_event_payload_bytes:
            return too_large(
                step_id,
                f"the {event_type} event",
                size,
                self.max_event_payload_bytes,
                "max_event_bytes",
            )
        return None


DEFAULT_LIMITS = Limits()


def too_large(step_id: str | None, what: str, size: int, limit: int, setting: str) -> ErrorInfo:
    where = f"step {step_id!r}" if step_id is not None else "the instance"
    return ErrorInfo(
        type=PAYLOAD_TOO_LARGE,
        message=f"{what} of {where} is {size} bytes, over the limit of {limit} (limits.{setting})",
        step_id=step_id,
        details={"bytes": size, "limit": limit, "setting": f"limits.{setting}"},
    )
