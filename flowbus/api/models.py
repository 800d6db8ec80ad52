"""What the API accepts and returns (camelCase JSON). The OpenAPI document is generated from
these models, so the contract and the validation cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from flowbus.api.problems import ProblemItem
from flowbus.engine.state import InstanceStatus
from flowbus.storable import nul_path

WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
MAX_CHILDREN = 100


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RequestModel(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse NUL anywhere in a field: nothing that holds it can be stored."""
        assert info.field_name is not None
        where = nul_path(value, cls.model_fields[info.field_name].alias or info.field_name)
        if where is not None:
            raise ValueError(f"{where} holds the NUL character (\\u0000), which cannot be stored")
        return value


# -- definitions -------------------------------------------------------------------------


class DefinitionVersion(ApiModel):
    version: int
    deprecated: bool
    name: str | None = None
    description: str | None = None
    checksum: str
    created_at: datetime


class WorkflowSummary(ApiModel):
    id: str
    name: str | None = None
    latest_version: int
    active_version: int | None = Field(
        None, description="The version new instances start on: the latest non-deprecated one."
    )
    versions: list[DefinitionVersion]


class WorkflowList(ApiModel):
    items: list[WorkflowSummary]


class StoredDefinition(DefinitionVersion):
    id: str
    document: dict[str, Any] = Field(description="The definition document as stored.")


class DefinitionSaved(ApiModel):
    id: str
    version: int
    created: bool = Field(description="False when this content was already stored.")


class DefinitionChange(RequestModel):
    deprecated: bool = Field(description="A deprecated version starts no new instances.")


class DefinitionsDeleted(ApiModel):
    id: str
    versions: list[int]


class ValidationReport(ApiModel):
    valid: bool
    id: str | None = None
    steps: int | None = Field(None, description="Top-level steps, when valid.")
    problems: list[ProblemItem] = Field(default_factory=list)


# -- instances ---------------------------------------------------------------------------


class InstanceSummary(ApiModel):
    id: str
    workflow_id: str
    workflow_version: int
    status: InstanceStatus
    correlation_id: str | None = None
    parent_instance_id: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None


class InstancePage(ApiModel):
    items: list[InstanceSummary]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class StepExecution(ApiModel):
    step_id: str
    attempt: int
    step_type: str
    status: str
    input: Any = Field(None, description="Kept when the executionLog level is debug.")
    output: Any = Field(None, description="Kept unless the executionLog level is error.")
    error: Any = Field(None, description="`type`, `message`, `code`, `step_id`, `details`.")
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: int | None = Field(None, description="finishedAt - startedAt, once finished.")


class StepExecutionList(ApiModel):
    items: list[StepExecution]


class CurrentStep(ApiModel):
    step_id: str
    status: str
    attempt: int
    started_at: str


class HeldState(ApiModel):
    """Why a code-first instance cannot go on until a worker or an operator acts."""

    reason: str = Field(description="nondeterministic, unsupported or invalid_wait.")
    message: str | None = None
    since: str | None = None


class StepSummary(ApiModel):
    """A step's latest attempt, as the instance's state holds it (whatever the
    executionLog level keeps in the history)."""

    step_id: str
    status: str
    attempt: int
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: int | None = None
    error: Any = None


class InstanceDetail(InstanceSummary):
    parent_step_id: str | None = None
    input: Any = None
    output: Any = None
    error: Any = None
    variables: dict[str, Any] = Field(default_factory=dict)
    current_steps: list[CurrentStep] = Field(description="The active steps (`state.active`).")
    history: list[StepExecution] = Field(description="Every step attempt, in start order.")
    held: HeldState | None = Field(
        None, description="Set while a code-first instance is held; `retry` sends it a task."
    )
    steps: list[StepSummary] = Field(
        default_factory=list, description="Every step the instance entered, in start order."
    )
    execution_log_level: Literal["debug", "info", "error"] | None = Field(
        None,
        description="What the history keeps: debug inputs and outputs, info outputs, error "
        "only failed attempts.",
    )
    children: list[InstanceSummary] = Field(
        default_factory=list,
        description=f"Subflow child instances, oldest first (at most {MAX_CHILDREN}).",
    )


class StatusCounts(ApiModel):
    counts: dict[str, int] = Field(description="Instances by status (statuses with none left out).")
    capped: list[str] = Field(
        default_factory=list,
        description="Statuses with at least `cap` instances: counting stopped at `cap`.",
    )


class WorkflowCounts(StatusCounts):
    workflow_id: str


class InstanceCounts(StatusCounts):
    workflow_id: str | None = None
    cap: int = Field(description="The most a count goes to; a capped count means at least.")
    by_workflow: list[WorkflowCounts] | None = Field(
        None, description="Per workflow, when asked for with `perWorkflow=true`."
    )


class UiComponentShown(ApiModel):
    component_id: str
    priority: int | float | None = None
    layout: str | None = Field(None, description="`context.layout` (or the component's `type`).")
    title: Any = None
    description: Any = None
    context: dict[str, Any] = Field(description="The component's context, templates rendered.")
    data: Any = Field(
        None,
        description="Its `data` rendered; without one, what its layout is for: timeline "
        "`{steps, activeSteps}`, card `{status, output}`, alert `{status, error}`.",
    )


class UiComponentProblem(ApiModel):
    index: int = Field(description="The component's place in the definition's uiComponents.")
    component_id: str | None = None
    field: str
    detail: str


class UiComponents(ApiModel):
    instance_id: str
    workflow_id: str
    workflow_version: int
    status: InstanceStatus
    items: list[UiComponentShown] = Field(description="Shown components, by priority.")
    problems: list[UiComponentProblem] = Field(
        default_factory=list, description="Components that could not be evaluated, and why."
    )


class StartInstance(RequestModel):
    workflow_id: str = Field(pattern=WORKFLOW_ID_PATTERN, max_length=200)
    version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Default: the active version."
    )
    input: Any = None
    correlation_id: str | None = Field(None, max_length=500)


class CancelInstance(RequestModel):
    compensate: bool = Field(True, description="Undo completed steps first (saga).")
    reason: str | None = Field(None, max_length=2000)


class SendEvent(RequestModel):
    step_id: str | None = Field(
        None, max_length=200, description="The waiting step; default: the first that takes it."
    )
    event: Any = Field(None, description="Becomes the `data` of the event the step receives.")


CommandKind = Literal["start", "pause", "resume", "cancel", "retry", "event"]


class CommandAccepted(ApiModel):
    command_id: str = Field(description="The CloudEvents id of the published command.")
    command: CommandKind
    instance_id: str
    workflow_id: str | None = None
    workflow_version: int | None = None
    topic: str


# -- events ------------------------------------------------------------------------------


class EventAccepted(ApiModel):
    event_id: str = Field(description="The CloudEvents id the event was published with.")
    topic: str
    partition: int
    offset: int
    mode: Literal["structured", "binary"] = Field(
        description="structured: the body was a CloudEvent; binary: the body as sent, with "
        "CloudEvents attributes in ce_* record headers."
    )


# -- health ------------------------------------------------------------------------------


class Liveness(ApiModel):
    status: Literal["ok"] = "ok"


class Check(ApiModel):
    ok: bool
    detail: str


class Readiness(ApiModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Check]
