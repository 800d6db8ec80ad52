"""What the API reads from PostgreSQL: definition versions, instances (filtered, keyset
paginated on (created_at, id), newest first) and their step history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import instances, step_executions
from flowbus.store.tables import workflow_definitions as defs

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


async def count_by_status(conn: AsyncConnection) -> list[Any]:
    """(workflow_id, status, count) for every workflow and status that has instances."""
    rows = await conn.execute(
        select(instances.c.workflow_id, instances.c.status, func.count().label("count")).group_by(
            instances.c.workflow_id, instances.c.status
        )
    )
    return list(rows.all())
