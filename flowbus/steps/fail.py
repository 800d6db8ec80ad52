"""`fail` steps: end the workflow as failed, on purpose, with an error type to route on.

The failure is like any other step failure: `onFailure` of the fail step is not consulted
(it exists to fail), so the instance fails and completed steps are compensated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from flowbus.definitions.model import StepModel
from flowbus.definitions.types import TemplateValue
from flowbus.expressions import ExpressionError
from flowbus.steps.base import StepType

if TYPE_CHECKING:
    from flowbus.engine.run import StepCall


class FailStepModel(StepModel):
    type: Literal["fail"]
    error: str = Field("WorkflowFailed", min_length=1, description="The error type.")
    code: str | None = None
    message: TemplateValue | None = Field(None, description="Why (a template).")


class FailStep(StepType[FailStepModel]):
    name = "fail"
    model = FailStepModel

    def enter(self, step: FailStepModel, call: StepCall) -> None:
        try:
            message = call.render(step.message) if step.message is not None else None
        except ExpressionError as exc:
            message = f"message: {exc}"
        reason = str(message or f"step {step.id!r} failed the workflow")
        call.fail_with(step.error, reason, step.code)
