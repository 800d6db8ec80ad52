"""Purges ended instances older than their workflow's `executionLog.retention`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog

log = structlog.get_logger(__name__)

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
            async with self._engine.begin() as conn:
                count = await conn.scalar(
                    _PURGE, {"workflow_id": definition.id, "before": now - retention}
                )
            if count:
                purged += int(count)
                log.info("retention.purged", workflow_id=definition.id, instances=int(count))
        return purged
