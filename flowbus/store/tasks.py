"""Stored task versions, immutable once stored like definition versions (a change is a new
version, content already stored is a no-op), and which definition versions were made from
which task versions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    and_,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.definitions.errors import DefinitionConflict
from flowbus.definitions.tasks import TaskDefinition, TaskUse, canonical_task, validate_task
from flowbus.store.tables import metadata

task_definitions = Table(
    "task_definitions",
    metadata,
    Column("task_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", Text),
    Column("description", Text),
    Column("action", Text, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("checksum", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("task_id", "version"),
)

task_uses = Table(
    "task_uses",
    metadata,
    Column("workflow_id", Text, nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("step_id", Text, nullable=False),
    Column("task_id", Text, nullable=False),
    Column("task_version", Integer, nullable=False),
    PrimaryKeyConstraint("workflow_id", "workflow_version", "step_id"),
    ForeignKeyConstraint(
        ["workflow_id", "workflow_version"],
        ["workflow_definitions.workflow_id", "workflow_definitions.version"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(
        ["task_id", "task_version"],
        ["task_definitions.task_id", "task_definitions.version"],
    ),
    Index("ix_task_uses_task", "task_id", "task_version"),
)


def _checksum(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def task_from_row(row: Any) -> TaskDefinition:
    """A stored version as a task (its document and version)."""
    return validate_task({**row.document, "version": row.version}, f"{row.task_id} v{row.version}")


async def save_task(conn: AsyncConnection, task: TaskDefinition) -> tuple[TaskDefinition, bool]:
    """Store a task. Returns the stored version and whether it is new.

    Without a version, content already stored (under any version) is a no-op and anything
    else becomes latest + 1; with one, the same content again is a no-op and other content
    under a stored version is refused (`DefinitionConflict`).
    """
    document = canonical_task(task)
    digest = _checksum(document)
    # Serialize concurrent stores of the same task (several workers at start-up).
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"task:{task.id}"))))
    stored = (
        await conn.execute(
            select(task_definitions.c.version, task_definitions.c.checksum)
            .where(task_definitions.c.task_id == task.id)
            .order_by(task_definitions.c.version.desc())
        )
    ).all()
    if task.version is None:
        for row in stored:
            if row.checksum == digest:
                return task.model_copy(update={"version": row.version}), False
        version = 1 if not stored else stored[0].version + 1
    else:
        version = task.version
        same = [row for row in stored if row.version == version]
        if same:
            if same[0].checksum != digest:
                raise DefinitionConflict(
                    f"task {task.id} v{version} is already stored with other content; "
                    "versions are immutable: give the change a new version (or omit it)"
                )
            return task, False
    await conn.execute(
        insert(task_definitions).values(
            task_id=task.id,
            version=version,
            name=task.name,
            description=task.description,
            action=task.action,
            document=document,
            checksum=digest,
        )
    )
    return task.model_copy(update={"version": version}), True


async def task_library(
    conn: AsyncConnection, task_ids: Iterable[str]
) -> dict[str, dict[int, TaskDefinition]]:
    """Every stored version of the given tasks: task id -> version -> task."""
    wanted = sorted(set(task_ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(task_definitions).where(task_definitions.c.task_id.in_(wanted))
    )
    library: dict[str, dict[int, TaskDefinition]] = {}
    for row in rows:
        library.setdefault(row.task_id, {})[row.version] = task_from_row(row)
    return library


async def record_task_uses(
    conn: AsyncConnection, workflow_id: str, workflow_version: int, uses: Sequence[TaskUse]
) -> None:
    """Record which task versions a definition version was made from (once)."""
    if not uses:
        return
    rows = [
        {
            "workflow_id": workflow_id,
            "workflow_version": workflow_version,
            "step_id": use.step_id,
            "task_id": use.task_id,
            "task_version": use.task_version,
        }
        for use in uses
    ]
    await conn.execute(insert(task_uses).values(rows).on_conflict_do_nothing())


_VERSION_COLUMNS = (
    task_definitions.c.task_id,
    task_definitions.c.version,
    task_definitions.c.name,
    task_definitions.c.description,
    task_definitions.c.action,
    task_definitions.c.checksum,
    task_definitions.c.created_at,
)


async def task_versions(conn: AsyncConnection, task_id: str | None = None) -> list[Any]:
    """Version rows (without documents), by task and version."""
    query = select(*_VERSION_COLUMNS).order_by(
        task_definitions.c.task_id, task_definitions.c.version
    )
    if task_id is not None:
        query = query.where(task_definitions.c.task_id == task_id)
    return list((await conn.execute(query)).all())


async def stored_task(conn: AsyncConnection, task_id: str, version: int | None) -> Any | None:
    """One version's row with its document: `version`, or the latest when None."""
    query = select(task_definitions).where(task_definitions.c.task_id == task_id)
    if version is None:
        query = query.order_by(task_definitions.c.version.desc()).limit(1)
    else:
        query = query.where(task_definitions.c.version == version)
    return (await conn.execute(query)).first()


async def uses_of_task(conn: AsyncConnection, task_id: str, version: int | None) -> list[Any]:
    """The definition versions (and steps) made from a task, or from one of its versions."""
    where = task_uses.c.task_id == task_id
    if version is not None:
        where = and_(where, task_uses.c.task_version == version)
    query = (
        select(task_uses)
        .where(where)
        .order_by(task_uses.c.workflow_id, task_uses.c.workflow_version, task_uses.c.step_id)
    )
    return list((await conn.execute(query)).all())
