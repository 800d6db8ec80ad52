"""The shape every polling loop of the worker shares: rounds of work, a sleep between them
that a local commit can cut short, and failed rounds retried after a backoff, never fatal."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ClassVar

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.supervision import Backoff, first_line
from flowbus.service.unit_of_work import UnitOfWork, WorkReport
from flowbus.store.transaction import Transaction

log = structlog.get_logger(__name__)


class WorkLoop(ABC):
    """A background loop that applies work in rounds (timers, schedules, actions)."""

    name: ClassVar[str]

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        outbox: Callable[[], OutboxBatch],
        *,
        on_work: Callable[[WorkReport], None] = lambda report: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._new_outbox = outbox
        self._on_work = on_work
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Start the next round now (called after a local commit that made work)."""
        self._wake.set()

    def unit_of_work(self, now: datetime) -> UnitOfWork:
        return UnitOfWork(self._engine, self._catalog(), self._new_outbox(), now)

    def transaction(self) -> Transaction:
        """A transaction for bookkeeping that applies no engine work."""
        return Transaction(self._engine)

    async def run(self) -> None:
        """Rounds until cancelled; a failing round is logged and retried after a backoff."""
        backoff = Backoff()
        while True:
            self._wake.clear()
            try:
                pause = await self.round()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{self.name}.round_failed", error=first_line(exc))
                pause = backoff.next_pause()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    @abstractmethod
    async def round(self) -> float:
        """Do one round of work; return the seconds to wait before the next (0: at once)."""
