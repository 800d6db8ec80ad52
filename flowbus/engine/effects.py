"""What the engine asks the shell to do. The shell persists and performs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Channel = Literal["instances", "steps", "approvals"]


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """An outcome event about the instance, for one of flowbus's outcome topics."""

    channel: Channel
    id: str
    type: str
    time: str
    seq: int
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PublishEvent:
    """A CloudEvent a `send_event` action publishes to a topic of the user's choosing."""

    topic: str
    key: str | None
    id: str
    type: str
    time: str
    data: Any
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class RunAction:
    """Run an action that needs I/O; its result comes back as an `ActionResult` input."""

    step_id: str
    attempt: int
    action: str
    config: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    """A step attempt to write to the step history (insert or update by step and attempt)."""

    step_id: str
    step_type: str
    attempt: int
    status: str
    started_at: str
    finished_at: str | None
    input: Any
    output: Any
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LogLine:
    """A log line a `log` action asks for, carried with the instance's identifiers."""

    level: str
    message: str
    fields: dict[str, Any]


Effect = EmitEvent | PublishEvent | RunAction | RecordAttempt | LogLine
