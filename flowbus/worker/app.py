"""The worker: a faust app whose agents apply consumed batches, with the outbox relay, the
timer poller, the action runner and the definition watcher running beside them."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from faust.streams import Stream
from faust.types import TP, EventT, StreamT
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus import metrics
from flowbus.approvals.tokens import DecisionVerifier
from flowbus.config import Settings
from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.limits import Limits
from flowbus.envelope import RecordLimits
from flowbus.ingest.batch import dead_letter
from flowbus.ingest.commands import CommandIngest
from flowbus.ingest.decisions import DecisionIngest
from flowbus.ingest.records import ConsumedRecord
from flowbus.ingest.results import ResultIngest
from flowbus.ingest.triggers import TriggerIngest
from flowbus.limits import JsonLimits
from flowbus.outbox.relay import OutboxRelay
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.action_runner import ActionRunner
from flowbus.service.definitions import store_definition_files
from flowbus.service.reports import BatchReport, WorkReport
from flowbus.service.supervision import Backoff, first_line, supervise
from flowbus.service.unit_of_work import UnitOfWork
from flowbus.store.database import (
    TRANSIENT_ERRORS,
    create_engine,
    current_revision,
    head_revision,
    listening,
)
from flowbus.store.definitions import DEFINITIONS_CHANNEL, active_definitions, all_documents
from flowbus.store.subscriptions import wait_probe_rows
from flowbus.timers.poller import TimerPoller
from flowbus.timers.retention import RetentionPurge
from flowbus.timers.schedules import ScheduleLoop
from flowbus.times import rfc3339

log = structlog.get_logger(__name__)


class SchemaNotCurrent(RuntimeError):
    """The database schema is behind this worker's migrations."""


class WorkerRuntime:
    """What one worker process holds: database engine, definitions and the loops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # No ping per transaction: every loop retries its work when a connection fails.
        self.engine: AsyncEngine = create_engine(settings.database_url, pre_ping=False)
        self.catalog = DefinitionCatalog()
        self.relay = OutboxRelay(
            settings.database_url,
            settings.broker_url,
            batch_size=settings.worker.relay_batch_size,
            poll_interval=settings.worker.relay_poll_interval,
            source=settings.deployment,
            deadletter_topic=settings.topics.deadletter,
        )
        self.limits = Limits(
            max_step_output_bytes=settings.limits.max_step_output_bytes,
            max_variables_bytes=settings.limits.max_variables_bytes,
            max_event_bytes=settings.limits.max_event_bytes,
            workflow_task_timeout=timedelta(seconds=settings.worker.workflow_task_timeout),
        )
        shared: dict[str, Any] = {
            "catalog": lambda: self.catalog,
            "outbox": self.new_outbox,
        }
        limits = settings.limits
        records = RecordLimits(
            JsonLimits(limits.max_record_bytes, limits.max_depth),
            max_key_bytes=limits.max_key_bytes,
            max_headers=limits.max_headers,
            max_header_bytes=limits.max_header_bytes,
        )
        consumed: dict[str, Any] = {"consumer_group": settings.consumer_group, "limits": records}
        self.triggers = TriggerIngest(self.engine, **consumed, **shared)
        self.commands = CommandIngest(self.engine, **consumed, **shared)
        self.decisions = DecisionIngest(
            self.engine,
            **consumed,
            verifier=DecisionVerifier(settings.approvals),
            topics=settings.topics,
            **shared,
        )
        self.results = ResultIngest(self.engine, **consumed, **shared)
        self.timers = TimerPoller(
            self.engine,
            batch_size=settings.worker.timer_batch_size,
            interval=settings.worker.timer_poll_interval,
            on_work=self.after_work,
            **shared,
        )
        self.retention = RetentionPurge(
            self.engine, lambda: self.catalog, interval=settings.worker.purge_interval
        )
        self.schedules = ScheduleLoop(self.engine, on_work=self.after_work, **shared)
        self.actions = ActionRunner(
            self.engine,
            concurrency=settings.worker.action_concurrency,
            lease=timedelta(seconds=settings.worker.action_lease),
            max_json_depth=settings.limits.max_depth,
            on_work=self.after_work,
            **shared,
        )

    def new_outbox(self) -> OutboxBatch:
        return OutboxBatch(
            source=self.settings.deployment, topics=self.settings.topics, limits=self.limits
        )

    def after_work(self, report: WorkReport | None) -> None:
        """Wake the loops that have new work after a commit."""
        self.relay.wake()
        if report is None:
            return
        metrics.observe_work(report)
        if report.timers_set or report.inbox_sent:
            self.timers.wake()
        if report.actions_queued:
            self.actions.wake()

    async def check_schema(self) -> None:
        have, want = await current_revision(self.engine), head_revision()
        if have != want:
            raise SchemaNotCurrent(
                f"database schema is at {have or 'nothing'}, this worker needs {want}: "
                "run `flowbus migrate`"
            )

    async def apply_workflows_dir(self) -> None:
        """Store the definitions of `workflows_dir` (new versions only when they changed)."""
        directory = self.settings.workflows_dir
        if directory.exists():
            await store_definition_files(self.engine, directory)

    async def reload_definitions(self) -> None:
        async with self.engine.connect() as conn:
            active = await active_definitions(conn)
            documents = await all_documents(conn)
            run_time_probes = await wait_probe_rows(conn)
        self.catalog.replace_active(active)
        self.catalog.set_wait_probes(documents, run_time_probes)
        for topic in self.catalog.wait_topics() - set(self.settings.source_topics):
            log.warning(
                "definitions.wait_topic_not_consumed",
                topic=topic,
                hint="event waits on this topic never end: add it to source_topics",
            )
        await self.schedules.sync()
        log.info("definitions.loaded", workflows=[f"{d.id}@v{d.version}" for d in active])

    async def watch_definitions(self) -> None:
        """Reload when any worker or the CLI stores a definition (LISTEN/NOTIFY)."""
        changed = asyncio.Event()
        async with listening(self.settings.database_url, DEFINITIONS_CHANNEL, changed.set):
            await self.reload_definitions()
            while True:
                await changed.wait()
                changed.clear()
                await self.reload_definitions()

    async def apply_batch(
        self,
        records: list[ConsumedRecord],
        apply: Callable[[Sequence[ConsumedRecord]], Awaitable[BatchReport]],
    ) -> None:
        """Apply a batch and never let an error escape: faust would ack it anyway.

        While the database is unreachable the batch is retried. Any other failure splits
        the batch; a record that fails on its own is dead-lettered with the error, so a
        poisonous record cannot hold up its partition.
        """
        backoff = Backoff()
        while True:
            try:
                began = time.perf_counter()
                result = await apply(records)
            except TRANSIENT_ERRORS as exc:
                log.warning("batch.retry", error=first_line(exc), attempt=backoff.failures + 1)
                await backoff.pause()
                continue
            except Exception:
                if len(records) > 1:
                    for record in records:
                        await self.apply_batch([record], apply)
                    return
                log.exception("batch.record_failed", **records[0].describe())
                await self._dead_letter_alone(records[0])
                return
            self.after_work(result.work)
            metrics.observe_batch(records, result, began, self.settings.topics)
            return

    async def _dead_letter_alone(self, record: ConsumedRecord) -> None:
        backoff = Backoff()
        group = self.settings.consumer_group
        tp = (record.topic, record.partition)
        while True:
            now = datetime.now(UTC)
            try:
                async with UnitOfWork(self.engine, self.catalog, self.new_outbox(), now) as uow:
                    positions = await uow.offsets.lock(group, [tp])
                    if record.offset < positions.get(tp, 0):
                        return
                    dead_letter(
                        uow.events,
                        record,
                        rfc3339(now),
                        "internal error while applying the event; see the worker log",
                    )
                    await uow.offsets.advance(group, {tp: record.offset + 1})
                self.relay.wake()
                metrics.observe_dead_letter(record, self.settings.topics)
                return
            except TRANSIENT_ERRORS as exc:
                log.warning("batch.retry", error=first_line(exc))
                await backoff.pause()


class FlowbusApp(faust.App):
    """The faust app, holding its runtime: definitions load before any agent consumes."""

    runtime: WorkerRuntime

    async def on_first_start(self) -> None:
        await super().on_first_start()
        await self.runtime.check_schema()
        await self.runtime.apply_workflows_dir()
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
    batch_size, window = settings.worker.batch_size, settings.worker.batch_window

    def consume(
        topics: list[str],
        name: str,
        apply: Callable[[Sequence[ConsumedRecord]], Awaitable[BatchReport]],
    ) -> None:
        source = app.topic(*topics, key_type=bytes, value_type=bytes)

        async def agent(stream: StreamT[bytes]) -> None:
            async for events in cast(Stream[bytes], stream).take_events(batch_size, within=window):
                await runtime.apply_batch([_record(event) for event in events], apply)

        app.agent(source, name=name)(agent)

    consume(list(settings.source_topics), "flowbus.ingest", runtime.triggers.apply)
    consume([settings.topics.commands], "flowbus.commands", runtime.commands.apply)
    consume([settings.topics.decisions], "flowbus.decisions", runtime.decisions.apply)
    consume([settings.topics.results], "flowbus.results", runtime.results.apply)

    for name, loop in (
        ("relay", runtime.relay.run),
        ("definitions", runtime.watch_definitions),
        ("timers", runtime.timers.run),
        ("actions", runtime.actions.run),
        ("retention", runtime.retention.run),
        ("schedules", runtime.schedules.run),
    ):
        app.task(_task(name, loop))

    # faust sends the assigned set positionally: `receiver(sender, assigned, signal=...)`.
    async def assigned(sender: Any, assigned: Set[TP], **_: Any) -> None:
        log.info("worker.partitions_assigned", partitions=len(assigned))

    app.on_partitions_assigned.connect(cast(Any, assigned))
    return app


def _task(name: str, loop: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def task() -> None:
        await supervise(name, loop)

    task.__name__ = f"flowbus_{name}"
    return task


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
    metrics.serve_metrics(settings.worker.metrics_port, settings.worker.metrics_host)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        override_logging=False,
        quiet=True,
        redirect_stdouts=False,
    )
    worker.spinner = None  # it writes terminal escape codes into the log, tty or not
    worker.execute_from_commandline()
