"""`approval` steps: wait until the assignees decide, by decision events.

Entering the step publishes `flowbus.approval.requested` (approval id, assignees, quorum,
deadline, summary) and waits. The shell verifies each decision's signed token; here the
engine checks the rest and refuses, with a `flowbus.approval.decision_refused` event and
no other change, a decision that comes from someone who is not an assignee, comes after
the deadline, is for another attempt's approval, or repeats a decider.

Assignees are `user:<name>` (or a bare name) and `group:<name>` (any member decides).
`quorum`: `any` (the first decision decides), `all` (every assignee entry approves; one
rejection rejects) or a number k (k distinct approvers; rejected once k can no longer be
reached). At the `deadline` (with optional reminders before it), `onTimeout` rejects
(default), escalates once to other assignees with a new deadline, or goes to a step.
A rejection goes to `onReject` when given, else fails the step with `ApprovalRejected`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from flowbus.definitions.step import StepModel
from flowbus.definitions.types import DefinitionModel, Duration, TemplateValue
from flowbus.engine.effects import TrackApproval
from flowbus.expressions import ExpressionError
from flowbus.steps.base import StepCall, StepType
from flowbus.times import parse_time, rfc3339

if TYPE_CHECKING:
    from flowbus.engine.effects import TimerKind
    from flowbus.engine.inputs import ApprovalDecision

APPROVAL_NAMESPACE = uuid.UUID("5e0d7c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6")


def approval_id(instance_id: str, step_id: str, attempt: int) -> str:
    return str(uuid.uuid5(APPROVAL_NAMESPACE, f"{instance_id}/{step_id}/{attempt}"))


def matches(entry: str, user: str, groups: tuple[str, ...]) -> bool:
    """Whether a decider (user and groups) is the assignee `entry`."""
    kind, _, name = entry.partition(":")
    if not name:
        return entry == user
    if kind == "user":
        return name == user
    return kind == "group" and name in groups


class ApprovalTimeout(DefinitionModel):
    action: Literal["reject", "escalate", "goto"] = "reject"
    to: str | None = Field(None, description="The step to go to (goto).")
    assignees: list[str] | None = Field(None, description="Who decides after escalating.")
    deadline: Duration | None = Field(None, description="The deadline after escalating.")

    @model_validator(mode="after")
    def _complete(self) -> ApprovalTimeout:
        if self.action == "goto" and self.to is None:
            raise ValueError("onTimeout.to: goto needs a step")
        if self.action == "escalate" and (not self.assignees or self.deadline is None):
            raise ValueError("onTimeout.assignees: escalate needs assignees and a deadline")
        return self


class ApprovalStepModel(StepModel):
    type: Literal["approval"]
    assignees: list[str] = Field(min_length=1, description="user:<name>, group:<name>.")
    quorum: Literal["any", "all"] | int = "any"
    deadline: Duration | None = None
    on_timeout: ApprovalTimeout = Field(default_factory=ApprovalTimeout)
    remind_before: list[Duration] = Field(
        default_factory=list, description="Reminders this long before the deadline."
    )
    summary: TemplateValue | None = Field(None, description="What the approver is shown.")
    on_reject: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalStepModel:
        if isinstance(self.quorum, int) and not 1 <= self.quorum <= len(self.assignees) + 100:
            raise ValueError("quorum: must be any, all, or a positive number")
        if self.remind_before and self.deadline is None:
            raise ValueError("remindBefore: reminders need a deadline")
        return self

    def successor_ids(self) -> list[str]:
        extra = [t for t in (self.on_reject, self.on_timeout.to) if t is not None]
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
        data = call.state.data
        data.update(
            approvalId=approval_id(call.instance_id, step.id, call.attempt),
            assignees=list(step.assignees),
            decisions=[],
            escalated=False,
            summary=summary,
        )
        if step.deadline is not None:
            self._set_deadline(step, call, call.moment + step.deadline)
        else:
            data["deadline"] = None
        call.emit(
            "approvals",
            "flowbus.approval.requested",
            approvalId=data["approvalId"],
            assignees=data["assignees"],
            quorum=step.quorum,
            deadline=data["deadline"],
            summary=summary,
            decide={"approvalId": data["approvalId"], "decisions": ["approve", "reject"]},
        )
        self._track(step, call, "pending")

    def _set_deadline(self, step: ApprovalStepModel, call: StepCall, deadline: datetime) -> None:
        call.state.data["deadline"] = rfc3339(deadline)
        call.set_timer("deadline", deadline)
        for before in step.remind_before:
            if deadline - before > call.moment:
                call.set_timer("reminder", deadline - before)

    def on_decision(
        self, step: ApprovalStepModel, call: StepCall, decision: ApprovalDecision
    ) -> None:
        data = call.state.data
        reason = self._refusal(call, decision)
        if reason is not None:
            refuse(call, decision, reason)
            return
        record = {
            "by": decision.decided_by,
            "groups": list(decision.groups),
            "decision": "approve" if decision.approved else "reject",
            "comment": decision.comment,
            "at": call.now,
        }
        data["decisions"].append(record)
        call.emit(
            "approvals",
            "flowbus.approval.decision_accepted",
            approvalId=data["approvalId"],
            decidedBy=decision.decided_by,
            decision=record["decision"],
            comment=decision.comment,
            decisionId=decision.decision_id,
        )
        outcome = self._outcome(step, data)
        if outcome is not None:
            self._close(step, call, outcome)

    def _refusal(self, call: StepCall, decision: ApprovalDecision) -> str | None:
        data = call.state.data
        if decision.approval_id != data.get("approvalId"):
            return "unknown or closed approval"
        deadline = data.get("deadline")
        if deadline is not None and call.now > deadline:
            return "the deadline has passed"
        if not any(matches(e, decision.decided_by, decision.groups) for e in data["assignees"]):
            return f"{decision.decided_by} is not an assignee"
        if any(d["by"] == decision.decided_by for d in data["decisions"]):
            return f"{decision.decided_by} has already decided"
        return None

    @staticmethod
    def _outcome(step: ApprovalStepModel, data: dict[str, Any]) -> str | None:
        decisions: list[dict[str, Any]] = data["decisions"]
        approvals = [d for d in decisions if d["decision"] == "approve"]
        rejections = len(decisions) - len(approvals)
        if step.quorum == "any":
            return "approved" if approvals else "rejected" if rejections else None
        if step.quorum == "all":
            if rejections:
                return "rejected"
            wanted: list[str] = data["assignees"]
            covered = all(
                any(matches(entry, d["by"], tuple(d["groups"])) for d in approvals)
                for entry in wanted
            )
            return "approved" if covered else None
        needed = step.quorum
        if len(approvals) >= needed:
            return "approved"
        entries: list[str] = data["assignees"]
        # Only a list of users bounds who may still approve; a group may have any number
        # of members, so then only the deadline ends a k-of quorum without k approvals.
        if all(not e.startswith("group:") for e in entries) and rejections > len(entries) - needed:
            return "rejected"
        return None

    def _close(self, step: ApprovalStepModel, call: StepCall, outcome: str) -> None:
        data = call.state.data
        call.emit(
            "approvals",
            "flowbus.approval.completed",
            approvalId=data["approvalId"],
            outcome=outcome,
            decisions=data["decisions"],
        )
        self._track(step, call, "approved" if outcome == "approved" else "rejected")
        result = {"approved": outcome == "approved", "decisions": data["decisions"]}
        if outcome == "approved":
            call.complete(result)
        else:
            self._reject(step, call, result, "rejected")

    @staticmethod
    def _reject(step: ApprovalStepModel, call: StepCall, result: dict[str, Any], why: str) -> None:
        if step.on_reject is not None:
            call.complete(result, next_step=step.on_reject)
        else:
            call.fail_with("ApprovalRejected", f"approval {why}", details=result)

    def on_timer(self, step: ApprovalStepModel, call: StepCall, kind: TimerKind) -> None:
        data = call.state.data
        if kind == "reminder":
            call.emit(
                "approvals",
                "flowbus.approval.reminder",
                approvalId=data["approvalId"],
                assignees=data["assignees"],
                deadline=data["deadline"],
            )
            return
        if kind != "deadline":
            return
        timeout = step.on_timeout
        if timeout.action == "escalate" and not data["escalated"]:
            assert timeout.assignees is not None
            assert timeout.deadline is not None
            data["escalated"] = True
            data["assignees"] = list(timeout.assignees)
            self._set_deadline(step, call, call.moment + timeout.deadline)
            call.emit(
                "approvals",
                "flowbus.approval.escalated",
                approvalId=data["approvalId"],
                assignees=data["assignees"],
                deadline=data["deadline"],
            )
            self._track(step, call, "pending")
            return
        call.emit(
            "approvals",
            "flowbus.approval.expired",
            approvalId=data["approvalId"],
            decisions=data["decisions"],
        )
        self._track(step, call, "expired")
        result = {"approved": False, "expired": True, "decisions": data["decisions"]}
        if timeout.action == "goto":
            call.complete(result, next_step=timeout.to)
        else:
            self._reject(step, call, result, "expired")

    def on_stale_decision(
        self, step: ApprovalStepModel, call: StepCall, decision: ApprovalDecision
    ) -> None:
        refuse(call, decision, "unknown or closed approval")

    def on_cancel(self, step: ApprovalStepModel, call: StepCall) -> None:
        if "approvalId" in call.state.data:
            self._track(step, call, "cancelled")

    @staticmethod
    def _track(step: ApprovalStepModel, call: StepCall, status: Any) -> None:
        data = call.state.data
        call.add_effect(
            TrackApproval(
                approval_id=data["approvalId"],
                step_id=step.id,
                attempt=call.attempt,
                status=status,
                assignees=tuple(data["assignees"]),
                quorum=str(step.quorum),
                deadline=parse_time(data["deadline"]) if data["deadline"] else None,
                summary=data.get("summary"),
            )
        )


def refuse(call: StepCall, decision: ApprovalDecision, reason: str) -> None:
    """A refused decision: an event says why, nothing else changes."""
    call.emit(
        "approvals",
        "flowbus.approval.decision_refused",
        approvalId=decision.approval_id,
        decidedBy=decision.decided_by,
        decision="approve" if decision.approved else "reject",
        reason=reason,
        decisionId=decision.decision_id,
    )
