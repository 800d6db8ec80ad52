"""Durable timers and the inbox: due rows are claimed with FOR UPDATE SKIP LOCKED, so any
number of workers share them and none fires twice; each claim is applied and deleted in
one transaction. Timers of a paused instance wait for the resume (the store's pause rule)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.inputs import EngineInput, TimerFired
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.codec import decode_input
from flowbus.service.loop import WorkLoop
from flowbus.service.unit_of_work import WorkReport
from flowbus.store.timers import INBOX

log = structlog.get_logger(__name__)


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
        if claimed >= self._batch_size:
            return 0.0
        return await self._until_next_due()

    async def _until_next_due(self) -> float:
        """Sleep until the next timer falls due, at most `interval`: a timer is fired when
        it falls due, not up to a poll interval later. A due row that was not claimed is
        held (its instance is paused): it waits for the next poll."""
        async with self.transaction() as store:
            due = await store.timers.next_due()
        if due is None:
            return self._interval
        wait = (due - self._clock()).total_seconds()
        return self._interval if wait <= 0 else min(self._interval, wait)

    async def fire_due(self) -> int:
        """Claim due timers and inbox rows, apply them, delete them: one transaction."""
        async with self.unit_of_work(self._clock()) as uow:
            rows = await uow.timers.claim_due(uow.now, self._batch_size)
            if not rows:
                return 0
            await uow.deliver([(str(row.instance_id), _input(row)) for row in rows])
            await uow.timers.delete([row.id for row in rows])
        self.fired += len(rows)
        self._on_work(uow.report)
        return len(rows)

    async def purge_expired_events(self) -> int:
        async with self.transaction() as store:
            return await store.event_buffer.purge_expired(self._clock())


def _input(row: Any) -> EngineInput:
    if row.kind == INBOX:
        return decode_input(row.payload)
    return TimerFired(kind=row.kind, step_id=row.step_id, attempt=row.attempt)
