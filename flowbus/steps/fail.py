"""`fail` steps: end the workflow as failed, on purpose, with an error type to route on.

A fail step exists to fail, so it takes no `retryPolicy` or `onFailure` (refused at load):
the instance fails and completed steps are compensated. To route a failure, give the
step before it an `onFailure` instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flowbus.definitions.step import StepModel
from flowbus.definitions.types import TemplateValue
from flowbus.expressions import ExpressionError
from flowbus.steps.base import StepCall, StepType


class FailStepModel(StepModel):
    type: Literal["fail"]
    error: str = Field("WorkflowFailed", min_length=1, description="The error type.")
    code: str | None = None
    message: TemplateValue | None = Field(None, description="Why (a template).")

    @model_validator(mode="after")
    def _fails_for_good(self) -> FailStepModel:
        if self.retry_policy is not None or self.on_failure is not None:
            raise ValueError("onFailure: a fail step takes no retryPolicy or onFailure")
        return self


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
