"""The commands topic: start, cancel, pause, resume, or send an event to an instance, or
register a definition, by publishing, so everything the HTTP API does can also be done
through Kafka (SDK workers register their code-first workflows this way).

A command is a CloudEvent of type `flowbus.command.<kind>` with the fields below as its
data, or plain JSON with a `command` field naming the kind next to them. Every command
that changes nothing goes to the dead-letter topic with the reason: it does not parse, it
names an unknown instance or workflow, the instance's status does not allow it (the same
rules, in the same words, as the HTTP API's 409 answers), or no step waits for the event
it carries.

`register` stores `{"definition": {...}}` through `store_document` (its task references
resolved), in a transaction of its own: storing is idempotent (the same content is the
same version), so a redelivered command changes nothing; an invalid or conflicting
definition is dead-lettered with the problems found.

`start` with `"start": false` creates the instance without starting it (status `created`,
its first step `pending`); a later `start` naming that `instanceId` starts it. A `start`
naming an instance that exists and is not `created` changes nothing (a repeated command,
as when a client retries with the same Idempotency-Key). Starts of a disabled workflow are
refused, and so are starts of a deprecated version, or of a workflow whose latest version
is deprecated when they name no version.

Commands apply in topic order. Each is checked against the status its instance has when
its turn comes: a second command for an instance within one batch is checked after the
first one's changes are written (in the same transaction).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from flowbus.definitions.errors import DefinitionConflict, DefinitionError
from flowbus.engine import core
from flowbus.engine.inputs import Command, EngineInput, EventReceived
from flowbus.engine.state import InstanceStatus
from flowbus.envelope import DomainEvent
from flowbus.ingest.batch import Batch, BatchIngest
from flowbus.ingest.records import ConsumedRecord
from flowbus.service.definitions import (
    UnknownDefinition,
    definition_to_start,
    store_document,
)
from flowbus.service.effect_handlers import take
from flowbus.service.unit_of_work import StartRequest, UnitOfWork
from flowbus.store.definitions import workflow_disabled
from flowbus.store.instances import CodeHold

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
    start: bool = Field(True, description="False: create the instance without starting it.")


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


class RegisterCommand(_Command):
    command: Literal["register"]
    definition: dict[str, Any]


class EventCommand(_Command):
    command: Literal["event"]
    instance_id: uuid.UUID
    step_id: str | None = None
    event: Any = None


InstanceCommand = StartCommand | CancelCommand | PauseCommand | EventCommand
AnyCommand = Annotated[InstanceCommand | RegisterCommand, Field(discriminator="command")]
_COMMAND = TypeAdapter(AnyCommand)


class CommandRefused(ValueError):
    """A command that cannot be carried out; the reason goes to the dead-letter topic."""


def parse_command(event: DomainEvent) -> InstanceCommand | RegisterCommand:
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


Parsed = tuple[ConsumedRecord, DomainEvent, InstanceCommand]


class CommandIngest(BatchIngest):
    """Applies batches of command records."""

    async def handle(self, batch: Batch) -> None:
        parsed: list[Parsed] = []
        for record, event in batch.events:
            try:
                command = parse_command(event)
                if isinstance(command, RegisterCommand):
                    await self._register(command)
                else:
                    parsed.append((record, event, command))
            except CommandRefused as exc:
                batch.dead_letter(record, str(exc))
        for number, turn in enumerate(_turns(parsed)):
            if number:
                await batch.uow.flush()
            await self._apply(batch, turn)

    async def _register(self, command: RegisterCommand) -> None:
        try:
            stored = await store_document(self._engine, command.definition)
        except (DefinitionError, DefinitionConflict) as exc:
            raise CommandRefused(f"definition not stored: {exc}") from None
        log.info(
            "definition.registered",
            workflow_id=stored.definition.id,
            version=stored.version,
            created=stored.created,
        )

    async def _apply(self, batch: Batch, commands: list[Parsed]) -> None:
        """Apply commands for distinct instances, each checked against its current status."""
        targets = {str(c.instance_id) for _, _, c in commands if c.instance_id is not None}
        # Locked in id order, as the unit of work locks instances.
        current = await batch.uow.instances.lock_status(targets)
        starts: list[StartRequest] = []
        creates: list[StartRequest] = []
        deliveries: list[tuple[str, EngineInput]] = []
        events: list[tuple[ConsumedRecord, str, EventCommand, EngineInput]] = []
        for record, event, command in commands:
            try:
                if isinstance(command, StartCommand):
                    existing = current.get(str(command.instance_id))
                    if existing is not None:
                        await self._start_created(batch, command, existing[0], deliveries)
                        continue
                    request = await self._start(batch.uow, event, command)
                    (starts if command.start else creates).append(request)
                    continue
                instance_id = str(command.instance_id)
                found = current.get(instance_id)
                if found is None:
                    raise CommandRefused(f"unknown instance {instance_id}")
                _check_status(instance_id, command, *found)
                value = _engine_input(event, command)
                if isinstance(command, EventCommand):
                    events.append((record, instance_id, command, value))
                else:
                    deliveries.append((instance_id, value))
            except CommandRefused as exc:
                batch.dead_letter(record, str(exc))
        if starts:
            await batch.uow.start(starts)
        if creates:
            await _create(batch.uow, creates)
        if deliveries:
            await batch.uow.deliver(deliveries)
        for record, instance_id, command, value in events:
            # The engine yields no effects for an input that does not apply, and every event
            # a step takes emits an outcome event: an outbox that did not grow means no step
            # took it.
            before = len(batch.outbox.rows)
            await batch.uow.deliver([(instance_id, value)])
            if len(batch.outbox.rows) == before:
                waiting = (
                    f"step {command.step_id} of instance {instance_id} is not"
                    if command.step_id
                    else f"no step of instance {instance_id} is"
                )
                batch.dead_letter(record, f"{waiting} waiting for an event")

    async def _start_created(
        self,
        batch: Batch,
        command: StartCommand,
        status: InstanceStatus,
        deliveries: list[tuple[str, EngineInput]],
    ) -> None:
        """A start naming an instance that exists: start it if it is only created."""
        instance_id = str(command.instance_id)
        if status is not InstanceStatus.CREATED or not command.start:
            batch.uow.report.duplicates += 1
            return
        await _refuse_disabled(batch.uow, command.workflow_id)
        deliveries.append((instance_id, Command(kind="start")))

    async def _start(
        self, uow: UnitOfWork, event: DomainEvent, command: StartCommand
    ) -> StartRequest:
        catalog = uow.catalog
        await _refuse_disabled(uow, command.workflow_id)
        try:
            definition = await definition_to_start(
                uow.conn, catalog, command.workflow_id, command.version
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


async def _refuse_disabled(uow: UnitOfWork, workflow_id: str) -> None:
    if await workflow_disabled(uow.conn, workflow_id):
        raise CommandRefused(f"workflow {workflow_id!r} is disabled: it starts no instances")


async def _create(uow: UnitOfWork, requests: list[StartRequest]) -> None:
    """Create instances without starting them (ids already taken count as duplicates)."""
    transitions = [
        core.start(
            r.definition,
            instance_id=r.instance_id,
            input=r.input,
            now=uow.now,
            trigger=r.trigger,
            correlation_id=r.correlation_id,
            limits=uow.limits,
            begin=False,
        )
        for r in requests
    ]
    inserted = await uow.instances.insert_new(
        [t.state for t in transitions], [r.trigger_event_id for r in requests]
    )
    for transition in transitions:
        if transition.state.id not in inserted:
            uow.report.duplicates += 1
            continue
        uow.states[transition.state.id] = transition.state
        take(uow, transition, changed=False)


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


def _turns(commands: list[Parsed]) -> list[list[Parsed]]:
    """Split commands so that each turn names an instance at most once, keeping the order
    of the commands for each instance."""
    turns: list[list[Parsed]] = []
    seen: dict[str, int] = {}
    for item in commands:
        target = item[2].instance_id
        number = 0
        if target is not None:
            number = seen.get(str(target), 0)
            seen[str(target)] = number + 1
        if number == len(turns):
            turns.append([])
        turns[number].append(item)
    return turns


_ALLOWED: dict[str, tuple[frozenset[InstanceStatus], str]] = {
    "pause": (frozenset({InstanceStatus.RUNNING, InstanceStatus.WAITING}), "running or waiting"),
    "resume": (frozenset({InstanceStatus.PAUSED}), "paused"),
    "cancel": (
        frozenset(s for s in InstanceStatus if not s.is_final) - {InstanceStatus.COMPENSATING},
        "created, running, waiting or paused",
    ),
    "retry": (frozenset({InstanceStatus.FAILED}), "failed"),
    "event": (frozenset(s for s in InstanceStatus if not s.is_final), "unfinished"),
}


def _check_status(
    instance_id: str,
    command: Any,
    status: InstanceStatus,
    error: dict[str, Any] | None,
    code: CodeHold | None = None,
) -> None:
    """Refuse a command the instance's status does not allow, as the HTTP API does (409).

    `retry` also applies to a held code-first instance (it sends it its task again), and
    not to a failed code-first one (its compensations ran: start a new instance)."""
    kind = command.command
    if kind == "retry" and code is not None:
        if code.held is not None and not status.is_final:
            return
        if status is InstanceStatus.FAILED:
            raise CommandRefused(
                f"instance {instance_id} is a code-first instance that failed: its "
                "compensations ran, so replaying its history would reuse undone results; "
                "start a new instance instead"
            )
    allowed, allowed_text = _ALLOWED[kind]
    if status not in allowed:
        raise CommandRefused(
            f"instance {instance_id} is {status}: {kind} applies only to {allowed_text} instances"
        )
    if kind == "retry":
        error = error or {}
        if not error.get("step_id") or error.get("type") == "CompensationFailed":
            raise CommandRefused(
                f"instance {instance_id} did not fail in a step it can run again "
                f"({error.get('type', 'no error recorded')}): start a new instance instead"
            )
