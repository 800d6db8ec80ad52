"""Approval rows: what is pending, for whom, until when."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.engine.effects import TrackApproval
from flowbus.engine.state import InstanceState
from flowbus.store.tables import approvals


def approval_row(state: InstanceState, effect: TrackApproval) -> dict[str, Any]:
    """The row of an approval an instance tracks."""
    return {
        "approval_id": effect.approval_id,
        "instance_id": state.id,
        "workflow_id": state.workflow_id,
        "workflow_version": state.version,
        "step_id": effect.step_id,
        "attempt": effect.attempt,
        "status": effect.status,
        "assignees": list(effect.assignees),
        "quorum": effect.quorum,
        "deadline": effect.deadline,
        "summary": effect.summary,
    }


class ApprovalRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def save(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert approvals, or update the status, assignees and deadline of known ones."""
        if not rows:
            return
        stmt = insert(approvals)
        await self._conn.execute(
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

    async def find(self, ids: Sequence[str]) -> dict[str, Any]:
        """The rows of the approvals among `ids` that exist, by approval id."""
        if not ids:
            return {}
        rows = await self._conn.execute(
            select(approvals).where(approvals.c.approval_id.in_(sorted(set(ids))))
        )
        return {str(row.approval_id): row for row in rows}
