"""Instance rows and their step history: insert, lock, update."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.engine.effects import RecordAttempt
from flowbus.engine.state import InstanceState
from flowbus.store.tables import instances, step_executions


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def instance_row(state: InstanceState, trigger_event_id: str | None = None) -> dict[str, Any]:
    final = state.status.is_final
    return {
        "id": state.id,
        "workflow_id": state.workflow_id,
        "workflow_version": state.version,
        "status": state.status.value,
        "correlation_id": state.correlation_id,
        "parent_instance_id": state.parent.instance_id if state.parent else None,
        "parent_step_id": state.parent.step_id if state.parent else None,
        "trigger_event_id": trigger_event_id,
        "state": state.model_dump(mode="json"),
        "input": state.input,
        "output": state.output,
        "error": state.error.model_dump(mode="json") if state.error else None,
        "created_at": _parse_time(state.created_at),
        "updated_at": _parse_time(state.updated_at),
        "completed_at": _parse_time(state.updated_at) if final else None,
    }


async def insert_new(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert instances whose id is not taken yet; return the ids actually inserted.

    Instance ids derive from the triggering event, so a redelivered event maps onto the
    existing row and inserts nothing.
    """
    if not rows:
        return set()
    # executemany (batched into multi-row INSERTs by the driver layer) keeps one cached
    # statement; a .values(list) statement would be compiled anew for every batch size.
    result = await conn.execute(
        insert(instances)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(instances.c.id, sort_by_parameter_order=True),
        list(rows),
    )
    return {str(row[0]) for row in result if row[0] is not None}


async def lock_states(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, InstanceState]:
    """Lock instances (in id order, so concurrent batches cannot deadlock) and load them."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(instances.c.id, instances.c.state)
        .where(instances.c.id.in_(wanted))
        .order_by(instances.c.id)
        .with_for_update()
    )
    return {str(row.id): InstanceState.model_validate(row.state) for row in rows}


async def save_states(conn: AsyncConnection, states: Sequence[InstanceState]) -> None:
    if not states:
        return
    rows = []
    for state in states:
        row = instance_row(state)
        rows.append(
            {
                "b_id": state.id,
                "status": row["status"],
                "state": row["state"],
                "output": row["output"],
                "error": row["error"],
                "updated_at": row["updated_at"],
                "completed_at": row["completed_at"],
            }
        )
    stmt = (
        update(instances)
        .where(instances.c.id == bindparam("b_id"))
        .values(
            status=bindparam("status"),
            state=bindparam("state"),
            output=bindparam("output"),
            error=bindparam("error"),
            updated_at=bindparam("updated_at"),
            completed_at=bindparam("completed_at"),
        )
    )
    await conn.execute(stmt, rows)


async def record_attempts(
    conn: AsyncConnection, attempts: Iterable[tuple[str, RecordAttempt]]
) -> None:
    """Upsert step attempts; several records of one attempt in a batch collapse to the last."""
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for instance_id, a in attempts:
        latest[(instance_id, a.step_id, a.attempt)] = {
            "instance_id": instance_id,
            "step_id": a.step_id,
            "attempt": a.attempt,
            "step_type": a.step_type,
            "status": a.status,
            "input": a.input,
            "output": a.output,
            "error": a.error,
            "started_at": _parse_time(a.started_at),
            "finished_at": _parse_time(a.finished_at),
        }
    if not latest:
        return
    stmt = insert(step_executions)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["instance_id", "step_id", "attempt"],
            set_={
                "status": stmt.excluded.status,
                "output": stmt.excluded.output,
                "error": stmt.excluded.error,
                "finished_at": stmt.excluded.finished_at,
            },
        ),
        list(latest.values()),
    )
