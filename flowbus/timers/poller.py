"""Durable timers and the inbox: due rows are claimed with FOR UPDATE SKIP LOCKED, so any
number of workers share them and none fires twice; each claim is applied and deleted in
one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.inputs import EngineInput, TimerFired
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.codec import decode_input
from flowbus.service.loop import WorkLoop
from flowbus.service.unit_of_work import ACTION_JOB, INBOX, WorkReport
from flowbus.store.tables import event_buffer, instances, timers

log = structlog.get_logger(__name__)

# Timers that wait while their instance is paused; a workflow timeout does not.
_HELD_WHEN_PAUSED = ("retry", "wait", "wait_timeout", "step_timeout", "deadline")


class TimerPoller(WorkLoop):
    """Fires due timers and delivers inbox inputs."""

    name = "timers"

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        outbox: Callable[[], OutboxBatch],
        *,
        batch_size: int = 200,
        interval: float = 0.2,
        on_work: Callable[[WorkReport], None] = lambda report: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(engine, catalog, outbox, on_work=on_work, clock=clock)
        self._batch_size = batch_size
        self._interval = interval
        self._rounds = 0
        self.fired = 0

    async def round(self) -> float:
        claimed = await self.fire_due()
        self._rounds += 1
        if self._rounds % 300 == 0:
            await self.purge_expired_events()
        return 0.0 if claimed >= self._batch_size else self._interval

    async def fire_due(self) -> int:
        """Claim due timers and inbox rows, apply them, delete them: one transaction."""
        now = self._clock()
        async with self._engine.begin() as conn:
            paused = select(instances.c.id).where(instances.c.status == "paused")
            rows = (
                await conn.execute(
                    select(timers)
                    .where(
                        and_(
                            timers.c.due_at <= now,
                            timers.c.kind != ACTION_JOB,
                            or_(
                                timers.c.kind.not_in(_HELD_WHEN_PAUSED),
                                timers.c.instance_id.not_in(paused),
                            ),
                        )
                    )
                    .order_by(timers.c.due_at, timers.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True, of=timers)
                )
            ).all()
            if not rows:
                return 0
            work = self.unit_of_work(conn, now)
            await work.deliver([(str(row.instance_id), _input(row)) for row in rows])
            await conn.execute(delete(timers).where(timers.c.id.in_([row.id for row in rows])))
            report = await work.flush()
        self.fired += len(rows)
        self._on_work(report)
        return len(rows)

    async def purge_expired_events(self) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(event_buffer).where(event_buffer.c.expires_at < self._clock())
            )
        return int(result.rowcount or 0)


def _input(row: Any) -> EngineInput:
    if row.kind == INBOX:
        return decode_input(row.payload)
    return TimerFired(kind=row.kind, step_id=row.step_id, attempt=row.attempt)
