"""What the engine asks the shell to do. The shell persists and performs them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flowbus.engine.state import ErrorInfo

Channel = Literal["instances", "steps", "approvals"]
ActionPurpose = Literal["step", "compensate"]


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
class SendWorkflowTask:
    """A `flowbus.task.workflow` for the SDK workers, keyed by the instance id."""

    id: str
    time: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunAction:
    """Run an action that needs I/O; its result comes back as an `ActionResult` input."""

    step_id: str
    attempt: int
    action: str
    config: dict[str, Any]
    idempotency_key: str
    purpose: ActionPurpose = "step"
    tries: int = 1
    """Attempt of this step execution (1, then 2, 3 on retries), sent beside the key."""


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
    error: ErrorInfo | None


@dataclass(frozen=True, slots=True)
class LogLine:
    """A log line a `log` action asks for, carried with the instance's identifiers."""

    level: str
    message: str
    fields: dict[str, Any]


TimerKind = Literal[
    "retry",
    "step_timeout",
    "heartbeat",
    "task_timeout",
    "workflow_timeout",
    "wait",
    "wait_timeout",
    "deadline",
    "reminder",
]
FIRES_WHILE_PAUSED: frozenset[TimerKind] = frozenset({"workflow_timeout", "reminder"})
"""Timers that fire while their instance is paused; every other kind waits for the resume."""


@dataclass(frozen=True, slots=True)
class SetTimer:
    """A durable timer: at `due_at` the engine gets `TimerFired(kind, step_id, attempt)`."""

    kind: TimerKind
    due_at: datetime
    step_id: str | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class CancelTimers:
    """Drop the instance's pending timers: of one step, or all of them (`step_id` None)."""

    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Wait for an event: on `topic` (of `event_type`) whose `match` query gives `key`."""

    step_id: str
    attempt: int
    topic: str
    event_type: str | None
    match: str
    key: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    step_id: str


@dataclass(frozen=True, slots=True)
class StartChild:
    """Start an instance of another workflow as a subflow of this step."""

    step_id: str
    attempt: int
    child_id: str
    workflow_id: str
    version: int | None
    input: Any


@dataclass(frozen=True, slots=True)
class CancelChild:
    child_id: str


@dataclass(frozen=True, slots=True)
class NotifyParent:
    """This subflow instance ended: tell the parent's waiting step."""

    parent_id: str
    step_id: str
    child_id: str
    status: str
    output: Any
    error: ErrorInfo | None


@dataclass(frozen=True, slots=True)
class TrackApproval:
    """Record an approval's state where operators can query pending approvals."""

    approval_id: str
    step_id: str
    attempt: int
    status: Literal["pending", "approved", "rejected", "expired", "cancelled"]
    assignees: tuple[str, ...]
    quorum: str
    deadline: datetime | None
    summary: Any


Effect = (
    EmitEvent
    | PublishEvent
    | SendWorkflowTask
    | RunAction
    | RecordAttempt
    | LogLine
    | SetTimer
    | CancelTimers
    | Subscribe
    | Unsubscribe
    | StartChild
    | CancelChild
    | NotifyParent
    | TrackApproval
)
