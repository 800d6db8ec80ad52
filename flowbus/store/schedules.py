"""The `schedules` table: the next due tick of every schedule trigger of the active
definitions, claimed with FOR UPDATE SKIP LOCKED by whichever worker gets there first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from flowbus.store.tables import schedules

# Serializes syncs, so the last one to commit is the one that read the newest definitions.
_SYNC_LOCK = 0x666C6F7762757301

ScheduleKey = tuple[str, int, str, str]
"""(workflow id, trigger index, cron, time zone): a schedule as a worker has loaded it."""


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    workflow_id: str
    trigger_index: int
    cron: str
    timezone: str
    next_due: datetime


@dataclass(frozen=True, slots=True)
class Advance:
    """Where a claimed schedule moves on to."""

    workflow_id: str
    trigger_index: int
    next_due: datetime
    last_tick: datetime | None


_ADVANCE = (
    update(schedules)
    .where(
        and_(
            schedules.c.workflow_id == bindparam("b_workflow_id"),
            schedules.c.trigger_index == bindparam("b_trigger_index"),
        )
    )
    .values(next_due=bindparam("next_due"), last_tick=bindparam("last_tick"), updated_at=func.now())
)


def _among(known: Sequence[ScheduleKey]) -> ColumnElement[bool]:
    return tuple_(
        schedules.c.workflow_id,
        schedules.c.trigger_index,
        schedules.c.cron,
        schedules.c.timezone,
    ).in_(list(known))


class ScheduleRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock_for_sync(self) -> None:
        """Wait for any other sync to commit (held until this transaction ends)."""
        await self._conn.execute(select(func.pg_advisory_xact_lock(_SYNC_LOCK)))

    async def replace(self, rows: Sequence[ScheduleRow]) -> None:
        """Make the table hold exactly `rows`' schedules. A row whose cron and time zone are
        stored already keeps its stored next due tick; a changed or new one takes the row's."""
        if rows:
            stmt = pg_insert(schedules).values([asdict(row) for row in rows])
            changed = or_(
                schedules.c.cron != stmt.excluded.cron,
                schedules.c.timezone != stmt.excluded.timezone,
            )
            await self._conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[schedules.c.workflow_id, schedules.c.trigger_index],
                    set_={
                        "cron": stmt.excluded.cron,
                        "timezone": stmt.excluded.timezone,
                        "next_due": stmt.excluded.next_due,
                        "updated_at": func.now(),
                    },
                    where=changed,
                )
            )
        keys = [(row.workflow_id, row.trigger_index) for row in rows]
        stale = delete(schedules)
        if keys:
            stale = stale.where(
                tuple_(schedules.c.workflow_id, schedules.c.trigger_index).not_in(keys)
            )
        await self._conn.execute(stale)

    async def claim_due(self, now: datetime, known: Sequence[ScheduleKey], limit: int) -> list[Any]:
        """Lock the due rows of the schedules in `known`, earliest first."""
        rows = await self._conn.execute(
            select(schedules)
            .where(and_(schedules.c.next_due <= now, _among(known)))
            .order_by(schedules.c.next_due)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(rows.all())

    async def advance(self, moves: Sequence[Advance]) -> None:
        if moves:
            await self._conn.execute(
                _ADVANCE,
                [
                    {
                        "b_workflow_id": move.workflow_id,
                        "b_trigger_index": move.trigger_index,
                        "next_due": move.next_due,
                        "last_tick": move.last_tick,
                    }
                    for move in moves
                ],
            )

    async def next_due(self, known: Sequence[ScheduleKey]) -> datetime | None:
        """The earliest next due tick among the schedules in `known`."""
        due: datetime | None = (
            await self._conn.execute(select(func.min(schedules.c.next_due)).where(_among(known)))
        ).scalar()
        return due
