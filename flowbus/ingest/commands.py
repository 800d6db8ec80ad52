"""The commands topic: start, cancel, pause, resume, or send an event to an instance, by
publishing, so everything the HTTP API does can also be done through Kafka.

A command is a CloudEvent of type `flowbus.command.<kind>` with the fields below as its
data, or plain JSON with a `command` field naming the kind next to them. Commands that do
not parse, or name an unknown instance or workflow, go to the dead-letter topic.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.inputs import Command, EngineInput, EventReceived
from flowbus.envelope import DomainEvent
from flowbus.ingest.batch import Batch, BatchIngest
from flowbus.ingest.records import ConsumedRecord
from flowbus.service.definitions import UnknownDefinition, definition_to_start
from flowbus.service.unit_of_work import StartRequest
from flowbus.store.tables import instances

log = structlog.get_logger(__name__)

COMMAND_NAMESPACE = uuid.UUID("9b8f7e6d-5c4b-4a39-8271-605f4e3d2c1b")


class _Command(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class StartCommand(_Command):
    command: Literal["start"]
    workflow_id: str
    version: int | None = Field(None, ge=1)
    input: Any = None
    correlation_id: str | None = None
    instance_id: uuid.UUID | None = None


class CancelCommand(_Command):
    command: Literal["cancel"]
    instance_id: uuid.UUID
    compensate: bool = True
    reason: str | None = None
    by: str | None = None


class PauseCommand(_Command):
    command: Literal["pause", "resume", "retry"]
    instance_id: uuid.UUID
    by: str | None = None


class EventCommand(_Command):
    command: Literal["event"]
    instance_id: uuid.UUID
    step_id: str | None = None
    event: Any = None


AnyCommand = Annotated[
    StartCommand | CancelCommand | PauseCommand | EventCommand, Field(discriminator="command")
]
_COMMAND = TypeAdapter(AnyCommand)


class CommandRefused(ValueError):
    """A command that cannot be carried out; the reason goes to the dead-letter topic."""


def parse_command(event: DomainEvent) -> StartCommand | CancelCommand | PauseCommand | EventCommand:
    body = event.data if isinstance(event.data, dict) else None
    if body is None:
        raise CommandRefused("a command must be a JSON object")
    fields = dict(body)
    if event.is_cloudevent:
        kind = (event.type or "").removeprefix("flowbus.command.")
        fields.setdefault("command", kind)
    try:
        return _COMMAND.validate_python(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'command'}: {err['msg']}"
            for err in exc.errors()
        )
        raise CommandRefused(f"invalid command: {problems}") from None


class CommandIngest(BatchIngest):
    """Applies batches of command records."""

    async def handle(self, batch: Batch) -> None:
        parsed: list[tuple[ConsumedRecord, DomainEvent, Any]] = []
        for record, event in batch.events:
            try:
                parsed.append((record, event, parse_command(event)))
            except CommandRefused as exc:
                batch.dead_letter(record, str(exc))
        targets = {str(c.instance_id) for _, _, c in parsed if not isinstance(c, StartCommand)}
        known = await _existing(batch.conn, targets)
        starts: list[StartRequest] = []
        deliveries: list[tuple[str, EngineInput]] = []
        for record, event, command in parsed:
            try:
                if isinstance(command, StartCommand):
                    starts.append(await self._start(batch.conn, batch.catalog, event, command))
                    continue
                instance_id = str(command.instance_id)
                if instance_id not in known:
                    raise CommandRefused(f"unknown instance {instance_id}")
                deliveries.append((instance_id, _engine_input(event, command)))
            except CommandRefused as exc:
                batch.dead_letter(record, str(exc))
        if starts:
            await batch.work.start(starts)
        if deliveries:
            await batch.work.deliver(deliveries)

    async def _start(
        self,
        conn: AsyncConnection,
        catalog: DefinitionCatalog,
        event: DomainEvent,
        command: StartCommand,
    ) -> StartRequest:
        try:
            definition = await definition_to_start(
                conn, catalog, command.workflow_id, command.version
            )
        except UnknownDefinition as exc:
            raise CommandRefused(str(exc)) from None
        problems = catalog.input_errors(definition, command.input)
        if problems:
            raise CommandRefused("input does not match inputSchema: " + "; ".join(problems))
        instance_id = (
            str(command.instance_id)
            if command.instance_id is not None
            else str(uuid.uuid5(COMMAND_NAMESPACE, f"{event.dedupe_key}|{definition.id}"))
        )
        return StartRequest(
            definition=definition,
            instance_id=instance_id,
            input=command.input,
            trigger=event.match_document(),
            trigger_event_id=event.id,
            correlation_id=command.correlation_id,
        )


def _engine_input(event: DomainEvent, command: Any) -> EngineInput:
    if isinstance(command, CancelCommand):
        return Command(
            kind="cancel", compensate=command.compensate, reason=command.reason, by=command.by
        )
    if isinstance(command, PauseCommand):
        return Command(kind=command.command, by=command.by)
    document = event.match_document()
    document["data"] = command.event
    return EventReceived(step_id=command.step_id, event=document)


async def _existing(conn: AsyncConnection, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    rows = await conn.execute(select(instances.c.id).where(instances.c.id.in_(sorted(ids))))
    return {str(row.id) for row in rows}
