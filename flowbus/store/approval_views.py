"""What operators and approvers read about approvals: the approvals of one status (pending
by default) for one assignee or workflow, the pending ones of a person (user and groups),
and one step's approvals with the decisions its instance accepted, oldest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from flowbus.store.tables import approvals, instances


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
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class ApprovalProgress:
    """An approval with the decisions its instance accepted so far (`by`, `groups`,
    `decision`, `comment`, `at`), in the order they came."""

    approval: ApprovalView
    decisions: list[dict[str, Any]]


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
    return [_view(r) for r in rows]


def person_entries(user: str | None, groups: Sequence[str]) -> list[str]:
    """The `assignees` entries that name a person: `user:<name>`, the bare name (when it
    holds no colon: a bare entry with one is read as `kind:name`), and `group:<name>` for
    each of their groups."""
    named = [f"user:{user}"] + ([user] if ":" not in user else []) if user else []
    return named + [f"group:{g}" for g in groups if g]


async def pending_for(
    conn: AsyncConnection,
    entries: Sequence[str] | None,
    *,
    workflow_id: str | None = None,
    limit: int = 100,
) -> list[ApprovalProgress]:
    """Pending approvals among whose assignees is any of `entries` (every pending one when
    None), oldest first, with the decisions accepted so far. The GIN index on assignees
    finds them; decisions come from the instance's state (a pending approval's step is
    active, so its bookkeeping is there)."""
    condition: ColumnElement[bool] = approvals.c.status == "pending"
    if workflow_id is not None:
        condition = and_(condition, approvals.c.workflow_id == workflow_id)
    if entries is not None:
        if not entries:
            return []
        contains = [approvals.c.assignees.contains([e]) for e in sorted(set(entries))]
        condition = and_(condition, or_(*contains))
    return await _with_decisions(
        conn,
        condition,
        [approvals.c.created_at, approvals.c.approval_id],
        limit,
    )


async def approvals_of_step(
    conn: AsyncConnection, instance_id: str, step_id: str, limit: int = 20
) -> list[ApprovalProgress]:
    """The approvals an instance's step requested, newest attempt first."""
    condition = and_(approvals.c.instance_id == instance_id, approvals.c.step_id == step_id)
    return await _with_decisions(conn, condition, [approvals.c.attempt.desc()], limit)


async def _with_decisions(
    conn: AsyncConnection, condition: ColumnElement[bool], order: list[Any], limit: int
) -> list[ApprovalProgress]:
    step_data = instances.c.state["steps"][approvals.c.step_id]["data"]
    rows = await conn.execute(
        select(approvals, step_data.label("step_data"))
        .select_from(approvals.outerjoin(instances, instances.c.id == approvals.c.instance_id))
        .where(condition)
        .order_by(*order)
        .limit(limit)
    )
    found = []
    for r in rows:
        data = r.step_data if isinstance(r.step_data, dict) else {}
        decisions = data.get("decisions") if data.get("approvalId") == str(r.approval_id) else None
        found.append(ApprovalProgress(_view(r), list(decisions or [])))
    return found


def _view(r: Any) -> ApprovalView:
    return ApprovalView(
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
        attempt=r.attempt,
    )
