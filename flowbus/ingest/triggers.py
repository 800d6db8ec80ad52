"""Domain events in, instances out: one PostgreSQL transaction per consumed batch.

For each record: read it as an event (or dead-letter it with the reason), find the
workflows whose triggers match, map the event to each workflow's input, validate it,
and start an instance. The instance id derives from the event's identity and the
workflow, and applied offsets are stored in the same transaction, so a redelivered
record changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog, TriggerMatch
from flowbus.engine import core
from flowbus.engine.core import Transition
from flowbus.envelope import BadEvent, DomainEvent, parse_record
from flowbus.expressions import PathError
from flowbus.ingest.records import ConsumedRecord
from flowbus.outbox.writer import OutboxBatch
from flowbus.store.instances import insert_new, instance_row
from flowbus.store.offsets import TopicPartition, advance_positions, lock_positions
from flowbus.store.transitions import save_effects

log = structlog.get_logger(__name__)

INSTANCE_NAMESPACE = uuid.UUID("a3c5e0b4-3f51-4b8e-9d1e-52c7f0a1b6d9")


def instance_id_for(event: DomainEvent, workflow_id: str) -> str:
    """The id of the instance `event` starts for `workflow_id`: the same on redelivery."""
    return str(uuid.uuid5(INSTANCE_NAMESPACE, f"{event.dedupe_key}|{workflow_id}"))


class StartRefused(ValueError):
    """An event matched a trigger but cannot start the workflow (transform or input invalid)."""


@dataclass(slots=True)
class BatchReport:
    """What one batch did, for metrics and logs."""

    consumed: int = 0
    skipped: int = 0
    started: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    unmatched: int = 0
    started_ids: list[str] = field(default_factory=list)


def workflow_input(match: TriggerMatch, document: dict[str, Any]) -> Any:
    """The instance input: the trigger's transform of the event, else the event's data."""
    transform = match.trigger.transform
    if transform is None:
        return document["data"]
    try:
        return transform.expression.search(document)
    except PathError as exc:
        raise StartRefused(f"transform failed: {exc}") from None


class TriggerIngest:
    """Applies batches of domain-topic records."""

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        outbox: Callable[[], OutboxBatch],
        consumer_group: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._new_outbox = outbox
        self._group = consumer_group
        self._clock = clock

    async def apply(self, records: Sequence[ConsumedRecord]) -> BatchReport:
        """Apply `records` in one transaction."""
        async with self._engine.begin() as conn:
            return await self._apply(conn, records)

    async def _apply(self, conn: AsyncConnection, records: Sequence[ConsumedRecord]) -> BatchReport:
        report = BatchReport(consumed=len(records))
        now = self._clock()
        at = core.rfc3339(now)
        catalog = self._catalog()
        outbox = self._new_outbox()
        positions = await lock_positions(
            conn, self._group, {(r.topic, r.partition) for r in records}
        )
        advanced: dict[TopicPartition, int] = {}
        starts: list[tuple[Transition, DomainEvent]] = []
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
                )
            except BadEvent as exc:
                self._dead_letter(outbox, record, at, str(exc), report)
                continue
            document = event.match_document()
            matches = catalog.match(document)
            if not matches:
                report.unmatched += 1
                continue
            for match in matches:
                try:
                    transition = self._start(catalog, match, event, document, now)
                except StartRefused as exc:
                    self._dead_letter(outbox, record, at, str(exc), report, match.definition.id)
                    continue
                starts.append((transition, event))
        rows = [instance_row(t.state, trigger_event_id=e.id) for t, e in starts]
        inserted = await insert_new(conn, rows)
        fresh = [t for t, _ in starts if t.state.id in inserted]
        report.started = len(fresh)
        report.duplicates = len(starts) - len(fresh)
        report.started_ids = [t.state.id for t in fresh]
        await save_effects(conn, fresh, outbox)
        await outbox.flush(conn)
        await advance_positions(conn, self._group, advanced)
        return report

    def _start(
        self,
        catalog: DefinitionCatalog,
        match: TriggerMatch,
        event: DomainEvent,
        document: dict[str, Any],
        now: datetime,
    ) -> Transition:
        definition = match.definition
        value = workflow_input(match, document)
        problems = catalog.input_errors(definition, value)
        if problems:
            raise StartRefused("input does not match inputSchema: " + "; ".join(problems))
        return core.start(
            definition,
            instance_id=instance_id_for(event, definition.id),
            input=value,
            trigger=document,
            now=now,
        )

    def _dead_letter(
        self,
        outbox: OutboxBatch,
        record: ConsumedRecord,
        at: str,
        reason: str,
        report: BatchReport,
        definition_id: str | None = None,
    ) -> None:
        report.dead_lettered += 1
        position = record.describe()
        identity = f"{record.topic}:{record.partition}:{record.offset}:{definition_id or ''}"
        data = {
            "reason": reason,
            "definitionId": definition_id,
            **position,
            "key": record.key.decode("utf-8", errors="replace") if record.key else None,
            "value": record.value_text(),
        }
        outbox.dead_letter(
            identity=identity,
            time=at,
            key=record.key.decode("utf-8", errors="replace") if record.key else None,
            data=data,
        )
        log.warning("event.dead_lettered", reason=reason, definition_id=definition_id, **position)
