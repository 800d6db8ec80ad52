"""What the API reads from PostgreSQL: definition versions, instances (filtered, keyset
paginated on (created_at, id), newest first) and their step history."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from flowbus.definitions.loader import validate_definition
from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.state import InstanceStatus
from flowbus.store.tables import instances, step_executions
from flowbus.store.tables import workflow_definitions as defs


class BadCursor(ValueError):
    """A pagination cursor this API did not hand out."""


# -- definitions -------------------------------------------------------------------------

_VERSION_COLUMNS = (
    defs.c.workflow_id,
    defs.c.version,
    defs.c.deprecated,
    defs.c.name,
    defs.c.description,
    defs.c.checksum,
    defs.c.created_at,
)


async def definition_versions(conn: AsyncConnection, workflow_id: str | None = None) -> list[Any]:
    """Version rows (without documents), by workflow and version."""
    query = select(*_VERSION_COLUMNS).order_by(defs.c.workflow_id, defs.c.version)
    if workflow_id is not None:
        query = query.where(defs.c.workflow_id == workflow_id)
    return list((await conn.execute(query)).all())


async def stored_definition(
    conn: AsyncConnection, workflow_id: str, version: int | None
) -> Any | None:
    """One version's row with its document: `version`, or the latest when None."""
    query = select(defs).where(defs.c.workflow_id == workflow_id)
    if version is None:
        query = query.order_by(defs.c.version.desc()).limit(1)
    else:
        query = query.where(defs.c.version == version)
    return (await conn.execute(query)).first()


async def startable_definition(
    conn: AsyncConnection, workflow_id: str, version: int | None
) -> Any | None:
    """The row of the version a manual start asks for, else of the latest non-deprecated
    one; None when there is no such version."""
    query = select(defs).where(defs.c.workflow_id == workflow_id)
    if version is None:
        query = query.where(defs.c.deprecated.is_(False)).order_by(defs.c.version.desc())
    else:
        query = query.where(defs.c.version == version)
    return (await conn.execute(query.limit(1))).first()


def as_definition(row: Any) -> WorkflowDefinition:
    document = dict(row.document)
    document["version"] = row.version
    document["deprecated"] = row.deprecated
    return validate_definition(document, f"{row.workflow_id} v{row.version}")


# -- instances ---------------------------------------------------------------------------

_SUMMARY_COLUMNS = (
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
        select(*_SUMMARY_COLUMNS)
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


async def instance_row(conn: AsyncConnection, instance_id: str) -> Any | None:
    """The instance's row with its state, or None."""
    return (await conn.execute(select(instances).where(instances.c.id == instance_id))).first()


async def instance_status(conn: AsyncConnection, instance_id: str) -> Any | None:
    """Status, workflow and state of one instance (to check a command is legal), or None."""
    return (
        await conn.execute(
            select(
                instances.c.status,
                instances.c.workflow_id,
                instances.c.workflow_version,
                instances.c.created_at,
                instances.c.state,
            ).where(instances.c.id == instance_id)
        )
    ).first()


async def step_history(conn: AsyncConnection, instance_id: str, state: dict[str, Any]) -> list[Any]:
    """Every step attempt in the order they ran. Steps one transition ran share a start
    time; among those, the order the instance completed them in decides."""
    rows = await conn.execute(
        select(step_executions).where(step_executions.c.instance_id == instance_id)
    )
    completed: list[str] = state.get("completed", [])
    rank = {step_id: n for n, step_id in reversed(list(enumerate(completed)))}
    return sorted(
        rows.all(), key=lambda r: (r.started_at, rank.get(r.step_id, len(rank)), r.attempt)
    )


async def count_by_status(conn: AsyncConnection) -> list[Any]:
    """(workflow_id, status, count) for every workflow and status that has instances."""
    rows = await conn.execute(
        select(instances.c.workflow_id, instances.c.status, func.count().label("count")).group_by(
            instances.c.workflow_id, instances.c.status
        )
    )
    return list(rows.all())
