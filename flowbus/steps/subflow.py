"""`subflow` steps: run another workflow as a child instance and wait for it.

The child starts with `input` (a template over the parent) on the latest active version
of `workflow`, or on `version` when given. When it completes, the step's output is
`output` rendered with `child` = `{instanceId, output}` in scope (the child's output by
default). A child that fails, is cancelled or times out fails the step with error type
`SubflowFailed` (code = the child's status). Cancelling the parent cancels the child.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from flowbus.definitions.step import StepModel
from flowbus.definitions.types import TemplateValue
from flowbus.engine.effects import CancelChild, StartChild
from flowbus.expressions import ExpressionError
from flowbus.steps.base import StepCall, StepType

if TYPE_CHECKING:
    from flowbus.engine.inputs import ChildFinished

CHILD_NAMESPACE = uuid.UUID("c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f")


class SubflowStepModel(StepModel):
    type: Literal["subflow"]
    workflow: str = Field(min_length=1, description="Id of the child workflow.")
    version: int | None = Field(None, ge=1)
    input: TemplateValue | None = None
    output: TemplateValue | None = None

    def waits(self) -> bool:
        return True


class SubflowStep(StepType[SubflowStepModel]):
    name = "subflow"
    model = SubflowStepModel

    def enter(self, step: SubflowStepModel, call: StepCall) -> None:
        try:
            child_input = call.render(step.input) if step.input is not None else {}
        except ExpressionError as exc:
            call.fail_with("ExpressionError", f"input: {exc}")
            return
        child_id = str(uuid.uuid5(CHILD_NAMESPACE, f"{call.instance_id}/{step.id}/{call.attempt}"))
        call.wait()
        call.state.data["child"] = child_id
        call.add_effect(
            StartChild(
                step_id=step.id,
                attempt=call.attempt,
                child_id=child_id,
                workflow_id=step.workflow,
                version=step.version,
                input=child_input,
            )
        )

    def on_child_finished(
        self, step: SubflowStepModel, call: StepCall, finished: ChildFinished
    ) -> None:
        if call.state.data.get("child") != finished.child_id:
            return
        if finished.status != "completed":
            call.fail_with(
                "SubflowFailed",
                f"subflow {step.workflow} ended {finished.status}"
                + (f": {finished.error.message}" if finished.error else ""),
                code=finished.status,
                details=finished.error.model_dump(mode="json") if finished.error else None,
            )
            return
        if step.output is None:
            call.complete(finished.output)
            return
        child = {"instanceId": finished.child_id, "output": finished.output}
        try:
            call.complete(call.render(step.output, {"child": child}))
        except ExpressionError as exc:
            call.fail_with("ExpressionError", f"output: {exc}")

    def on_cancel(self, step: SubflowStepModel, call: StepCall) -> None:
        child_id = call.state.data.get("child")
        if isinstance(child_id, str):
            call.add_effect(CancelChild(child_id=child_id))
