"""Domain events in: one PostgreSQL transaction per consumed batch.

For each record: read it as an event (or dead-letter it with the reason); start every
workflow whose trigger matches (mapping the event to the workflow's input and validating
it); and hand it to every step waiting for it (or keep it a while for a wait that is about
to start). Instance ids derive from the event's identity and the workflow, and applied
offsets are stored in the same transaction, so a redelivered record changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from flowbus.definitions.catalog import DefinitionCatalog, TriggerMatch
from flowbus.definitions.triggers import TransformError
from flowbus.engine.inputs import EngineInput, EventReceived
from flowbus.envelope import DomainEvent
from flowbus.expressions import PathError
from flowbus.ingest.batch import Batch, BatchIngest
from flowbus.service.unit_of_work import StartRequest, UnitOfWork
from flowbus.store.subscriptions import WaitKey

INSTANCE_NAMESPACE = uuid.UUID("a3c5e0b4-3f51-4b8e-9d1e-52c7f0a1b6d9")


def instance_id_for(event: DomainEvent, workflow_id: str) -> str:
    """The id of the instance `event` starts for `workflow_id`: the same on redelivery."""
    return str(uuid.uuid5(INSTANCE_NAMESPACE, f"{event.dedupe_key}|{workflow_id}"))


class StartRefused(ValueError):
    """An event matched a trigger but cannot start the workflow (transform or input invalid)."""


def workflow_input(match: TriggerMatch, document: dict[str, Any]) -> Any:
    """The instance input: the trigger's transform of the event, else the event's data."""
    try:
        return match.trigger.input_for(document)
    except TransformError as exc:
        raise StartRefused(str(exc)) from None


@dataclass(frozen=True, slots=True)
class EventForWait:
    """An event, and a wait key it would satisfy (one per wait probe of its topic that
    finds a key in it)."""

    wait: WaitKey
    event: dict[str, Any]


class TriggerIngest(BatchIngest):
    """Applies batches of domain-topic records."""

    async def handle(self, batch: Batch) -> None:
        catalog = batch.catalog
        # By instance id: an event repeated within one batch starts its workflows once.
        starts: dict[str, StartRequest] = {}
        probes: list[EventForWait] = []
        for record, event in batch.events:
            document = event.match_document()
            for probe in catalog.probes(event.topic):
                if probe.event_type not in (None, event.type):
                    continue
                try:
                    key = probe.match.search(document)
                except PathError:
                    continue
                if isinstance(key, str | int | float) and not isinstance(key, bool):
                    wait = WaitKey(event.topic, probe.match.source, str(key))
                    probes.append(EventForWait(wait, document))
            matches = catalog.match(document)
            if not matches:
                batch.report.unmatched += 1
            for match in matches:
                try:
                    request = self._start_request(catalog, match, event, document)
                    starts.setdefault(request.instance_id, request)
                except StartRefused as exc:
                    batch.dead_letter(record, str(exc), match.definition.id)
        if starts:
            await batch.uow.start(list(starts.values()))
        if probes:
            batch.report.buffered = await self._deliver_to_waits(batch.uow, probes)

    async def _deliver_to_waits(self, uow: UnitOfWork, probes: list[EventForWait]) -> int:
        """Hand each event to the steps waiting for it; keep it a while when none is."""
        await uow.subscriptions.lock_keys([p.wait for p in probes])
        waiting = await uow.subscriptions.waiting([p.wait for p in probes])
        deliveries: list[tuple[str, EngineInput]] = []
        buffered = 0
        taken: set[tuple[str, str]] = set()
        for probe in probes:
            event_type = probe.event.get("type")
            hits = [
                (waiter.instance_id, waiter.step_id)
                for waiter in waiting.get(probe.wait, [])
                if waiter.event_type in (None, event_type)
                and (waiter.instance_id, waiter.step_id) not in taken
            ]
            if not hits:
                await uow.keep_event(probe.wait, event_type, probe.event)
                buffered += 1
                continue
            for instance_id, step_id in hits:
                taken.add((instance_id, step_id))
                deliveries.append((instance_id, EventReceived(step_id=step_id, event=probe.event)))
        if deliveries:
            await uow.deliver(deliveries)
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
