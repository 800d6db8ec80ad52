"""What every step of a definition says, whatever its type: where it goes next, how it
retries, what happens when it fails, and how it is undone.

Each step type adds its own fields in its class under `flowbus/steps/`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from flowbus.actions.registry import check_action_config
from flowbus.definitions.types import (
    ID_PATTERN,
    CelExpression,
    DefinitionModel,
    Duration,
    TemplateValue,
)
from flowbus.expressions import Template


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
    config: TemplateValue = Field(default_factory=lambda: Template({}))

    @model_validator(mode="after")
    def _valid_action(self) -> Compensation:
        check_action_config(self.action, self.config.source)
        return self


class StepModel(DefinitionModel):
    """Fields every step has. Step types subclass it and fix `type` to a literal."""

    id: str = Field(validation_alias=AliasChoices("id", "stepId"), pattern=ID_PATTERN)
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
