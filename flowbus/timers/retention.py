"""Purges ended instances older than their workflow's `executionLog.retention`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.store.transaction import Transaction

log = structlog.get_logger(__name__)


class RetentionPurge:
    """Every `interval` seconds, deletes what each workflow's retention lets go."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        *,
        interval: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._interval = interval
        self._clock = clock

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.purge_once()

    async def purge_once(self) -> int:
        now = self._clock()
        purged = 0
        for definition in self._catalog().active:
            retention = definition.execution_log.retention
            if retention is None:
                continue
            async with Transaction(self._engine) as store:
                count = await store.instances.purge_ended(definition.id, now - retention)
            if count:
                purged += count
                log.info("retention.purged", workflow_id=definition.id, instances=count)
        return purged
