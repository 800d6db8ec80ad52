"""Stored definition versions: immutable once stored; a change is a new version.

Which version new instances start on: triggers (and starts that name no version) start
the latest version, and only while it is not deprecated: deprecating the latest version
stops them rather than falling back to an older one. A start that names a version starts
it unless it is deprecated. A disabled workflow (`disabled_workflows`) starts nothing at
all; its running instances go on.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy import Column, DateTime, Table, Text, and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.definitions.compat import label_conflict
from flowbus.definitions.errors import DefinitionConflict
from flowbus.definitions.loader import validate_definition
from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.state import InstanceStatus
from flowbus.store.tables import instances, metadata
from flowbus.store.tables import workflow_definitions as defs

disabled_workflows = Table(
    "disabled_workflows",
    metadata,
    Column("workflow_id", Text, primary_key=True),
    Column("disabled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_by", Text),
)

DEFINITIONS_CHANNEL = "flowbus_definitions"
"""Workers LISTEN here and reload their definitions and wait probes on every notice."""


def canonical_document(definition: WorkflowDefinition) -> dict[str, Any]:
    """The definition as stored: camelCase JSON, without the version and deprecated flag
    (and without `kind` when declarative, as documents were before code-first ones)."""
    exclude = (
        {"version", "deprecated"} if definition.code_first else {"version", "deprecated", "kind"}
    )
    return definition.model_dump(mode="json", by_alias=True, exclude=exclude, exclude_none=True)


def checksum(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def definition_from_row(row: Any) -> WorkflowDefinition:
    """A stored version as a definition (its document, version and deprecated flag)."""
    document = dict(row.document)
    document["version"] = row.version
    document["deprecated"] = row.deprecated
    return validate_definition(document, f"{row.workflow_id} v{row.version}")


async def save_definition(
    conn: AsyncConnection, definition: WorkflowDefinition
) -> tuple[WorkflowDefinition, bool]:
    """Store a definition. Returns the stored version and whether it is new.

    With no version: content already stored under some version is a no-op, anything
    else becomes latest + 1. With a version: storing the same content again is a no-op, and
    different content under a stored version is refused (`DefinitionConflict`).
    """
    document = canonical_document(definition)
    digest = checksum(document)
    # Serialize concurrent applies of the same workflow (several workers at start-up).
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(definition.id))))
    stored = (
        await conn.execute(
            select(
                defs.c.version,
                defs.c.checksum,
                defs.c.document["versionLabel"].astext.label("label"),
            )
            .where(defs.c.workflow_id == definition.id)
            .order_by(defs.c.version.desc())
        )
    ).all()
    if definition.version is None:
        # Content stored before (under any version) is not stored again: re-applying an
        # old file must not turn back the latest version.
        for row in stored:
            if row.checksum == digest:
                return definition.model_copy(update={"version": row.version}), False
        version = 1 if not stored else stored[0].version + 1
    else:
        version = definition.version
        existing = (
            await conn.execute(
                select(defs.c.checksum).where(
                    and_(defs.c.workflow_id == definition.id, defs.c.version == version)
                )
            )
        ).first()
        if existing is not None:
            if existing.checksum != digest:
                raise DefinitionConflict(
                    f"{definition.id} v{version} is already stored with other content; "
                    "versions are immutable: give the change a new version (or omit it)"
                )
            return definition, False
    if definition.version_label is not None:
        reason = label_conflict(definition.version_label, [(r.version, r.label) for r in stored])
        if reason is not None:
            raise DefinitionConflict(f"{definition.id}: {reason}")
    await conn.execute(
        insert(defs).values(
            workflow_id=definition.id,
            version=version,
            name=definition.name,
            description=definition.description,
            deprecated=definition.deprecated,
            document=document,
            checksum=digest,
        )
    )
    await conn.execute(select(func.pg_notify(DEFINITIONS_CHANNEL, definition.id)))
    return definition.model_copy(update={"version": version}), True


async def get_definition(
    conn: AsyncConnection, workflow_id: str, version: int
) -> WorkflowDefinition | None:
    row = (
        await conn.execute(
            select(defs).where(and_(defs.c.workflow_id == workflow_id, defs.c.version == version))
        )
    ).first()
    return None if row is None else definition_from_row(row)


async def active_definitions(conn: AsyncConnection) -> list[WorkflowDefinition]:
    """The latest version of every workflow that is neither disabled nor, in that latest
    version, deprecated: the ones triggers start."""
    ranked = (
        select(
            defs,
            func.row_number()
            .over(partition_by=defs.c.workflow_id, order_by=defs.c.version.desc())
            .label("rank"),
        )
        .where(defs.c.workflow_id.not_in(select(disabled_workflows.c.workflow_id)))
        .subquery()
    )
    latest = select(ranked).where(and_(ranked.c.rank == 1, ranked.c.deprecated.is_(False)))
    rows = (await conn.execute(latest)).all()
    return [definition_from_row(row) for row in rows]


async def start_candidate(
    conn: AsyncConnection, workflow_id: str, version: int | None
) -> tuple[Any | None, bool]:
    """The row of the version a start asks for (the latest when `version` is None), or
    None when it is not stored; and whether the workflow is disabled. The caller refuses a
    deprecated row (see the module docstring)."""
    query = select(defs).where(defs.c.workflow_id == workflow_id)
    if version is None:
        query = query.order_by(defs.c.version.desc())
    else:
        query = query.where(defs.c.version == version)
    row = (await conn.execute(query.limit(1))).first()
    return row, await workflow_disabled(conn, workflow_id)


async def workflow_disabled(conn: AsyncConnection, workflow_id: str) -> bool:
    found = await conn.execute(
        select(disabled_workflows.c.workflow_id).where(
            disabled_workflows.c.workflow_id == workflow_id
        )
    )
    return found.first() is not None


async def disabled_workflow_ids(conn: AsyncConnection) -> set[str]:
    rows = await conn.execute(select(disabled_workflows.c.workflow_id))
    return {row.workflow_id for row in rows}


async def set_disabled(
    conn: AsyncConnection, workflow_id: str, disabled: bool, by: str | None = None
) -> bool:
    """Disable (or enable again) a stored workflow as a whole; False: it is not stored."""
    stored = await conn.execute(
        select(defs.c.workflow_id).where(defs.c.workflow_id == workflow_id).limit(1)
    )
    if stored.first() is None:
        return False
    if disabled:
        await conn.execute(
            insert(disabled_workflows)
            .values(workflow_id=workflow_id, disabled_by=by)
            .on_conflict_do_nothing(index_elements=["workflow_id"])
        )
    else:
        await conn.execute(
            delete(disabled_workflows).where(disabled_workflows.c.workflow_id == workflow_id)
        )
    await conn.execute(select(func.pg_notify(DEFINITIONS_CHANNEL, workflow_id)))
    return True


async def set_deprecated(
    conn: AsyncConnection, workflow_id: str, version: int, deprecated: bool = True
) -> bool:
    result = await conn.execute(
        update(defs)
        .where(and_(defs.c.workflow_id == workflow_id, defs.c.version == version))
        .values(deprecated=deprecated)
    )
    await conn.execute(select(func.pg_notify(DEFINITIONS_CHANNEL, workflow_id)))
    return bool(result.rowcount)


async def all_documents(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every stored version's document (for what running instances may wait on)."""
    rows = await conn.execute(select(defs.c.document))
    return [row.document for row in rows]


class DefinitionInUse(ValueError):
    """Instances of a definition have not ended: it cannot be deleted yet."""


_FINAL_STATUSES = [status.value for status in InstanceStatus if status.is_final]


async def delete_definition(
    conn: AsyncConnection, workflow_id: str, version: int | None = None
) -> list[int]:
    """Delete one stored version, or every version when `version` is None; return the
    versions deleted (none: nothing was stored).

    Refused with `DefinitionInUse` while an instance of those versions has not ended, since
    it needs its definition to go on. Deprecate a version first to stop new instances.
    """
    await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(workflow_id))))
    stored = defs.c.workflow_id == workflow_id
    unfinished = and_(
        instances.c.workflow_id == workflow_id, instances.c.status.not_in(_FINAL_STATUSES)
    )
    if version is not None:
        stored = and_(stored, defs.c.version == version)
        unfinished = and_(unfinished, instances.c.workflow_version == version)
    live = (
        await conn.execute(
            select(instances.c.workflow_version, func.count())
            .where(unfinished)
            .group_by(instances.c.workflow_version)
            .order_by(instances.c.workflow_version)
        )
    ).all()
    if live:
        counts = ", ".join(f"{count} on v{v}" for v, count in live)
        raise DefinitionInUse(
            f"{workflow_id} has instances that have not ended ({counts}): cancel them or let "
            "them finish first (deprecate the version to stop new ones)"
        )
    deleted = await conn.execute(delete(defs).where(stored).returning(defs.c.version))
    versions = sorted(row.version for row in deleted)
    if version is None:
        await conn.execute(
            delete(disabled_workflows).where(disabled_workflows.c.workflow_id == workflow_id)
        )
    if versions:
        await conn.execute(select(func.pg_notify(DEFINITIONS_CHANNEL, workflow_id)))
    return versions
