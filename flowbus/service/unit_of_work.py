"""One transaction's worth of engine work, used one way:

    async with UnitOfWork(engine, catalog, events, now) as uow:
        await uow.start(requests)
        await uow.deliver(inputs)

A clean exit writes what the transitions asked for (state, step history, timers, waits,
approvals, outbox events) and commits; an error rolls everything back. Inside, the store's
repositories are attributes (`uow.instances`, `uow.timers`, `uow.offsets`, ...), and every
instance is loaded and locked once (an identity map), however many inputs reach it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.inputs import EngineInput
from flowbus.engine.limits import Limits
from flowbus.engine.state import InstanceState
from flowbus.outbox.writer import OutboxBatch
from flowbus.service import messagebus
from flowbus.service.changes import Changes
from flowbus.service.messages import DeliverInputs, Message, StartInstances, StartRequest
from flowbus.service.reports import WorkReport
from flowbus.store.subscriptions import WaitKey
from flowbus.store.transaction import Transaction

__all__ = ["StartRequest", "UnitOfWork", "WorkReport"]


class UnitOfWork(Transaction):
    """Applies engine work in one transaction; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: DefinitionCatalog,
        events: OutboxBatch,
        now: datetime,
        *,
        event_buffer_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        super().__init__(engine)
        self.catalog = catalog
        self.events = events
        """Outcome events and notices, written to the outbox with the state."""
        self.now = now
        self.report = WorkReport()
        """Everything done so far, flushes included."""
        self.states: dict[str, InstanceState] = {}
        self.changes = Changes()
        self._buffer_ttl = event_buffer_ttl
        self._follow_ups: list[Message] = []

    @property
    def limits(self) -> Limits:
        return self.events.limits

    async def start(self, requests: Sequence[StartRequest]) -> None:
        """Start instances whose ids are not taken yet (the others count as duplicates)."""
        await messagebus.handle(self, StartInstances(requests))

    async def deliver(self, items: Sequence[tuple[str, EngineInput]]) -> None:
        """Apply inputs to stored instances (locked in id order), in the given order."""
        await messagebus.handle(self, DeliverInputs(items))

    async def keep_event(
        self, wait: WaitKey, event_type: str | None, event: dict[str, object]
    ) -> None:
        """Keep an event no step waits for yet, for a wait about to start."""
        await self.event_buffer.keep(wait, event_type, event, self.now + self._buffer_ttl)

    def follow_up(self, message: Message) -> None:
        """More work an effect asks for, handled by the message bus after the current one."""
        self._follow_ups.append(message)

    def collect_follow_ups(self) -> list[Message]:
        found, self._follow_ups = self._follow_ups, []
        return found

    async def flush(self) -> WorkReport:
        """Write what was collected so far (uncommitted): what comes after, and what it
        reads from the database, sees it."""
        changes, self.changes = self.changes, Changes()
        await changes.write(self, [self.states[i] for i in sorted(changes.dirty)])
        rows, self.events.rows = self.events.rows, []
        await self.outbox.add(rows)
        return self.report

    async def before_commit(self) -> None:
        await self.flush()
