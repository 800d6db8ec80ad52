"""The `timers` table: three queues of due work in one table, told apart by `kind`.

- engine timers (a `TimerKind`): fire into their instance at `due_at`; those of a paused
  instance wait for the resume, except the kinds in `FIRES_WHILE_PAUSED`;
- the inbox (`INBOX`): inputs sent from one instance to another (a child's end, a
  parent's cancel), delivered as soon as possible;
- action jobs (`ACTION_JOB`): external actions to run, leased by one worker at a time.

Due rows are claimed with FOR UPDATE SKIP LOCKED, so any number of workers share them and
none is taken twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, get_args

from sqlalchemy import and_, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from flowbus.engine.effects import FIRES_WHILE_PAUSED, TimerKind
from flowbus.store.tables import instances, timers

INBOX = "input"
ACTION_JOB = "action"
HELD_WHEN_PAUSED = tuple(sorted(set(get_args(TimerKind)) - FIRES_WHILE_PAUSED))
"""Timer kinds that wait while their instance is paused."""

_held_by = timers.c.payload["lease"].astext

# Both arms use ix_timers_instance_step; the unnest pairs keep one plan for any batch.
_CANCEL = text(
    f"""
    DELETE FROM timers
    WHERE kind <> '{INBOX}'
      AND (instance_id = ANY(CAST(:whole AS uuid[]))
           OR (instance_id, step_id) IN (
               SELECT * FROM unnest(CAST(:instances AS uuid[]), CAST(:steps AS text[]))))
    """
)


@dataclass(frozen=True, slots=True)
class NewTimer:
    """A row to add to one of the queues."""

    instance_id: str
    kind: str
    due_at: datetime
    step_id: str | None = None
    attempt: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def not_held() -> ColumnElement[bool]:
    """The pause rule: a row is held while its instance is paused, unless its kind fires
    regardless (inbox inputs, action jobs, `FIRES_WHILE_PAUSED`)."""
    paused = select(instances.c.id).where(instances.c.status == "paused")
    return or_(timers.c.kind.not_in(HELD_WHEN_PAUSED), timers.c.instance_id.not_in(paused))


class TimerRepository:
    """The three queues of the `timers` table."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, rows: Sequence[NewTimer]) -> None:
        if rows:
            await self._conn.execute(insert(timers), [asdict(row) for row in rows])

    async def cancel(self, cancels: Sequence[tuple[str, str | None]]) -> None:
        """Drop timers and jobs (never inbox rows) in one statement: of a whole instance
        for an (instance, None) pair, of one step for an (instance, step) pair."""
        if not cancels:
            return
        whole = sorted({i for i, s in cancels if s is None})
        steps = sorted({(i, s) for i, s in cancels if s is not None and i not in whole})
        await self._conn.execute(
            _CANCEL,
            {
                "whole": whole,
                "instances": [i for i, _ in steps],
                "steps": [s for _, s in steps],
            },
        )

    async def postpone(
        self, instance_id: str, kind: str, step_id: str, attempt: int, due_at: datetime
    ) -> bool:
        """Move the due time of one step attempt's timer of `kind`; whether there was one."""
        moved = await self._conn.execute(
            update(timers)
            .where(
                and_(
                    timers.c.instance_id == instance_id,
                    timers.c.kind == kind,
                    timers.c.step_id == step_id,
                    timers.c.attempt == attempt,
                )
            )
            .values(due_at=due_at)
            .returning(timers.c.id)
        )
        return moved.first() is not None

    async def claim_due(self, now: datetime, limit: int) -> list[Any]:
        """Lock due timers and inbox rows (not held by a pause), oldest first."""
        rows = await self._conn.execute(
            select(timers)
            .where(and_(timers.c.due_at <= now, timers.c.kind != ACTION_JOB, not_held()))
            .order_by(timers.c.due_at, timers.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=timers)
        )
        return list(rows.all())

    async def next_due(self) -> datetime | None:
        """When the earliest timer or inbox row falls due (held or not)."""
        due: datetime | None = await self._conn.scalar(
            select(func.min(timers.c.due_at)).where(timers.c.kind != ACTION_JOB)
        )
        return due

    async def delete(self, ids: Sequence[int]) -> None:
        if ids:
            await self._conn.execute(delete(timers).where(timers.c.id.in_(list(ids))))

    # -- action jobs ----------------------------------------------------------------------

    async def lease_jobs(self, now: datetime, until: datetime, limit: int, token: str) -> list[Any]:
        """Lease due action jobs nobody holds: `locked_until` and the lease token set."""
        due = (
            select(timers.c.id)
            .where(
                and_(
                    timers.c.kind == ACTION_JOB,
                    timers.c.due_at <= now,
                    or_(timers.c.locked_until.is_(None), timers.c.locked_until < now),
                )
            )
            .order_by(timers.c.due_at, timers.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = await self._conn.execute(
            update(timers)
            .where(timers.c.id.in_(due.scalar_subquery()))
            .values(
                locked_until=until,
                payload=timers.c.payload.op("||", return_type=JSONB)(
                    func.jsonb_build_object("lease", token)
                ),
            )
            .returning(timers)
        )
        return list(rows)

    async def renew_leases(self, held: Sequence[tuple[int, str]], until: datetime) -> None:
        """Move `locked_until` of the (job id, lease token) pairs still held."""
        # Rows locked by an apply in progress are skipped, never waited for: no deadlock
        # with a transaction that deletes this instance's timers.
        mine = (
            select(timers.c.id)
            .where(tuple_(timers.c.id, _held_by).in_(list(held)))
            .with_for_update(skip_locked=True)
        )
        await self._conn.execute(
            update(timers).where(timers.c.id.in_(mine.scalar_subquery())).values(locked_until=until)
        )

    async def take_leased(self, held: Sequence[tuple[int, str]]) -> set[int]:
        """Delete the jobs that still carry their lease token; the ids it did (the fence)."""
        if not held:
            return set()
        fenced = await self._conn.execute(
            delete(timers)
            .where(tuple_(timers.c.id, _held_by).in_(list(held)))
            .returning(timers.c.id)
        )
        return {int(row[0]) for row in fenced}
