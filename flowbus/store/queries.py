"""Read-only lookups of instances for operators (the CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import instances


@dataclass(frozen=True, slots=True)
class InstanceSummary:
    """One instance as a listing shows it."""

    id: str
    workflow_id: str
    workflow_version: int
    status: str
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "instanceId": self.id,
            "workflowId": self.workflow_id,
            "workflowVersion": self.workflow_version,
            "status": self.status,
            "correlationId": self.correlation_id,
            "createdAt": self.created_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
        }


async def find_instances(
    conn: AsyncConnection,
    *,
    correlation_id: str | None = None,
    workflow_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[InstanceSummary]:
    """Instances matching every filter given, newest first (the correlation filter uses
    the `ix_instances_correlation` index)."""
    query = select(
        instances.c.id,
        instances.c.workflow_id,
        instances.c.workflow_version,
        instances.c.status,
        instances.c.correlation_id,
        instances.c.created_at,
        instances.c.updated_at,
    )
    if correlation_id is not None:
        query = query.where(instances.c.correlation_id == correlation_id)
    if workflow_id is not None:
        query = query.where(instances.c.workflow_id == workflow_id)
    if status is not None:
        query = query.where(instances.c.status == status)
    query = query.order_by(instances.c.created_at.desc(), instances.c.id).limit(limit)
    rows = await conn.execute(query)
    return [
        InstanceSummary(
            id=str(row.id),
            workflow_id=row.workflow_id,
            workflow_version=row.workflow_version,
            status=row.status,
            correlation_id=row.correlation_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]
