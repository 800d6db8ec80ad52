"""Approvals: the inbox, read from PostgreSQL. Deciding is publishing a signed decision to
the decisions topic (`flowbus approvals decide`), never a call to this API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query

from flowbus.api.auth import Role, guarded
from flowbus.api.context import Context
from flowbus.api.models import WORKFLOW_ID_PATTERN, ApiModel
from flowbus.api.problems import ApiProblem, ProblemItem
from flowbus.store.approval_views import ApprovalView, find_approvals_by

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

ApprovalStatus = Literal["pending", "approved", "rejected", "expired", "cancelled"]


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


@router.get("", summary="Approvals, oldest first (pending ones by default)", **guarded(Role.VIEWER))
async def list_approvals(
    ctx: Context,
    status: Annotated[ApprovalStatus, Query()] = "pending",
    assignee: Annotated[
        str | None,
        Query(
            max_length=500,
            description="`user:<name>`, `group:<name>`, or a bare user name: only approvals "
            "it is among the assignees of.",
        ),
    ] = None,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", pattern=WORKFLOW_ID_PATTERN, max_length=200)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ApprovalList:
    if assignee is not None and "\x00" in assignee:
        detail = "holds the NUL character (\\u0000), which no stored value has"
        item = ProblemItem(detail=detail, parameter="assignee")
        raise ApiProblem(
            400, "invalid-request", f"assignee {detail}", title="Invalid request", errors=[item]
        )
    async with ctx.engine.connect() as conn:
        found = await find_approvals_by(
            conn, status=status, assignee=assignee, workflow_id=workflow_id, limit=limit
        )
    return ApprovalList(items=[_summary(a) for a in found])


def _summary(approval: ApprovalView) -> ApprovalSummary:
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
