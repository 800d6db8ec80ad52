"""Everything that can happen to a running instance, as engine inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from flowbus.engine.effects import ActionPurpose, TimerKind
from flowbus.engine.state import ErrorInfo


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An action run by the shell finished: with an output, or with an error."""

    step_id: str
    attempt: int
    output: Any = None
    error: ErrorInfo | None = None
    purpose: ActionPurpose = "step"


@dataclass(frozen=True, slots=True)
class TimerFired:
    kind: TimerKind
    step_id: str | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class EventReceived:
    """An event a waiting step subscribed to (or one sent to the instance by command)."""

    step_id: str | None
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChildFinished:
    step_id: str
    child_id: str
    status: str
    output: Any = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """A decision whose signature the shell has verified: who (`decided_by`, with the
    groups the token names) approved or rejected which approval."""

    step_id: str
    approval_id: str
    approved: bool
    decided_by: str
    groups: tuple[str, ...] = ()
    comment: str | None = None
    decision_id: str | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """An operator's instruction: start a created instance, pause, resume, cancel
    (compensating by default), or retry a failed instance from the step that failed."""

    kind: Literal["start", "pause", "resume", "cancel", "retry"]
    compensate: bool = True
    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class StepReported:
    """A code-first step checkpoint an SDK worker reported (`flowbus.result.step`)."""

    task_id: str
    name: str
    seq: int
    status: Literal["started", "completed", "failed", "compensated", "compensation_failed"]
    result: Any = None
    error: ErrorInfo | None = None
    attempt: int = 1
    optional: bool = False


@dataclass(frozen=True, slots=True)
class TaskEnded:
    """How an SDK worker ended a workflow task (`flowbus.result.workflow`)."""

    task_id: str
    outcome: Literal[
        "completed", "failed", "waiting", "compensated", "nondeterministic", "unsupported"
    ]
    output: Any = None
    error: ErrorInfo | None = None
    wait: dict[str, Any] | None = None


EngineInput = (
    ActionResult
    | TimerFired
    | EventReceived
    | ChildFinished
    | ApprovalDecision
    | Command
    | StepReported
    | TaskEnded
)
