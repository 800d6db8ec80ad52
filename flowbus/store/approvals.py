"""Approval rows: what is pending, for whom, until when."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import approvals


async def upsert_approvals(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = insert(approvals)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["approval_id"],
            set_={
                "status": stmt.excluded.status,
                "assignees": stmt.excluded.assignees,
                "deadline": stmt.excluded.deadline,
                "updated_at": func.now(),
            },
        ),
        list(rows),
    )


async def find_approvals(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = await conn.execute(
        select(approvals).where(approvals.c.approval_id.in_(sorted(set(ids))))
    )
    return {str(row.approval_id): row for row in rows}


async def pending_approvals(
    conn: AsyncConnection,
    *,
    assignee: str | None = None,
    workflow_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Pending approvals, oldest first; `assignee` is an entry such as user:alice or group:x."""
    condition = approvals.c.status == "pending"
    if workflow_id is not None:
        condition = and_(condition, approvals.c.workflow_id == workflow_id)
    if assignee is not None:
        entries = [assignee] if ":" in assignee else [assignee, f"user:{assignee}"]
        condition = and_(condition, or_(*(approvals.c.assignees.contains([e]) for e in entries)))
    rows = await conn.execute(
        select(approvals).where(condition).order_by(approvals.c.created_at).limit(limit)
    )
    return [
        {
            "approvalId": str(r.approval_id),
            "instanceId": str(r.instance_id),
            "workflowId": r.workflow_id,
            "workflowVersion": r.workflow_version,
            "stepId": r.step_id,
            "assignees": r.assignees,
            "quorum": r.quorum,
            "deadline": r.deadline.isoformat() if r.deadline else None,
            "summary": r.summary,
            "createdAt": r.created_at.isoformat(),
        }
        for r in rows
    ]
