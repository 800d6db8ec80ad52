"""What the approvals routes answer: approvals with their quorum progress, the decisions
their instance accepted and the decisions it refused, and what deciding takes and gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from pydantic import Field

from flowbus.api.models import ApiModel, RequestModel
from flowbus.steps.approval import matches
from flowbus.store.approval_views import ApprovalProgress, ApprovalView
from flowbus.store.refusals import Refusal

ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "cancelled"]
Answer = Literal["approve", "reject"]


class ApprovalSummary(ApiModel):
    approval_id: str
    instance_id: str
    workflow_id: str
    workflow_version: int
    step_id: str
    status: ApprovalStatus
    assignees: list[str]
    quorum: str
    deadline: datetime | None = None
    summary: Any = None
    created_at: datetime


class ApprovalList(ApiModel):
    items: list[ApprovalSummary]


class QuorumProgress(ApiModel):
    approvals: int = Field(description="Approvals counted toward the quorum so far.")
    rejections: int
    required: int = Field(
        description="Approvals the quorum needs: 1 for any, every assignee entry for all, "
        "k for a number."
    )


class AcceptedDecision(ApiModel):
    decided_by: str
    groups: list[str] = []
    decision: Answer
    comment: str | None = None
    at: str | None = Field(None, description="When the instance accepted it (RFC 3339).")


class RefusedDecision(ApiModel):
    decided_by: str | None = None
    decision: str | None = None
    reason: str
    decision_id: str | None = Field(None, description="The refused decision's event id.")
    refused_at: datetime
    notice: bool = Field(
        description="Refused before it reached the instance (malformed, no or a bad "
        "token, a closed approval); false when the instance refused it (not an assignee, "
        "after the deadline, a repeated decider)."
    )


class PendingApproval(ApprovalSummary):
    attempt: int
    progress: QuorumProgress
    decisions: list[AcceptedDecision]
    your_decision: Answer | None = Field(
        None, description="What the calling person decided already, if anything."
    )


class PendingApprovalList(ApiModel):
    items: list[PendingApproval]


class ApprovalDetail(PendingApproval):
    refusals: list[RefusedDecision] = Field(
        description="Decisions that changed nothing, with the reason, oldest first."
    )
    earlier_attempts: list[ApprovalSummary] = Field(
        default_factory=list, description="Approvals the step requested before (retries, loops)."
    )


class DecisionRequest(RequestModel):
    comment: str | None = Field(None, max_length=2000)
    decided_by: str | None = Field(
        None, max_length=200, description="Who decides, when auth is off (default: dashboard)."
    )
    groups: list[str] | None = Field(
        None, max_length=100, description="The decider's groups, when auth is off."
    )


class DecisionPublished(ApiModel):
    decision_id: str = Field(description="The decision event's id, named by its outcome.")
    decision: Answer
    approval_id: str
    instance_id: str
    step_id: str
    decided_by: str
    groups: list[str]
    topic: str
    partition: int
    offset: int


def summary(approval: ApprovalView) -> ApprovalSummary:
    return ApprovalSummary(
        approval_id=approval.approval_id,
        instance_id=approval.instance_id,
        workflow_id=approval.workflow_id,
        workflow_version=approval.workflow_version,
        step_id=approval.step_id,
        status=cast(ApprovalStatus, approval.status),
        assignees=approval.assignees,
        quorum=approval.quorum,
        deadline=approval.deadline,
        summary=approval.summary,
        created_at=approval.created_at,
    )


def pending(progress: ApprovalProgress, user: str | None) -> PendingApproval:
    read = [_accepted(d) for d in progress.decisions if isinstance(d, dict)]
    decisions = [d for d in read if d is not None]
    mine = next((d.decision for d in decisions if user and d.decided_by == user), None)
    return PendingApproval(
        **summary(progress.approval).model_dump(),
        attempt=progress.approval.attempt,
        progress=_progress(progress.approval, decisions),
        decisions=decisions,
        your_decision=mine,
    )


def _accepted(record: dict[str, Any]) -> AcceptedDecision | None:
    by, decision = record.get("by"), record.get("decision")
    if not isinstance(by, str) or decision not in ("approve", "reject"):
        return None
    groups = record.get("groups")
    comment, at = record.get("comment"), record.get("at")
    return AcceptedDecision(
        decided_by=by,
        groups=[g for g in groups if isinstance(g, str)] if isinstance(groups, list) else [],
        decision=decision,
        comment=comment if isinstance(comment, str) else None,
        at=at if isinstance(at, str) else None,
    )


def _progress(approval: ApprovalView, decisions: list[AcceptedDecision]) -> QuorumProgress:
    approvals = [d for d in decisions if d.decision == "approve"]
    rejections = len(decisions) - len(approvals)
    if approval.quorum == "all":
        covered = sum(
            any(matches(entry, d.decided_by, tuple(d.groups)) for d in approvals)
            for entry in approval.assignees
        )
        return QuorumProgress(
            approvals=covered, rejections=rejections, required=len(approval.assignees)
        )
    required = int(approval.quorum) if approval.quorum.isdigit() else 1
    return QuorumProgress(approvals=len(approvals), rejections=rejections, required=required)


def refused(refusal: Refusal) -> RefusedDecision:
    return RefusedDecision(
        decided_by=refusal.decided_by,
        decision=refusal.decision,
        reason=refusal.reason,
        decision_id=refusal.decision_id,
        refused_at=refusal.refused_at,
        notice=not refusal.numbered,
    )
