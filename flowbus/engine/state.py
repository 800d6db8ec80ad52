"""The durable state of one workflow instance, as the engine sees it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class InstanceStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_INSTANCE


_FINAL_INSTANCE = frozenset(
    {
        InstanceStatus.COMPLETED,
        InstanceStatus.FAILED,
        InstanceStatus.CANCELLED,
        InstanceStatus.COMPENSATED,
        InstanceStatus.TIMED_OUT,
    }
)


class StepStatus(StrEnum):
    """A step's latest state. `pending`: due but not started yet (the first step of a
    created instance, or a step that came due while its instance is paused); `skipped`:
    not taken (an alternative its predecessor did not choose, or still pending when the
    instance ended). Both have attempt 0 until the step runs."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"


class ErrorInfo(BaseModel):
    """Why a step or an instance failed: a type to route on, a code and a message."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    code: str | None = None
    step_id: str | None = None
    details: Any = None


class StepState(BaseModel):
    """The latest attempt of one step."""

    status: StepStatus
    attempt: int = Field(
        1, description="Executions of this step so far, retries and loops included."
    )
    tries: int = Field(1, description="Attempts in the current entry (for the retry policy).")
    execution: int = Field(
        1,
        description="Entries of this step afresh (a loop back to it, an operator retry); "
        "retries of one entry do not count. Names the step execution an idempotency key is for.",
    )
    output: Any = None
    error: ErrorInfo | None = None
    started_at: str
    finished_at: str | None = None
    data: dict[str, Any] = Field(
        default_factory=dict, description="Bookkeeping of the step type (branches, child, ...)."
    )


class ParentLink(BaseModel):
    """The parent instance and step of a subflow's child instance."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    step_id: str


class Compensating(BaseModel):
    """Progress of a saga rollback: completed steps still to undo, newest first."""

    pending: list[str]
    ending: InstanceStatus
    cause: ErrorInfo | None = None


class FailurePath(BaseModel):
    """The workflow-level onFailure path in progress (or run): how the instance ends when
    it is over, and the failure that led to it."""

    ending: InstanceStatus
    error: ErrorInfo


class FailureWorkflow(BaseModel):
    """The failure workflow instance started for this instance, and how it ended."""

    instance_id: str
    workflow_id: str
    status: str = Field("started", description="started, or the status it ended with.")
    error: ErrorInfo | None = None


class CodeFirstState(BaseModel):
    """Where a code-first instance is: its workflow task, what the code reached so far,
    and the wait or hold it is in."""

    task: int = Field(0, description="Workflow tasks emitted so far; the current one is n.")
    reason: str = "start"
    open: bool = Field(False, description="Whether the current task still awaits its end.")
    due: str | None = Field(None, description="When the open task is sent again if silent.")
    history: list[dict[str, Any]] = Field(default_factory=list)
    wait: dict[str, Any] | None = None
    held: str | None = Field(
        None, description="Why the instance is held: nondeterministic, unsupported, invalid_wait."
    )
    held_message: str | None = Field(None, description="What holds it, for the operator.")
    held_since: str | None = Field(None, description="When it was held (RFC 3339).")
    ending: InstanceStatus | None = Field(
        None, description="How the instance ends once its compensations ran (cancel, timeout)."
    )


class InstanceState(BaseModel):
    """Everything the engine needs to continue an instance; stored as JSON in PostgreSQL."""

    id: str
    workflow_id: str
    version: int
    status: InstanceStatus
    input: Any = None
    variables: dict[str, Any] = Field(default_factory=dict)
    trigger: dict[str, Any] | None = None
    correlation_id: str | None = None
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="executionLog metadata fields found at start."
    )
    parent: ParentLink | None = None
    steps: dict[str, StepState] = Field(default_factory=dict)
    active: list[str] = Field(default_factory=list)
    completed: list[str] = Field(
        default_factory=list, description="Completed step ids in completion order."
    )
    output: Any = None
    error: ErrorInfo | None = None
    deferred: list[str] = Field(
        default_factory=list, description="Steps to enter once the paused instance resumes."
    )
    compensation: Compensating | None = None
    failure_path: FailurePath | None = Field(
        None, description="Set once the workflow-level onFailure path began."
    )
    failure_workflow: FailureWorkflow | None = None
    seq: int = Field(
        0, description="Outcome events emitted so far: they are numbered 1..seq, without gaps."
    )
    published: int = Field(0, description="Events published by actions (send_event) so far.")
    code: CodeFirstState | None = Field(None, description="Set for code-first instances.")
    created_at: str
    updated_at: str

    def step_outputs(self) -> dict[str, Any]:
        return {step_id: s.output for step_id, s in self.steps.items()}
