"""One PostgreSQL transaction and the repositories over it: `async with` commits on a
clean exit and rolls back on an error."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbus.store.approvals import ApprovalRepository
from flowbus.store.instances import InstanceRepository
from flowbus.store.offsets import OffsetRepository
from flowbus.store.outbox import OutboxRepository
from flowbus.store.schedules import ScheduleRepository
from flowbus.store.subscriptions import EventBufferRepository, SubscriptionRepository
from flowbus.store.timers import TimerRepository


class Transaction:
    """The repositories of one transaction, as attributes."""

    conn: AsyncConnection
    instances: InstanceRepository
    timers: TimerRepository
    subscriptions: SubscriptionRepository
    event_buffer: EventBufferRepository
    approvals: ApprovalRepository
    outbox: OutboxRepository
    offsets: OffsetRepository
    schedules: ScheduleRepository

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._begun: Any = None

    async def __aenter__(self) -> Self:
        self._begun = self._engine.begin()
        self.bind(await self._begun.__aenter__())
        return self

    def bind(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.instances = InstanceRepository(conn)
        self.timers = TimerRepository(conn)
        self.subscriptions = SubscriptionRepository(conn)
        self.event_buffer = EventBufferRepository(conn)
        self.approvals = ApprovalRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.offsets = OffsetRepository(conn)
        self.schedules = ScheduleRepository(conn)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            try:
                await self.before_commit()
            except BaseException:
                await self._begun.__aexit__(*sys.exc_info())
                raise
        await self._begun.__aexit__(kind, error, traceback)

    async def before_commit(self) -> None:
        """What must be written before the commit (nothing here)."""
