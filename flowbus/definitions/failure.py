"""The workflow-level `onFailure`: what happens when an instance fails for good.

It takes the shape of a step's `onFailure` (seed 004 writes the same document at both
levels) plus a failure workflow (Conductor's `failureWorkflow`):

- `action: stop` (the default): the instance fails. Its completed steps are compensated
  first; then the step the failure routes to (an `errorHandler` condition whose error type
  and code match, else `nextStepId`) runs as the failure path, and when that path ends the
  instance ends as it would have (`failed`, or `compensated`) with the original error.
- `action: continue`: the failure is caught: no compensation, the instance goes on at the
  step the failure routes to and may still complete. With no route it stops as above.
- `workflow` (alias `failureWorkflow`): once the instance has ended `failed`, or
  `compensated` after a failure, an instance of this workflow starts with the failed
  instance's data as its input. A failure workflow's own failure starts no other one.

It applies to failures only: a cancelled or timed-out instance ends as before.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, model_validator

from flowbus.definitions.step import ErrorHandler
from flowbus.definitions.types import ID_PATTERN, DefinitionModel


class WorkflowOnFailure(DefinitionModel):
    """What happens when the instance fails: a failure path, a failure workflow, or both."""

    action: Literal["stop", "continue"] = Field(
        "stop",
        description="stop: compensate, run the failure path, end failed; continue: go on at "
        "the routed step instead of failing.",
    )
    next_step_id: str | None = Field(
        None,
        validation_alias=AliasChoices("nextStepId", "next_step_id", "to"),
        description="The first step of the failure path (a top-level step).",
    )
    error_handler: ErrorHandler | None = Field(
        None, description="Routes by error type (and code), tried before nextStepId."
    )
    workflow: str | None = Field(
        None,
        validation_alias=AliasChoices("workflow", "failureWorkflow"),
        pattern=ID_PATTERN,
        description="A workflow started with the failed instance's data once it has ended.",
    )
    version: int | None = Field(
        None, ge=1, description="The failure workflow's version; its active one by default."
    )

    @model_validator(mode="after")
    def _does_something(self) -> WorkflowOnFailure:
        if self.next_step_id is None and self.error_handler is None and self.workflow is None:
            raise ValueError("onFailure needs nextStepId, errorHandler or workflow")
        if self.version is not None and self.workflow is None:
            raise ValueError("version: applies to a failure workflow; set workflow too")
        if self.action == "continue" and self.next_step_id is None and self.error_handler is None:
            raise ValueError("action: continue needs nextStepId or errorHandler to go on at")
        return self

    def route(self, error_type: str, error_code: str | None) -> str | None:
        """The step a failure of this type (and code) goes to, if any."""
        if self.error_handler is not None:
            for condition in self.error_handler.conditions:
                if condition.error_type not in (None, error_type):
                    continue
                if condition.error_code not in (None, error_code):
                    continue
                return condition.next_step_id
        return self.next_step_id

    def targets(self) -> list[str]:
        """Every step a failure may go to (for reference and reachability checks)."""
        routed = (
            [c.next_step_id for c in self.error_handler.conditions] if self.error_handler else []
        )
        return [*routed, *([self.next_step_id] if self.next_step_id else [])]
