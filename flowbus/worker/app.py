"""The worker: a faust app whose agents apply consumed batches, plus the outbox relay and
the definition watcher running beside them."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import asyncpg
import faust
import structlog
from faust.streams import Stream
from faust.types import EventT, StreamT
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.config import Settings
from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.ingest.records import ConsumedRecord
from flowbus.ingest.triggers import TriggerIngest
from flowbus.outbox.relay import OutboxRelay, asyncpg_dsn
from flowbus.outbox.writer import OutboxBatch
from flowbus.store.database import create_engine, current_revision, head_revision
from flowbus.store.definitions import active_definitions

log = structlog.get_logger(__name__)

DEFINITIONS_CHANNEL = "flowbus_definitions"
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


class SchemaNotCurrent(RuntimeError):
    """The database schema is behind this worker's migrations."""


class WorkerRuntime:
    """What one worker process holds: database engine, definitions, relay, ingest."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: AsyncEngine = create_engine(settings.database_url)
        self.catalog = DefinitionCatalog()
        self.relay = OutboxRelay(
            settings.database_url,
            settings.broker_url,
            batch_size=settings.worker.relay_batch_size,
            poll_interval=settings.worker.relay_poll_interval,
        )
        self.ingest = TriggerIngest(
            self.engine,
            catalog=lambda: self.catalog,
            outbox=self.new_outbox,
            consumer_group=settings.consumer_group,
        )

    def new_outbox(self) -> OutboxBatch:
        return OutboxBatch(source=self.settings.deployment, topics=self.settings.topics)

    async def check_schema(self) -> None:
        have, want = await current_revision(self.engine), head_revision()
        if have != want:
            raise SchemaNotCurrent(
                f"database schema is at {have or 'nothing'}, this worker needs {want}: "
                "run `flowbus migrate`"
            )

    async def reload_definitions(self) -> None:
        async with self.engine.connect() as conn:
            active = await active_definitions(conn)
        self.catalog.replace_active(active)
        log.info("definitions.loaded", workflows=[f"{d.id}@v{d.version}" for d in active])

    async def watch_definitions(self) -> None:
        """Reload when any worker or the CLI stores a definition (LISTEN/NOTIFY)."""
        while True:
            try:
                conn: Any = await asyncpg.connect(asyncpg_dsn(self.settings.database_url))
                changed = asyncio.Event()
                await conn.add_listener(DEFINITIONS_CHANNEL, _setter(changed))
                try:
                    await self.reload_definitions()
                    while True:
                        await changed.wait()
                        changed.clear()
                        await self.reload_definitions()
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close())
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("definitions.watch_interrupted", error=str(exc))
                await asyncio.sleep(1.0)

    async def apply_batch(self, records: list[ConsumedRecord]) -> None:
        """Apply a batch, retrying while the database is unreachable; never drop it."""
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                report = await self.ingest.apply(records)
            except (OperationalError, DBAPIError, OSError) as exc:
                if delay is None:
                    delay = RETRY_DELAYS[-1]
                log.warning("batch.retry", error=str(exc).splitlines()[0], attempt=attempt + 1)
                await asyncio.sleep(delay)
                continue
            if report.started or report.dead_lettered:
                self.relay.wake()
            log.debug(
                "batch.applied",
                consumed=report.consumed,
                started=report.started,
                skipped=report.skipped,
                duplicates=report.duplicates,
                dead_lettered=report.dead_lettered,
            )
            return
        raise AssertionError("unreachable")  # pragma: no cover


def _setter(event: asyncio.Event) -> Any:
    return lambda *_: event.set()


class FlowbusApp(faust.App):
    """The faust app, holding its runtime: definitions load before any agent consumes."""

    runtime: WorkerRuntime

    async def on_first_start(self) -> None:
        await super().on_first_start()
        await self.runtime.check_schema()
        await self.runtime.reload_definitions()


def create_app(settings: Settings) -> FlowbusApp:
    """Build the faust app with its agents and background tasks."""
    app = FlowbusApp(
        settings.consumer_group,
        broker=f"kafka://{settings.broker_url}",
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=str(Path(tempfile.gettempdir()) / "flowbus-faust"),
        autodiscover=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.worker.web_port > 0,
        web_port=settings.worker.web_port or 6066,
        web_bind="127.0.0.1",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
    )
    runtime = app.runtime = WorkerRuntime(settings)
    source = app.topic(*settings.source_topics, key_type=bytes, value_type=bytes)

    async def ingest(stream: StreamT[bytes]) -> None:
        async for events in cast(Stream[bytes], stream).take_events(
            settings.worker.batch_size, within=settings.worker.batch_window
        ):
            await runtime.apply_batch([_record(event) for event in events])

    app.agent(source, name="flowbus.ingest")(ingest)

    async def relay() -> None:
        await runtime.relay.run()

    async def watch() -> None:
        await runtime.watch_definitions()

    app.task(relay)
    app.task(watch)

    async def assigned(sender: Any, *_: Any, signal: Any, **kwargs: Any) -> None:
        log.info("worker.partitions_assigned", partitions=len(kwargs.get("assigned", ())))

    app.on_partitions_assigned.connect(cast(Any, assigned))

    return app


def _record(event: EventT[Any]) -> ConsumedRecord:
    message = event.message
    headers = message.headers
    return ConsumedRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=list(headers.items() if isinstance(headers, Mapping) else headers or ()),
    )


def run_worker(settings: Settings) -> None:
    """Run a worker in this process until SIGINT/SIGTERM."""
    app = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        override_logging=False,
        quiet=True,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
