"""Schedule triggers: cron ticks that start instances, durably and once across workers.

The `schedules` table holds the next due tick of every schedule trigger of the active
definitions; `ScheduleLoop.sync` brings it in line whenever definitions load. Every worker
runs the loop: a round claims due rows with FOR UPDATE SKIP LOCKED, starts their instances
through the unit of work and moves `next_due` on, in one transaction. An instance's id
derives from the workflow and the tick, so a tick can never start two instances, whatever
crashes or races happen around the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.triggers import Schedule, TransformError, Trigger
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.loop import WorkLoop
from flowbus.service.unit_of_work import StartRequest, WorkReport
from flowbus.store.definitions import active_definitions
from flowbus.store.schedules import Advance, ScheduleKey, ScheduleRow
from flowbus.times import rfc3339

log = structlog.get_logger(__name__)

SCHEDULE_NAMESPACE = uuid.UUID("5c1f0e62-8a43-4d2b-b7e9-0f6a3d9c2e71")
# Ticks started per schedule in one round; a schedule further behind continues next round.
_TICKS_PER_ROUND = 100


@dataclass(frozen=True, slots=True)
class Tick:
    """A moment a schedule fires; `misfired` when it stands for ticks missed while no
    worker ran."""

    at: datetime
    misfired: bool = False


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What a round does with one schedule: the ticks to start and the next one due."""

    fire: list[Tick]
    next_due: datetime
    skipped: bool = False


def plan_ticks(schedule: Schedule, due: datetime, now: datetime) -> TickPlan:
    """The ticks to start at `now` for a schedule whose earliest unstarted tick is `due`.

    Ticks within the schedule's grace start one by one. Older ones were missed (every
    worker was down): under `fire_once` the first of them starts one instance for all of
    them; under `skip` they start nothing.
    """
    fire: list[Tick] = []
    skipped = False
    tick = due
    on_time_from = now - schedule.grace
    if tick < on_time_from:
        if schedule.misfire == "fire_once":
            fire.append(Tick(tick, misfired=True))
        else:
            skipped = True
        tick = schedule.next_after(on_time_from)
    while tick <= now and len(fire) < _TICKS_PER_ROUND:
        fire.append(Tick(tick))
        tick = schedule.next_after(tick)
    return TickPlan(fire, tick, skipped)


def schedule_instance_id(workflow_id: str, tick: datetime) -> str:
    """The id of the instance a tick starts: one per workflow and tick time."""
    return str(uuid.uuid5(SCHEDULE_NAMESPACE, f"{workflow_id}|{rfc3339(tick)}"))


def tick_document(workflow_id: str, index: int, schedule: Schedule, tick: Tick) -> dict[str, Any]:
    """The trigger document of a scheduled instance (what `trigger` shows its steps)."""
    at = rfc3339(tick.at)
    return {
        "id": f"schedule:{workflow_id}:{index}:{at}",
        "source": "flowbus.schedule",
        "type": "flowbus.schedule.tick",
        "subject": workflow_id,
        "time": at,
        "topic": None,
        "key": None,
        "headers": {},
        "data": {
            "scheduledTime": at,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "misfired": tick.misfired,
        },
    }


def schedule_input(schedule: Schedule, document: dict[str, Any]) -> Any:
    """The workflow input of a tick: the schedule's `input`, else the tick's data."""
    return schedule.input if schedule.input is not None else document["data"]


class ScheduleRefused(ValueError):
    """A tick's input or correlation is invalid for its workflow."""


class ScheduleLoop(WorkLoop):
    """Keeps the schedules table in line with the definitions and starts due ticks."""

    name = "schedules"

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Callable[[], DefinitionCatalog],
        outbox: Callable[[], OutboxBatch],
        *,
        batch_size: int = 100,
        max_sleep: float = 1.0,
        on_work: Callable[[WorkReport], None] = lambda report: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(engine, catalog, outbox, on_work=on_work, clock=clock)
        self._batch_size = batch_size
        self._max_sleep = max_sleep
        self.started = 0

    async def round(self) -> float:
        """Start due ticks; sleep until the next one is due."""
        await self.fire_due()
        return await self._seconds_to_next_due()

    async def sync(self) -> None:
        """Make the table hold exactly the schedule triggers of the active definitions.

        A new schedule, or one whose cron or time zone changed, is next due at its first
        tick from now; an unchanged one keeps its next due tick, so ticks missed while no
        worker ran are still found.
        """
        async with self.transaction() as store:
            await store.schedules.lock_for_sync()
            active = await active_definitions(store.conn)
            await store.schedules.replace(_schedule_rows(active, self._clock()))
        self.wake()

    async def fire_due(self) -> int:
        """Claim due schedules, start their ticks and advance them: one transaction."""
        now = self._clock()
        catalog = self._catalog()
        known = _loaded_schedules(catalog)
        if not known:
            return 0
        async with self.unit_of_work(now) as uow:
            rows = await uow.schedules.claim_due(now, list(known), self._batch_size)
            if not rows:
                return 0
            # By instance id: two schedule triggers of one workflow ticking together start it once.
            starts: dict[str, StartRequest] = {}
            advanced: list[Advance] = []
            fired: list[tuple[str, int, list[str]]] = []
            for row in rows:
                definition, index, trigger = known[
                    (row.workflow_id, row.trigger_index, row.cron, row.timezone)
                ]
                assert trigger.schedule is not None
                plan = plan_ticks(trigger.schedule, row.next_due, now)
                if plan.fire:
                    fired.append((definition.id, index, [rfc3339(t.at) for t in plan.fire]))
                if plan.skipped:
                    log.info(
                        "schedule.missed_ticks_skipped",
                        workflow_id=definition.id,
                        trigger_index=index,
                        missed_from=rfc3339(row.next_due),
                    )
                for tick in plan.fire:
                    try:
                        request = _start_request(catalog, definition, index, trigger, tick)
                        starts.setdefault(request.instance_id, request)
                    except ScheduleRefused as exc:
                        log.error(
                            "schedule.tick_refused",
                            reason=str(exc),
                            workflow_id=definition.id,
                            trigger_index=index,
                            scheduled_time=rfc3339(tick.at),
                        )
                last_tick = plan.fire[-1].at if plan.fire else row.last_tick
                advanced.append(
                    Advance(row.workflow_id, row.trigger_index, plan.next_due, last_tick)
                )
            if starts:
                await uow.start(list(starts.values()))
            await uow.schedules.advance(advanced)
        report = uow.report
        self.started += len(report.started)
        for workflow_id, index, ticks in fired:
            log.info("schedule.fired", workflow_id=workflow_id, trigger_index=index, ticks=ticks)
        self._on_work(report)
        return len(rows)

    async def _seconds_to_next_due(self) -> float:
        known = _loaded_schedules(self._catalog())
        if not known:
            return self._max_sleep
        async with self.transaction() as store:
            due = await store.schedules.next_due(list(known))
        if due is None:
            return self._max_sleep
        wait = (due - self._clock()).total_seconds()
        return min(max(wait, 0.01), self._max_sleep)


def _schedule_rows(active: Sequence[WorkflowDefinition], now: datetime) -> list[ScheduleRow]:
    return [
        ScheduleRow(
            workflow_id=definition.id,
            trigger_index=index,
            cron=trigger.schedule.cron,
            timezone=trigger.schedule.timezone,
            next_due=trigger.schedule.next_after(now),
        )
        for definition in active
        for index, trigger in enumerate(definition.triggers)
        if trigger.schedule is not None
    ]


def _loaded_schedules(
    catalog: DefinitionCatalog,
) -> dict[ScheduleKey, tuple[WorkflowDefinition, int, Trigger]]:
    """The schedule triggers of this worker's active definitions, keyed like their rows.

    A worker only claims rows it has loaded the same schedule for: one that lags behind a
    definition change leaves the row to the others until it has reloaded.
    """
    return {
        (definition.id, index, trigger.schedule.cron, trigger.schedule.timezone): (
            definition,
            index,
            trigger,
        )
        for definition in catalog.active
        for index, trigger in enumerate(definition.triggers)
        if trigger.schedule is not None
    }


def _start_request(
    catalog: DefinitionCatalog,
    definition: WorkflowDefinition,
    index: int,
    trigger: Trigger,
    tick: Tick,
) -> StartRequest:
    assert trigger.schedule is not None
    document = tick_document(definition.id, index, trigger.schedule, tick)
    value = schedule_input(trigger.schedule, document)
    problems = catalog.input_errors(definition, value)
    if problems:
        raise ScheduleRefused("input does not match inputSchema: " + "; ".join(problems))
    try:
        correlation_id = trigger.correlation_for(document)
    except TransformError as exc:
        raise ScheduleRefused(str(exc)) from None
    return StartRequest(
        definition=definition,
        instance_id=schedule_instance_id(definition.id, tick.at),
        input=value,
        trigger=document,
        trigger_event_id=document["id"],
        correlation_id=correlation_id,
    )
