"""The deployment's state as Prometheus gauges, read from PostgreSQL and Kafka at each
scrape of the API's `/metrics`, plus the API's own request counters.

The worker's counters (records consumed, matches, dead letters, batch durations) live in
each worker process (`flowbus.metrics`, on `worker.metrics_port`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.api.broker import Broker
from flowbus.config import Settings
from flowbus.store.read_models import read_deployment

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
            reading = await read_deployment(conn, settings.consumer_group, now)
        self.instances.clear()
        for row in reading.counts:
            self.instances.labels(row.workflow_id, row.status).set(row.count)
        oldest = reading.outbox_oldest
        self.outbox_rows.set(reading.outbox_rows)
        self.outbox_age.set((now - oldest).total_seconds() if oldest is not None else 0)
        self.timers_due.clear()
        self.timer_lag.clear()
        for due in reading.due:
            self.timers_due.labels(due.kind).set(due.count)
            self.timer_lag.labels(due.kind).set(max(0.0, (now - due.oldest_due).total_seconds()))
        return reading.positions

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
