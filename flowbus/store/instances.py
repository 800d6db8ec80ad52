"""Instance rows and their step history: insert, lock, update, purge."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.engine.effects import RecordAttempt
from flowbus.engine.state import InstanceState, InstanceStatus
from flowbus.store.bulk import BulkInsert, BulkUpdate, JsonText
from flowbus.store.tables import instances, step_executions
from flowbus.times import parse_time


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


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
        "state": JsonText(state.model_dump_json()),
        "input": state.input,
        "output": state.output,
        "error": state.error.model_dump(mode="json") if state.error else None,
        "created_at": _parse_time(state.created_at),
        "updated_at": _parse_time(state.updated_at),
        "completed_at": _parse_time(state.updated_at) if final else None,
    }


_INSERT_NEW = BulkInsert(
    instances,
    [
        "id",
        "workflow_id",
        "workflow_version",
        "status",
        "correlation_id",
        "parent_instance_id",
        "parent_step_id",
        "trigger_event_id",
        "state",
        "input",
        "output",
        "error",
        "created_at",
        "updated_at",
        "completed_at",
    ],
    "ON CONFLICT (id) DO NOTHING RETURNING id",
)
_RECORD_ATTEMPTS = BulkInsert(
    step_executions,
    [
        "instance_id",
        "step_id",
        "attempt",
        "step_type",
        "status",
        "input",
        "output",
        "error",
        "started_at",
        "finished_at",
    ],
    "ON CONFLICT (instance_id, step_id, attempt) DO UPDATE SET status = excluded.status,"
    " output = excluded.output, error = excluded.error, finished_at = excluded.finished_at",
)


_SAVE = BulkUpdate(
    instances,
    "id",
    ["status", "state", "output", "error", "updated_at", "completed_at"],
)

_PURGE = text(
    """
    WITH gone AS (
        DELETE FROM instances
        WHERE workflow_id = :workflow_id AND completed_at IS NOT NULL AND completed_at < :before
        RETURNING id
    ), history AS (
        DELETE FROM step_executions WHERE instance_id IN (SELECT id FROM gone)
    )
    SELECT count(*) FROM gone
    """
)


class InstanceRepository:
    """Instances and their step history, in the caller's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert_new(
        self, states: Sequence[InstanceState], trigger_event_ids: Sequence[str | None]
    ) -> set[str]:
        """Insert instances whose id is not taken yet; return the ids actually inserted.

        Instance ids derive from the triggering event, so a redelivered event maps onto the
        existing row and inserts nothing.
        """
        if not states:
            return set()
        rows = [
            instance_row(state, trigger_event_id=event_id)
            for state, event_id in zip(states, trigger_event_ids, strict=True)
        ]
        result = await self._conn.execute(_INSERT_NEW.statement, _INSERT_NEW.parameters(rows))
        return {str(row[0]) for row in result}

    async def lock(self, ids: Iterable[str]) -> dict[str, InstanceState]:
        """Lock instances (in id order, so concurrent batches cannot deadlock) and load them."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = await self._conn.execute(
            select(instances.c.id, instances.c.state.cast(Text).label("state"))
            .where(instances.c.id.in_(wanted))
            .order_by(instances.c.id)
            .with_for_update()
        )
        return {str(row.id): InstanceState.model_validate_json(row.state) for row in rows}

    async def lock_status(
        self, ids: Iterable[str]
    ) -> dict[str, tuple[InstanceStatus, dict[str, Any] | None, CodeHold | None]]:
        """Status and error of instances (locked in id order, as `lock` locks), and for a
        code-first instance whether it is held."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        code = instances.c.state["code"]
        rows = await self._conn.execute(
            select(
                instances.c.id,
                instances.c.status,
                instances.c.state["error"].label("error"),
                code["task"].label("task"),
                code["held"].label("held"),
            )
            .where(instances.c.id.in_(wanted))
            .order_by(instances.c.id)
            .with_for_update()
        )
        return {
            str(row.id): (
                InstanceStatus(row.status),
                row.error,
                None if row.task is None else CodeHold(row.held),
            )
            for row in rows
        }

    async def save(self, states: Sequence[InstanceState]) -> None:
        if not states:
            return
        rows = [instance_row(state) for state in states]
        await self._conn.execute(_SAVE.statement, _SAVE.parameters(rows))

    async def record_attempts(self, attempts: Iterable[tuple[str, RecordAttempt]]) -> None:
        """Upsert step attempts; several records of one attempt collapse to the last."""
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
                "error": a.error.model_dump(mode="json") if a.error else None,
                "started_at": _parse_time(a.started_at),
                "finished_at": _parse_time(a.finished_at),
            }
        if latest:
            await self._conn.execute(
                _RECORD_ATTEMPTS.statement, _RECORD_ATTEMPTS.parameters(latest.values())
            )

    async def purge_ended(self, workflow_id: str, before: datetime) -> int:
        """Delete the instances of `workflow_id` that ended before `before`, with their
        step history; how many."""
        count = await self._conn.scalar(_PURGE, {"workflow_id": workflow_id, "before": before})
        return int(count or 0)


@dataclass(frozen=True, slots=True)
class CodeHold:
    """A code-first instance's hold: why it is held, or None while it is not."""

    held: str | None
