"""Domain events in: one PostgreSQL transaction per consumed batch.

For each record: read it as an event (or dead-letter it with the reason); start every
workflow whose trigger matches (mapping the event to the workflow's input and validating
it); and hand it to every step waiting for it (or keep it a while for a wait that is about
to start). Instance ids derive from the event's identity and the workflow, and applied
offsets are stored in the same transaction, so a redelivered record changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog, TriggerMatch
from flowbus.definitions.model import TransformError
from flowbus.engine.inputs import EngineInput, EventReceived
from flowbus.engine.run import rfc3339
from flowbus.envelope import BadEvent, DomainEvent, parse_record
from flowbus.expressions import PathError
from flowbus.ingest.records import ConsumedRecord
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.unit_of_work import StartRequest, UnitOfWork, WorkReport
from flowbus.store.offsets import TopicPartition, advance_positions, lock_positions

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
    dead_lettered: int = 0
    unmatched: int = 0
    buffered: int = 0
    work: WorkReport | None = None

    @property
    def started(self) -> int:
        return len(self.work.started) if self.work else 0


def workflow_input(match: TriggerMatch, document: dict[str, Any]) -> Any:
    """The instance input: the trigger's transform of the event, else the event's data."""
    try:
        return match.trigger.input_for(document)
    except TransformError as exc:
        raise StartRefused(str(exc)) from None


def dead_letter(
    outbox: OutboxBatch,
    record: ConsumedRecord,
    at: str,
    reason: str,
    definition_id: str | None = None,
) -> None:
    """Send a record to the dead-letter topic with the reason (stable id per record)."""
    position = record.describe()
    key = record.key.decode("utf-8", errors="replace") if record.key else None
    outbox.dead_letter(
        identity=f"{record.topic}:{record.partition}:{record.offset}:{definition_id or ''}",
        time=at,
        key=key,
        data={
            "reason": reason,
            "definitionId": definition_id,
            **position,
            "key": key,
            "value": record.value_text(),
        },
    )
    log.warning("event.dead_lettered", reason=reason, definition_id=definition_id, **position)


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
        at = rfc3339(now)
        catalog = self._catalog()
        outbox = self._new_outbox()
        work = UnitOfWork(conn, catalog, outbox, now)
        positions = await lock_positions(
            conn, self._group, {(r.topic, r.partition) for r in records}
        )
        advanced: dict[TopicPartition, int] = {}
        # By instance id: an event repeated within one batch starts its workflows once.
        starts: dict[str, StartRequest] = {}
        probes: list[tuple[str, str | None, str, str, dict[str, Any]]] = []
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
                dead_letter(outbox, record, at, str(exc))
                report.dead_lettered += 1
                continue
            document = event.match_document()
            for probe in catalog.probes(event.topic):
                if probe.event_type not in (None, event.type):
                    continue
                try:
                    key = probe.match.search(document)
                except PathError:
                    continue
                if isinstance(key, str | int | float) and not isinstance(key, bool):
                    probes.append(
                        (event.topic, probe.event_type, probe.match.source, str(key), document)
                    )
            matches = catalog.match(document)
            if not matches:
                report.unmatched += 1
            for match in matches:
                try:
                    request = self._start_request(catalog, match, event, document)
                    starts.setdefault(request.instance_id, request)
                except StartRefused as exc:
                    dead_letter(outbox, record, at, str(exc), match.definition.id)
                    report.dead_lettered += 1
        if starts:
            await work.start(list(starts.values()))
        if probes:
            report.buffered = await self._deliver_to_waits(work, probes)
        report.work = await work.flush()
        await advance_positions(conn, self._group, advanced)
        return report

    async def _deliver_to_waits(
        self, work: UnitOfWork, probes: list[tuple[str, str | None, str, str, dict[str, Any]]]
    ) -> int:
        waiting = await work.waiting_for([(t, et, m, k) for t, et, m, k, _ in probes])
        deliveries: list[tuple[str, EngineInput]] = []
        buffered = 0
        taken: set[tuple[str, str]] = set()
        for topic, _, match, key, document in probes:
            hits = [
                (instance_id, step_id)
                for instance_id, step_id, wanted in waiting.get((topic, match, key), [])
                if wanted in (None, document.get("type")) and (instance_id, step_id) not in taken
            ]
            if not hits:
                await work.buffer_event(topic, document.get("type"), match, key, document)
                buffered += 1
                continue
            for instance_id, step_id in hits:
                taken.add((instance_id, step_id))
                deliveries.append((instance_id, EventReceived(step_id=step_id, event=document)))
        if deliveries:
            await work.deliver(deliveries)
        return buffered

    def _start_request(
        self,
        catalog: DefinitionCatalog,
        match: TriggerMatch,
        event: DomainEvent,
        document: dict[str, Any],
    ) -> StartRequest:
        definition = match.definition
        value = workflow_input(match, document)
        problems = catalog.input_errors(definition, value)
        if problems:
            raise StartRefused("input does not match inputSchema: " + "; ".join(problems))
        try:
            correlation_id = match.trigger.correlation_for(document)
        except TransformError as exc:
            raise StartRefused(str(exc)) from None
        return StartRequest(
            definition=definition,
            instance_id=instance_id_for(event, definition.id),
            input=value,
            trigger=document,
            trigger_event_id=event.id,
            correlation_id=correlation_id,
        )
