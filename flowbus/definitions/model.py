"""The workflow definition language: what a definition document may say.

Definitions are JSON or YAML documents with camelCase keys. The common shape lives here;
each step type adds its own fields in its class under `flowbus/steps/`, and the step
registry dispatches on `type`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from flowbus.definitions.types import CelExpression, QueryPath, TemplateValue

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class DefinitionModel(BaseModel):
    """Base of every definition model: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
    )


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("duration must be positive")
    return value


Duration = Annotated[timedelta, AfterValidator(_positive)]
"""An ISO 8601 duration such as PT30S, PT5M, P1DT2H (or a number of seconds)."""


class Transition(DefinitionModel):
    """An edge to another step, taken when its condition holds (or always, without one)."""

    to: str = Field(validation_alias=AliasChoices("to", "nextStepId"))
    condition: CelExpression | None = None


class RetryPolicy(DefinitionModel):
    """How often and how soon a failed step runs again. Backoffs are durable timers."""

    max_attempts: int = Field(3, ge=1, le=100, description="Attempts in all, the first included.")
    delay: Duration = Field(timedelta(seconds=1), description="Wait before the second attempt.")
    strategy: Literal["fixed", "exponential"] = "fixed"
    multiplier: float = Field(2.0, ge=1.0, description="Growth per attempt when exponential.")
    max_delay: Duration | None = None
    jitter: float = Field(
        0.0, ge=0.0, le=1.0, description="Spread each delay by up to this fraction (deterministic)."
    )
    retry_on: list[str] | None = Field(
        None, description="Error types that are retried; every error when omitted."
    )

    def delay_before(self, attempt: int) -> timedelta:
        """The wait before attempt number `attempt` (2 = the first retry), before jitter."""
        base = self.delay
        if self.strategy == "exponential":
            base = self.delay * (self.multiplier ** max(0, attempt - 2))
        if self.max_delay is not None:
            base = min(base, self.max_delay)
        return base

    def retries(self, error_type: str) -> bool:
        return self.retry_on is None or error_type in self.retry_on


class ErrorRoute(DefinitionModel):
    """Where a failure of a given error type (and code) goes."""

    error_type: str | None = None
    error_code: str | None = None
    next_step_id: str = Field(validation_alias=AliasChoices("nextStepId", "next_step_id", "to"))


class ErrorHandler(DefinitionModel):
    conditions: list[ErrorRoute] = Field(min_length=1)


class OnFailure(DefinitionModel):
    """What happens when a step has failed for good (after its retries).

    `stop` fails the instance (compensating completed steps), `continue` goes on at
    `nextStepId` (or the step's `next`), `retry` retries with the step's `retryPolicy`
    (3 attempts, exponential from 1 s, when it has none) and then stops. Error-handler
    conditions are tried first: the first whose type (and code) match routes the failure.
    """

    action: Literal["stop", "continue", "retry"] = "stop"
    next_step_id: str | None = None
    error_handler: ErrorHandler | None = None

    def route(self, error_type: str, error_code: str | None) -> str | None:
        if self.error_handler is None:
            return None
        for condition in self.error_handler.conditions:
            if condition.error_type not in (None, error_type):
                continue
            if condition.error_code not in (None, error_code):
                continue
            return condition.next_step_id
        return None


DEFAULT_RETRY = RetryPolicy(max_attempts=3, strategy="exponential")


class Compensation(DefinitionModel):
    """The action that undoes a completed step; it sees the step's output as `steps.<id>`."""

    action: str
    config: TemplateValue = Field(default_factory=lambda: _empty_template())

    @model_validator(mode="after")
    def _valid_action(self) -> Compensation:
        from flowbus.actions.registry import check_action_config

        check_action_config(self.action, self.config.source)
        return self


def _empty_template() -> Any:
    from flowbus.expressions import Template

    return Template({})


class StepModel(DefinitionModel):
    """Fields every step has. Step types subclass it and fix `type` to a literal."""

    id: str = Field(validation_alias=AliasChoices("id", "stepId"), pattern=_ID_PATTERN)
    type: str
    name: str | None = None
    description: str | None = None
    next: str | list[Transition] | None = Field(
        None,
        description="The step that follows: an id, or transitions tried in order "
        "(first whose condition holds wins; one without a condition is the default). "
        "None ends the workflow (or the parallel branch).",
    )

    retry_policy: RetryPolicy | None = None
    timeout: Duration | None = Field(
        None, description="Fail the attempt with a TimeoutError when it runs longer."
    )
    on_failure: OnFailure | None = None
    compensate: Compensation | None = None

    def successor_ids(self) -> list[str]:
        """Every step id this step may continue to (for reference and reachability checks)."""
        targets: list[str] = []
        if isinstance(self.next, str):
            targets.append(self.next)
        elif self.next is not None:
            targets.extend(t.to for t in self.next)
        if self.on_failure is not None:
            if self.on_failure.next_step_id is not None:
                targets.append(self.on_failure.next_step_id)
            if self.on_failure.error_handler is not None:
                targets.extend(c.next_step_id for c in self.on_failure.error_handler.conditions)
        return targets

    def branches(self) -> list[tuple[str, list[StepModel]]]:
        """Nested step lists (parallel branches): (branch id, steps)."""
        return []

    def waits(self) -> bool:
        """Whether entering this step always waits for something outside (breaks cycles)."""
        return False


class Transform(DefinitionModel):
    """Maps the trigger event document to the workflow input."""

    type: Literal["jmespath"] = "jmespath"
    expression: QueryPath


class Trigger(DefinitionModel):
    """Which consumed events start an instance of the workflow."""

    topic: str
    type: str | None = Field(
        None,
        description="Shorthand: the event's type "
        "(CloudEvents `type`, or a plain JSON body's `type` field).",
    )
    description: str | None = None
    transform: Transform | None = None


class ExecutionLog(DefinitionModel):
    """How much of an instance's history is kept, for how long, and what it is tagged with."""

    level: Literal["debug", "info", "error"] = Field(
        "info",
        description="debug: step inputs and outputs; info: outputs; error: failed attempts only.",
    )
    retention: Duration | None = Field(
        None, description="Ended instances older than this are purged with their history."
    )
    metadata: list[str] = Field(
        default_factory=list,
        description="Fields (looked up in the input, then the trigger event's data) attached to "
        "the instance's events and log lines, e.g. userId, correlationId.",
    )


class WorkflowDefinition(DefinitionModel):
    """A versioned workflow: triggers, input schema, context mappings and steps."""

    id: str = Field(validation_alias=AliasChoices("id", "workflowId"), pattern=_ID_PATTERN)
    name: str | None = None
    description: str | None = None
    version: int | None = Field(
        None, ge=1, description="Assigned by the store when omitted: one more than the latest."
    )
    deprecated: bool = False
    input_schema: dict[str, Any] | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    context: dict[str, QueryPath] = Field(
        default_factory=dict,
        description="Variables computed at start: name -> JMESPath over {input, trigger}.",
    )
    timeout: Duration | None = Field(
        None, description="End the instance timed_out (with compensation) when it runs longer."
    )
    start_at: str | None = Field(None, description="First step; the first listed by default.")
    steps: list[SerializeAsAny[StepModel]] = Field(min_length=1)
    output: TemplateValue | None = Field(
        None, description="Template of the instance output; the variables by default."
    )
    ui_components: list[dict[str, Any]] = Field(
        default_factory=list, description="Stored and returned as given, for user interfaces."
    )
    execution_log: ExecutionLog = Field(default_factory=ExecutionLog)

    @field_validator("steps", mode="before")
    @classmethod
    def _typed_steps(cls, value: Any) -> Any:
        # Each step is validated by the model its type registers, so that errors name
        # the step type's own fields.
        from flowbus.steps.registry import parse_steps

        return parse_steps(value) if isinstance(value, list) else value

    @property
    def first_step_id(self) -> str:
        return self.start_at or self.steps[0].id

    def step_map(self) -> dict[str, StepModel]:
        """Every step by id, the steps of parallel branches included."""
        found: dict[str, StepModel] = {}

        def visit(steps: list[StepModel]) -> None:
            for step in steps:
                found.setdefault(step.id, step)
                for _, nested in step.branches():
                    visit(nested)

        visit(list(self.steps))
        return found
