"""Records in PostgreSQL what the dashboard reads from topics: every record of the
dead-letter topic, and every refused decision of a known approval from the approvals topic.

The API process runs one consumer, in the consumer group `<consumer_group>.recorder`, over
both topics (several API processes share their partitions). A batch is written in one
transaction, idempotently (dead letters are unique on their record's topic, partition and
offset, refusals on their event id), and its offsets are committed to Kafka only after
that: a crash in between records nothing twice and loses nothing. A database outage is
waited out; a row the database refuses on its own is logged and skipped, so no record can
stop the others. Rows older than the topics' retention (30 days) are purged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.api.recorded import dead_letter_row, refusal_row
from flowbus.config import Settings
from flowbus.store.database import ping
from flowbus.store.dead_letters import purge_dead_letters, record_dead_letters
from flowbus.store.refusals import purge_refusals, record_refusals

log = structlog.get_logger(__name__)

GROUP_SUFFIX = ".recorder"
RETENTION = timedelta(days=30)
PURGE_INTERVAL = 600.0
BATCH_RECORDS = 200
RETRY_DELAY = 2.0


def recorder_group(settings: Settings) -> str:
    return settings.consumer_group + GROUP_SUFFIX


class Recorder:
    """The recording loop, as a task of the API process."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self._settings = settings
        self._engine = engine
        self._task: asyncio.Task[None] | None = None
        self._purged = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="flowbus-recorder")

    async def stop(self) -> None:
        """Stop within a second or two; the batch in hand is recorded again next time."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, 5)
        self._task = None

    async def run(self) -> None:
        topics = self._settings.topics
        while True:
            consumer = AIOKafkaConsumer(
                topics.deadletter,
                topics.approvals,
                bootstrap_servers=self._settings.broker_url,
                group_id=recorder_group(self._settings),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id="flowbus-recorder",
            )
            try:
                await consumer.start()
                log.info("recorder.started", group=recorder_group(self._settings))
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("recorder.failed", error=repr(exc), retry_in=RETRY_DELAY)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(consumer.stop())
            await asyncio.sleep(RETRY_DELAY)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH_RECORDS)
            records = [record for records in batch.values() for record in records]
            if records:
                await self.record(records)
                await consumer.commit()
            if time.monotonic() - self._purged > PURGE_INTERVAL:
                await self._purge()

    async def record(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Write the rows of `records`, waiting out a database outage."""
        deadletter = self._settings.topics.deadletter
        dead = [
            dead_letter_row(r.topic, r.partition, r.offset, r.timestamp, r.value)
            for r in records
            if r.topic == deadletter
        ]
        refusals = [
            row
            for r in records
            if r.topic != deadletter and (row := refusal_row(r.value)) is not None
        ]
        if not dead and not refusals:
            return
        while True:
            try:
                async with self._engine.begin() as conn:
                    await record_dead_letters(conn, dead)
                    await record_refusals(conn, refusals)
                break
            except Exception as exc:
                if not await self._reachable():
                    log.warning("recorder.database_unavailable", error=repr(exc))
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                await self._one_by_one(dead, refusals)
                break
        log.debug("recorder.recorded", dead_letters=len(dead), refusals=len(refusals))

    async def _one_by_one(
        self, dead: Sequence[dict[str, Any]], refusals: Sequence[dict[str, Any]]
    ) -> None:
        """The batch was refused while the database is up: record what it takes."""
        for rows, write in ((dead, record_dead_letters), (refusals, record_refusals)):
            for row in rows:
                try:
                    async with self._engine.begin() as conn:
                        await write(conn, [row])
                except Exception as exc:
                    log.error(
                        "recorder.row_refused",
                        error=repr(exc),
                        topic=row.get("topic"),
                        offset=row.get("offset"),
                        event_id=row.get("event_id"),
                    )

    async def _reachable(self) -> bool:
        try:
            await ping(self._engine)
        except Exception:
            return False
        return True

    async def _purge(self) -> None:
        self._purged = time.monotonic()
        before = datetime.now(UTC) - RETENTION
        try:
            async with self._engine.begin() as conn:
                dead = await purge_dead_letters(conn, before)
                refused = await purge_refusals(conn, before)
        except Exception as exc:
            log.warning("recorder.purge_failed", error=repr(exc))
            return
        if dead or refused:
            log.info("recorder.purged", dead_letters=dead, refusals=refused)


def start_recorder(settings: Settings, engine: AsyncEngine) -> Recorder:
    """Start recording in the background of the running event loop; `await
    recorder.stop()` before the engine is disposed."""
    recorder = Recorder(settings, engine)
    recorder.start()
    return recorder
