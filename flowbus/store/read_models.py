"""What operators read: definition versions, instances and their step history (for the
API), and the deployment's gauges (instances by status, outbox and timer lag, applied
positions) for the API's `/metrics`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.queries import SUMMARY_COLUMNS
from flowbus.store.tables import consumer_offsets, instances, outbox, step_executions, timers
from flowbus.store.tables import workflow_definitions as defs
from flowbus.store.timers import not_held

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


# -- instances ---------------------------------------------------------------------------


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


async def children_of(conn: AsyncConnection, instance_id: str, limit: int) -> list[Any]:
    """The subflow children of an instance, oldest first (`ix_instances_parent`)."""
    rows = await conn.execute(
        select(*SUMMARY_COLUMNS)
        .where(instances.c.parent_instance_id == instance_id)
        .order_by(instances.c.created_at, instances.c.id)
        .limit(limit)
    )
    return list(rows.all())


@dataclass(frozen=True, slots=True)
class DefinitionExtras:
    """What a page needs of an instance's definition beside its steps."""

    checksum: str
    execution_log_level: str | None
    ui_components: Any


async def definition_extras(
    conn: AsyncConnection, workflow_id: str, version: int
) -> DefinitionExtras | None:
    """The executionLog level and uiComponents of one stored version (None when the version
    is gone), without loading its whole document."""
    document = defs.c.document
    row = (
        await conn.execute(
            select(
                defs.c.checksum,
                document["executionLog"]["level"].astext.label("level"),
                document["uiComponents"].label("ui"),
            ).where(defs.c.workflow_id == workflow_id, defs.c.version == version)
        )
    ).first()
    if row is None:
        return None
    return DefinitionExtras(row.checksum, row.level, row.ui)


async def count_by_status(conn: AsyncConnection) -> list[Any]:
    """(workflow_id, status, count) for every workflow and status that has instances."""
    rows = await conn.execute(
        select(instances.c.workflow_id, instances.c.status, func.count().label("count")).group_by(
            instances.c.workflow_id, instances.c.status
        )
    )
    return list(rows.all())


# -- deployment gauges -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueWork:
    """Rows of one kind of the timers table that are due and not taken."""

    kind: str
    count: int
    oldest_due: datetime


@dataclass(frozen=True, slots=True)
class DeploymentReading:
    """The deployment's state as PostgreSQL knows it, at one moment."""

    counts: list[Any]
    """(workflow_id, status, count) rows."""
    outbox_rows: int
    outbox_oldest: datetime | None
    due: list[DueWork]
    positions: dict[tuple[str, int], int]
    """The next offset to apply per (topic, partition), for the consumer group."""


async def read_deployment(
    conn: AsyncConnection, consumer_group: str, now: datetime
) -> DeploymentReading:
    counts = await count_by_status(conn)
    waiting, oldest = (
        await conn.execute(select(func.count(), func.min(outbox.c.created_at)))
    ).one()
    due = (
        await conn.execute(
            select(timers.c.kind, func.count(), func.min(timers.c.due_at))
            .where(
                and_(
                    timers.c.due_at <= now,
                    or_(timers.c.locked_until.is_(None), timers.c.locked_until < now),
                    not_held(),
                )
            )
            .group_by(timers.c.kind)
        )
    ).all()
    applied = (
        await conn.execute(
            select(
                consumer_offsets.c.topic,
                consumer_offsets.c.partition,
                consumer_offsets.c.next_offset,
            ).where(consumer_offsets.c.consumer_group == consumer_group)
        )
    ).all()
    return DeploymentReading(
        counts=counts,
        outbox_rows=waiting,
        outbox_oldest=oldest,
        due=[DueWork(kind, count, first) for kind, count, first in due],
        positions={(row.topic, row.partition): row.next_offset for row in applied},
    )
