"""Read-only lookups of instances for operators (the CLI and the HTTP API): filtered,
keyset-paginated on (created_at, id), newest first."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from flowbus.engine.state import InstanceStatus
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
    where = InstanceFilter(
        workflow_id=workflow_id,
        statuses=[InstanceStatus(status)] if status is not None else [],
        correlation_id=correlation_id,
    )
    rows, _ = await instance_page(conn, where, limit, None)
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


class BadCursor(ValueError):
    """A pagination cursor this API did not hand out."""


SUMMARY_COLUMNS = (
    instances.c.id,
    instances.c.workflow_id,
    instances.c.workflow_version,
    instances.c.status,
    instances.c.correlation_id,
    instances.c.parent_instance_id,
    instances.c.created_at,
    instances.c.updated_at,
    instances.c.completed_at,
)


@dataclass(frozen=True, slots=True)
class InstanceFilter:
    workflow_id: str | None = None
    version: int | None = None
    statuses: Sequence[InstanceStatus] = ()
    correlation_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.workflow_id is not None:
            found.append(instances.c.workflow_id == self.workflow_id)
        if self.version is not None:
            found.append(instances.c.workflow_version == self.version)
        if self.statuses:
            found.append(instances.c.status.in_([s.value for s in self.statuses]))
        if self.correlation_id is not None:
            found.append(instances.c.correlation_id == self.correlation_id)
        if self.created_after is not None:
            found.append(instances.c.created_at >= _aware(self.created_after))
        if self.created_before is not None:
            found.append(instances.c.created_at < _aware(self.created_before))
        return found


async def instance_page(
    conn: AsyncConnection, where: InstanceFilter, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of instance rows, newest first, and the cursor of the next page."""
    conditions = where.conditions()
    if cursor is not None:
        created_at, instance_id = decode_cursor(cursor)
        after = tuple_(
            literal(created_at, instances.c.created_at.type),
            literal(instance_id, instances.c.id.type),
        )
        conditions.append(tuple_(instances.c.created_at, instances.c.id) < after)
    query = (
        select(*SUMMARY_COLUMNS)
        .where(*conditions)
        .order_by(instances.c.created_at.desc(), instances.c.id.desc())
        .limit(limit + 1)
    )
    rows = (await conn.execute(query)).all()
    if len(rows) <= limit:
        return list(rows), None
    last = rows[limit - 1]
    return list(rows[:limit]), encode_cursor(last.created_at, str(last.id))


def encode_cursor(created_at: datetime, instance_id: str) -> str:
    raw = orjson.dumps([created_at.isoformat(), instance_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, instance_id = orjson.loads(raw)
        created_at = datetime.fromisoformat(moment)
        if created_at.tzinfo is None or not isinstance(instance_id, str):
            raise ValueError
        return created_at, str(uuid.UUID(instance_id))
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadCursor("cursor is not one this API handed out") from None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
