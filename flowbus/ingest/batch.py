"""What every consumer of a topic does with a batch, in one PostgreSQL transaction: skip
records already applied, read the rest as events within the record limits (dead-lettering
the unreadable with the reason), let the topic's ingest handle them, write the effects, and
record the applied offsets.

A dead-letter event quotes the record, never copies it whole: the start of the value (at
most 64 KiB, escapes included), and the key and reason cut at a few KiB, so it stays far
below the broker's message size whatever the record was.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.envelope import BadEvent, DomainEvent, RecordLimits, parse_record
from flowbus.ingest.records import ConsumedRecord
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.reports import BatchReport
from flowbus.service.unit_of_work import UnitOfWork
from flowbus.store.offsets import TopicPartition
from flowbus.times import rfc3339

__all__ = ["Batch", "BatchIngest", "BatchReport", "dead_letter"]

log = structlog.get_logger(__name__)

DEAD_LETTER_VALUE_BYTES = 65536
DEAD_LETTER_TEXT_CHARS = 4096


def dead_letter(
    outbox: OutboxBatch,
    record: ConsumedRecord,
    at: str,
    reason: str,
    definition_id: str | None = None,
) -> None:
    """Send a record to the dead-letter topic with the reason (stable id per record)."""
    position = record.describe()
    key = _cut(record.key.decode("utf-8", errors="replace")) if record.key else None
    reason = _cut(reason)
    outbox.dead_letter(
        identity=f"{record.topic}:{record.partition}:{record.offset}:{definition_id or ''}",
        time=at,
        key=key,
        data={
            "reason": reason,
            "definitionId": definition_id,
            **position,
            "key": key,
            "value": record.value_text(DEAD_LETTER_VALUE_BYTES),
        },
    )
    log.warning("event.dead_lettered", reason=reason, definition_id=definition_id, **position)


def _cut(text: str) -> str:
    if len(text) <= DEAD_LETTER_TEXT_CHARS:
        return text
    return f"{text[:DEAD_LETTER_TEXT_CHARS]}… ({len(text)} characters in all)"


@dataclass(slots=True)
class Batch:
    """A batch being applied: its readable events, and the unit of work they go to."""

    uow: UnitOfWork
    report: BatchReport
    events: list[tuple[ConsumedRecord, DomainEvent]] = field(default_factory=list)

    @property
    def catalog(self) -> DefinitionCatalog:
        return self.uow.catalog

    @property
    def at(self) -> str:
        return rfc3339(self.uow.now)

    @property
    def outbox(self) -> OutboxBatch:
        return self.uow.events

    def dead_letter(
        self, record: ConsumedRecord, reason: str, definition_id: str | None = None
    ) -> None:
        dead_letter(self.outbox, record, self.at, reason, definition_id)
        self.report.dead_lettered += 1


class BatchIngest(ABC):
    """Applies batches of one kind of topic; subclasses say what its events do."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        outbox: Callable[[], OutboxBatch],
        consumer_group: str,
        limits: RecordLimits,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._new_outbox = outbox
        self._group = consumer_group
        self._limits = limits
        self._clock = clock

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self._engine, self._catalog(), self._new_outbox(), self._clock())

    async def apply(self, records: Sequence[ConsumedRecord]) -> BatchReport:
        """Apply `records` in one transaction."""
        report = BatchReport(consumed=len(records))
        async with self.unit_of_work() as uow:
            batch = Batch(uow, report)
            positions = await uow.offsets.lock(
                self._group, {(r.topic, r.partition) for r in records}
            )
            advanced: dict[TopicPartition, int] = {}
            for record in records:
                tp = (record.topic, record.partition)
                if record.offset < positions.get(tp, 0):
                    report.skipped += 1
                    continue
                advanced[tp] = max(advanced.get(tp, 0), record.offset + 1)
                try:
                    event = parse_record(
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.value,
                        record.headers,
                        self._limits,
                    )
                except BadEvent as exc:
                    batch.dead_letter(record, str(exc))
                    continue
                batch.events.append((record, event))
            await self.handle(batch)
            await uow.offsets.advance(self._group, advanced)
        report.work = uow.report
        return report

    @abstractmethod
    async def handle(self, batch: Batch) -> None:
        """Do what the batch's readable events say, through `batch.uow`."""
