"""The effect handler table: what the unit of work writes for each effect."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, get_args

import orjson
import pytest

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.core import Transition
from flowbus.engine.effects import (
    CancelTimers,
    Effect,
    NotifyParent,
    RunAction,
    SetTimer,
    Subscribe,
    Unsubscribe,
)
from flowbus.engine.inputs import ChildFinished
from flowbus.engine.state import ErrorInfo, InstanceState, InstanceStatus
from flowbus.service.codec import decode_input
from flowbus.service.effect_handlers import EFFECT_HANDLERS, take
from flowbus.store.timers import ACTION_JOB, INBOX

from .fakes import NOW, FakeUnitOfWork, Tables

LATER = NOW + timedelta(minutes=5)

STATE = InstanceState(
    id="i-1",
    workflow_id="wf",
    version=1,
    status=InstanceStatus.WAITING,
    created_at="2024-05-06T07:08:09.000Z",
    updated_at="2024-05-06T07:08:09.000Z",
)


async def taken(*effects: Any, tables: Tables | None = None) -> Tables:
    """What the tables hold after a unit of work took `effects` of instance i-1."""
    tables = tables or Tables()
    async with FakeUnitOfWork(tables, DefinitionCatalog()) as uow:
        uow.states[STATE.id] = STATE
        take(uow, Transition(STATE, list(effects)), changed=False)
    return tables


def test_every_effect_type_has_a_handler() -> None:
    assert set(EFFECT_HANDLERS) == set(get_args(Effect))


async def test_a_timer_is_written_due_when_the_engine_asked() -> None:
    tables = await taken(SetTimer(kind="wait", due_at=LATER, step_id="s"))

    [timer] = tables.timers
    assert (timer.kind, timer.step_id, (timer.due_at - NOW).total_seconds()) == ("wait", "s", 300)


async def test_a_timer_cancelled_in_the_same_unit_of_work_is_never_written() -> None:
    tables = await taken(
        SetTimer(kind="retry", due_at=LATER, step_id="s"),
        CancelTimers(step_id="s"),
    )

    assert tables.timers == []


async def test_an_action_is_queued_as_a_job_with_its_idempotency_key() -> None:
    effect = RunAction(
        step_id="call", attempt=2, action="webhook", config={}, idempotency_key="k-1", tries=2
    )

    tables = await taken(effect)

    [job] = tables.timers
    assert (job.kind, job.due_at, job.attempt) == (ACTION_JOB, NOW, 2)
    assert job.payload["idempotencyKey"] == "k-1"
    assert job.payload["workflowId"] == "wf"


async def test_a_finished_child_reaches_its_parent_through_the_inbox() -> None:
    effect = NotifyParent(
        parent_id="p-1",
        step_id="sub",
        child_id="i-1",
        status="failed",
        output=None,
        error=ErrorInfo(type="Boom", message="it broke"),
    )

    tables = await taken(effect)

    [row] = tables.timers
    assert (row.instance_id, row.kind) == ("p-1", INBOX)
    assert decode_input(row.payload) == ChildFinished(
        step_id="sub",
        child_id="i-1",
        status="failed",
        error=ErrorInfo(type="Boom", message="it broke"),
    )


async def test_cancelling_timers_keeps_the_inbox() -> None:
    tables = Tables()
    await taken(
        NotifyParent(parent_id="i-1", step_id="s", child_id="c", status="ok", output=1, error=None),
        tables=tables,
    )

    await taken(CancelTimers(), tables=tables)

    assert [row.kind for row in tables.timers] == [INBOX]


async def test_a_new_wait_is_stored_until_it_ends() -> None:
    subscribe = Subscribe(
        step_id="s", attempt=1, topic="payments", event_type=None, match="data.id", key="7"
    )

    tables = await taken(subscribe)
    assert list(tables.subscriptions) == [("i-1", "s")]

    await taken(Unsubscribe(step_id="s"), tables=tables)
    assert tables.subscriptions == {}


async def test_a_wait_that_starts_and_ends_in_one_unit_of_work_is_never_stored() -> None:
    subscribe = Subscribe(
        step_id="s", attempt=1, topic="payments", event_type=None, match="data.id", key="7"
    )

    tables = await taken(subscribe, Unsubscribe(step_id="s"))

    assert tables.subscriptions == {}


async def test_a_failing_unit_of_work_writes_nothing() -> None:
    tables = Tables()
    timer = SetTimer(kind="wait", due_at=LATER)

    async def fail_after_a_timer() -> None:
        async with FakeUnitOfWork(tables, DefinitionCatalog()) as uow:
            take(uow, Transition(STATE, [timer]), changed=False)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_after_a_timer()

    assert tables.timers == []


async def test_a_task_action_is_published_to_the_tasks_topic_in_the_same_transaction() -> None:
    effect = RunAction(
        step_id="charge",
        attempt=2,
        action="task",
        config={"taskType": "charge-card", "input": {"amount": 42}},
        idempotency_key="i-1:charge",
        tries=2,
    )

    tables = await taken(effect)

    assert tables.timers == [], "no job: nobody in flowbus waits on a task"
    [row] = tables.outbox
    task = orjson.loads(row["value"])
    assert (row["topic"], row["key"]) == ("flowbus.tasks", b"i-1")
    assert task["type"] == "flowbus.task.activity"
    assert task["data"]["taskId"] == "i-1:charge:2"
    assert task["data"]["taskType"] == "charge-card"
    assert task["data"]["input"] == {"amount": 42}
    assert (task["data"]["attempt"], task["data"]["idempotencyKey"]) == (2, "i-1:charge")
