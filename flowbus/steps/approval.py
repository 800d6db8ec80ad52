"""`approval` steps: pause until someone decides.

Entering the step publishes `flowbus.approval.requested` (approval id, assignees,
summary) and waits. An approving decision completes the step with
`{approved: true, decidedBy, comment}`; a rejection goes to `onReject` when given
(output `{approved: false, ...}`) and otherwise fails the step with `ApprovalRejected`
(which, unhandled, fails the instance and compensates).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from flowbus.definitions.model import StepModel
from flowbus.definitions.types import TemplateValue
from flowbus.expressions import ExpressionError
from flowbus.steps.base import StepType

if TYPE_CHECKING:
    from flowbus.engine.inputs import ApprovalDecision
    from flowbus.engine.run import StepCall

APPROVAL_NAMESPACE = uuid.UUID("5e0d7c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6")


def approval_id(instance_id: str, step_id: str, attempt: int) -> str:
    return str(uuid.uuid5(APPROVAL_NAMESPACE, f"{instance_id}/{step_id}/{attempt}"))


class ApprovalStepModel(StepModel):
    type: Literal["approval"]
    assignees: list[str] = Field(default_factory=list, description="Users or groups who decide.")
    summary: TemplateValue | None = Field(None, description="What the approver is shown.")
    on_reject: str | None = None

    def successor_ids(self) -> list[str]:
        extra = [self.on_reject] if self.on_reject else []
        return super().successor_ids() + extra

    def waits(self) -> bool:
        return True


class ApprovalStep(StepType[ApprovalStepModel]):
    name = "approval"
    model = ApprovalStepModel

    def enter(self, step: ApprovalStepModel, call: StepCall) -> None:
        try:
            summary = call.render(step.summary) if step.summary is not None else None
        except ExpressionError as exc:
            call.fail_with("ExpressionError", f"summary: {exc}")
            return
        call.wait()
        identifier = approval_id(call.instance_id, step.id, call.attempt)
        call.state.data["approvalId"] = identifier
        call.emit(
            "approvals",
            "flowbus.approval.requested",
            approvalId=identifier,
            assignees=step.assignees,
            summary=summary,
        )

    def on_decision(
        self, step: ApprovalStepModel, call: StepCall, decision: ApprovalDecision
    ) -> None:
        outcome = {
            "approved": decision.approved,
            "decidedBy": decision.decided_by,
            "comment": decision.comment,
        }
        call.emit(
            "approvals",
            "flowbus.approval.decided",
            approvalId=call.state.data.get("approvalId"),
            **outcome,
        )
        if decision.approved:
            call.complete(outcome)
        elif step.on_reject is not None:
            call.complete(outcome, next_step=step.on_reject)
        else:
            call.fail_with(
                "ApprovalRejected",
                f"rejected by {decision.decided_by or 'an approver'}",
                details=outcome,
            )
