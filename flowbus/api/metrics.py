"""The deployment's state as Prometheus gauges, read from PostgreSQL and Kafka at each
scrape of the API's `/metrics`, plus the API's own request counters.

The worker's counters (records consumed, matches, dead letters, batch durations) live in
each worker process (`flowbus.metrics`, on `worker.metrics_port`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.api.broker import Broker
from flowbus.api.queries import count_by_status
from flowbus.config import Settings
from flowbus.store.tables import consumer_offsets, instances, outbox, timers

log = structlog.get_logger(__name__)


class ApiMetrics:
    """One registry per API process: gauges refreshed at each scrape, request counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.instances = Gauge(
            "flowbus_instances",
            "Instances by workflow and status.",
            ["workflow", "status"],
            registry=r,
        )
        self.outbox_rows = Gauge(
            "flowbus_outbox_rows", "Committed events not yet relayed to Kafka.", registry=r
        )
        self.outbox_age = Gauge(
            "flowbus_outbox_oldest_age_seconds",
            "Age of the oldest event waiting in the outbox (0 when empty).",
            registry=r,
        )
        self.timers_due = Gauge(
            "flowbus_timers_due",
            "Timers (and queued actions, inbox inputs) due now but not yet taken, by kind.",
            ["kind"],
            registry=r,
        )
        self.timer_lag = Gauge(
            "flowbus_timer_lag_seconds",
            "How long the oldest due, untaken timer of each kind has been due.",
            ["kind"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "flowbus_consumer_lag",
            "Records on the worker group's input topics not yet applied (Kafka end offset "
            "minus the applied position kept in PostgreSQL).",
            ["topic", "partition"],
            registry=r,
        )
        self.source_up = Gauge(
            "flowbus_metrics_source_up",
            "Whether the last scrape could read the source (database, broker).",
            ["source"],
            registry=r,
        )
        self.requests = Counter(
            "flowbus_api_requests",
            "HTTP requests answered by the API.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "flowbus_api_request_seconds",
            "Time to answer an HTTP request (to the first byte for streams).",
            ["method", "route"],
            registry=r,
        )

    async def exposition(self, engine: AsyncEngine, broker: Broker, settings: Settings) -> bytes:
        """Refresh the metrics and render the registry in the text format."""
        now = datetime.now(UTC)
        positions: dict[tuple[str, int], int] | None = None
        try:
            positions = await self._read_database(engine, settings, now)
            self.source_up.labels("database").set(1)
        except Exception as exc:
            log.warning("metrics.database_unreadable", error=str(exc).splitlines()[0])
            self.source_up.labels("database").set(0)
        try:
            await self._read_broker(broker, settings, positions)
            self.source_up.labels("broker").set(1)
        except Exception as exc:
            log.warning("metrics.broker_unreadable", error=str(exc).splitlines()[0])
            self.source_up.labels("broker").set(0)
        return generate_latest(self.registry)

    async def _read_database(
        self, engine: AsyncEngine, settings: Settings, now: datetime
    ) -> dict[tuple[str, int], int]:
        async with engine.connect() as conn:
            counts = await count_by_status(conn)
            waiting = (
                await conn.execute(select(func.count(), func.min(outbox.c.created_at)))
            ).one()
            paused = select(instances.c.id).where(instances.c.status == "paused")
            due = (
                await conn.execute(
                    select(timers.c.kind, func.count(), func.min(timers.c.due_at))
                    .where(
                        and_(
                            timers.c.due_at <= now,
                            or_(timers.c.locked_until.is_(None), timers.c.locked_until < now),
                            or_(
                                timers.c.instance_id.is_(None), timers.c.instance_id.not_in(paused)
                            ),
                        )
                    )
                    .group_by(timers.c.kind)
                )
            ).all()
            applied = (
                await conn.execute(
                    select(
                        consumer_offsets.c.topic,
                        consumer_offsets.c.partition,
                        consumer_offsets.c.next_offset,
                    ).where(consumer_offsets.c.consumer_group == settings.consumer_group)
                )
            ).all()
        self.instances.clear()
        for row in counts:
            self.instances.labels(row.workflow_id, row.status).set(row.count)
        rows, oldest = waiting
        self.outbox_rows.set(rows)
        self.outbox_age.set((now - oldest).total_seconds() if oldest is not None else 0)
        self.timers_due.clear()
        self.timer_lag.clear()
        for kind, count, first in due:
            self.timers_due.labels(kind).set(count)
            self.timer_lag.labels(kind).set(max(0.0, (now - first).total_seconds()))
        return {(row.topic, row.partition): row.next_offset for row in applied}

    async def _read_broker(
        self, broker: Broker, settings: Settings, positions: dict[tuple[str, int], int] | None
    ) -> None:
        topics = [*settings.source_topics, settings.topics.commands]
        ranges = await broker.offset_ranges(topics)
        if positions is None:
            return
        self.consumer_lag.clear()
        for tp, (first, end) in ranges.items():
            # Records before the log start are gone: they are nobody's lag.
            applied = max(positions.get((tp.topic, tp.partition), 0), first)
            self.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - applied))
