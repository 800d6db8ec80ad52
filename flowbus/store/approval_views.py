"""What operators read about approvals: the approvals of one status (pending by default),
for one assignee or workflow, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import approvals


@dataclass(frozen=True, slots=True)
class ApprovalView:
    """One approval as an inbox lists it."""

    approval_id: str
    instance_id: str
    workflow_id: str
    workflow_version: int
    step_id: str
    status: str
    assignees: list[str]
    quorum: str
    deadline: datetime | None
    summary: Any
    created_at: datetime


def assignee_entries(assignee: str) -> list[str]:
    """The `assignees` entries naming `assignee`: `user:<name>` and `group:<name>` as they
    are, a bare name as itself or as `user:<name>`."""
    return [assignee] if ":" in assignee else [assignee, f"user:{assignee}"]


async def find_approvals_by(
    conn: AsyncConnection,
    *,
    status: str = "pending",
    assignee: str | None = None,
    workflow_id: str | None = None,
    limit: int = 100,
) -> list[ApprovalView]:
    """Approvals in `status` matching every filter given, oldest first (the filters use
    `ix_approvals_status_workflow` and the GIN index on assignees)."""
    condition = approvals.c.status == status
    if workflow_id is not None:
        condition = and_(condition, approvals.c.workflow_id == workflow_id)
    if assignee is not None:
        entries = assignee_entries(assignee)
        condition = and_(condition, or_(*(approvals.c.assignees.contains([e]) for e in entries)))
    rows = await conn.execute(
        select(approvals)
        .where(condition)
        .order_by(approvals.c.created_at, approvals.c.approval_id)
        .limit(limit)
    )
    return [
        ApprovalView(
            approval_id=str(r.approval_id),
            instance_id=str(r.instance_id),
            workflow_id=r.workflow_id,
            workflow_version=r.workflow_version,
            step_id=r.step_id,
            status=r.status,
            assignees=list(r.assignees),
            quorum=r.quorum,
            deadline=r.deadline,
            summary=r.summary,
            created_at=r.created_at,
        )
        for r in rows
    ]
