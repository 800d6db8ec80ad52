"""Every step type, transition kind and failure path, end to end: events published to a real
topic, a real worker, rows in real tables, outcome events read back off the topics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest_asyncio

from flowbus.definitions.loader import validate_definition
from flowbus.store.database import create_engine
from flowbus.store.definitions import save_definition
from tests.support.contracts import contract_violations
from tests.support.http import HookServer
from tests.support.stack import Deployment, Stack

FINAL = {
    "flowbus.instance.completed",
    "flowbus.instance.failed",
    "flowbus.instance.compensated",
    "flowbus.instance.cancelled",
    "flowbus.instance.timed_out",
}


def trigger(kind: str) -> list[dict[str, Any]]:
    return [{"topic": "orders", "type": kind, "transform": {"expression": "data"}}]


def log_step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action",
        "action": "log",
        "config": {"message": step_id},
        **extra,
    }


def undoable(step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action",
        "action": "set_variables",
        "config": {step_id: "done"},
        "compensate": {
            "action": "send_event",
            "config": {
                "topic": "undo",
                "type": "undo.step",
                "data": {"step": step_id, "order": "{{ input.id }}"},
            },
        },
        **extra,
    }


def definitions(hooks: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "retry-then-succeed",
            "triggers": trigger("t.retry"),
            "steps": [
                {
                    "id": "call",
                    "type": "action",
                    "action": "webhook",
                    "config": {
                        "url": f"{hooks}/flaky?fails=2&id={{{{ input.id }}}}",
                        "body": {"id": "{{ input.id }}"},
                    },
                    "retryPolicy": {"maxAttempts": 4, "delay": "PT0.3S", "strategy": "exponential"},
                    "next": "done",
                },
                log_step("done"),
            ],
        },
        {
            "id": "route-by-error",
            "triggers": trigger("t.route"),
            "steps": [
                {
                    "id": "call",
                    "type": "action",
                    "action": "webhook",
                    "config": {"url": f"{hooks}/fail?status=503&id={{{{ input.id }}}}"},
                    "retryPolicy": {"maxAttempts": 2, "delay": "PT0.1S"},
                    "onFailure": {
                        "errorHandler": {
                            "conditions": [
                                {"errorType": "TimeoutError", "nextStepId": "nope"},
                                {
                                    "errorType": "HttpError",
                                    "errorCode": "503",
                                    "nextStepId": "fallback",
                                },
                            ]
                        }
                    },
                    "next": "nope",
                },
                log_step("nope"),
                {
                    "id": "fallback",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"routed": True},
                },
            ],
        },
        {
            "id": "saga",
            "triggers": trigger("t.saga"),
            "steps": [
                undoable("reserve", next="charge"),
                undoable("charge", next="ship"),
                undoable("ship", next="confirm"),
                {
                    "id": "confirm",
                    "type": "action",
                    "action": "webhook",
                    "config": {"url": f"{hooks}/fail?status=500"},
                },
            ],
        },
        {
            "id": "sleepy",
            "triggers": trigger("t.sleep"),
            "steps": [
                {"id": "nap", "type": "wait", "duration": "PT1S", "next": "done"},
                log_step("done"),
            ],
        },
        {
            "id": "await-payment",
            "triggers": trigger("t.pay"),
            "steps": [
                {
                    "id": "payment",
                    "type": "wait",
                    "event": {
                        "topic": "payments",
                        "type": "payment.received",
                        "match": "data.order_id",
                        "key": "{{ input.id }}",
                    },
                    "next": "paid",
                },
                {
                    "id": "paid",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"amount": "{{ steps.payment.data.amount }}"},
                },
            ],
        },
        {
            "id": "await-or-expire",
            "triggers": trigger("t.expire"),
            "steps": [
                {
                    "id": "payment",
                    "type": "wait",
                    "event": {
                        "topic": "payments",
                        "match": "data.order_id",
                        "key": "{{ input.id }}",
                    },
                    "timeout": "PT1S",
                    "onTimeout": "expired",
                    "next": "paid",
                },
                log_step("paid"),
                {
                    "id": "expired",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"expired": True},
                },
            ],
        },
        {
            "id": "fan-out-all",
            "triggers": trigger("t.all"),
            "steps": [
                {
                    "id": "both",
                    "type": "parallel",
                    "join": "all",
                    "branches": [
                        {
                            "id": "left",
                            "steps": [
                                {
                                    "id": "l1",
                                    "type": "action",
                                    "action": "set_variables",
                                    "config": {"left": 1},
                                }
                            ],
                        },
                        {
                            "id": "right",
                            "steps": [
                                {"id": "r1", "type": "wait", "duration": "PT0.5S", "next": "r2"},
                                {
                                    "id": "r2",
                                    "type": "action",
                                    "action": "set_variables",
                                    "config": {"right": 2},
                                },
                            ],
                        },
                    ],
                    "next": "after",
                },
                log_step("after"),
            ],
        },
        {
            "id": "fan-out-any",
            "triggers": trigger("t.any"),
            "steps": [
                {
                    "id": "race",
                    "type": "parallel",
                    "join": "any",
                    "branches": [
                        {
                            "id": "fast",
                            "steps": [
                                {"id": "f0", "type": "wait", "duration": "PT0.3S", "next": "f1"},
                                {
                                    "id": "f1",
                                    "type": "action",
                                    "action": "set_variables",
                                    "config": {"fast": True},
                                },
                            ],
                        },
                        {
                            "id": "slow",
                            "steps": [{"id": "s1", "type": "wait", "duration": "PT60S"}],
                        },
                    ],
                },
            ],
        },
        {
            "id": "child-ok",
            "steps": [
                {
                    "id": "work",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"doubled": "{{ input.n }}{{ input.n }}"},
                },
            ],
            "output": {"result": "{{ variables.doubled }}"},
        },
        {
            "id": "child-bad",
            "steps": [
                {
                    "id": "boom",
                    "type": "action",
                    "action": "webhook",
                    "config": {"url": f"{hooks}/fail?status=500"},
                }
            ],
        },
        {
            "id": "parent",
            "triggers": trigger("t.parent"),
            "steps": [
                {
                    "id": "sub",
                    "type": "subflow",
                    "workflow": "child-ok",
                    "input": {"n": "{{ input.id }}"},
                    "output": {"fromChild": "{{ child.output.result }}"},
                },
            ],
        },
        {
            "id": "parent-of-failure",
            "triggers": trigger("t.parentfail"),
            "steps": [
                {
                    "id": "sub",
                    "type": "subflow",
                    "workflow": "child-bad",
                    "onFailure": {"action": "continue", "nextStepId": "handled"},
                },
                {
                    "id": "handled",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"handled": True},
                },
            ],
        },
        {
            "id": "too-slow",
            "triggers": trigger("t.timeout"),
            "timeout": "PT1S",
            "steps": [
                undoable("reserve", next="nap"),
                {"id": "nap", "type": "wait", "duration": "PT60S"},
            ],
        },
        {
            "id": "retryable",
            "triggers": trigger("t.retryable"),
            "steps": [
                {
                    "id": "call",
                    "type": "action",
                    "action": "webhook",
                    "config": {"url": f"{hooks}/flaky?fails=1&id={{{{ input.id }}}}"},
                },
            ],
        },
        {
            "id": "audited",
            "triggers": trigger("t.audited"),
            "executionLog": {"level": "error", "retention": "PT1S", "metadata": ["userId"]},
            "steps": [
                {"id": "note", "type": "action", "action": "set_variables", "config": {"ok": True}}
            ],
        },
        {
            "id": "steerable",
            "triggers": trigger("t.steer"),
            "steps": [
                undoable("reserve", next="nap"),
                {"id": "nap", "type": "wait", "duration": "PT1S", "next": "finish"},
                log_step("finish"),
            ],
        },
    ]


class Harness:
    def __init__(self, deployment: Deployment, hooks: HookServer) -> None:
        self.d = deployment
        self.hooks = hooks

    async def order(self, kind: str, **data: Any) -> str:
        order_id = data.setdefault("id", uuid.uuid4().hex[:10])
        await self.d.publish(self.d.topic("orders"), [{"type": kind, **data}])
        return str(order_id)

    async def run(
        self, order_id: str, *, until: set[str] | None = None, timeout: float = 30
    ) -> list[dict[str, Any]]:
        """The instance's events (lifecycle and steps, in order) once one of `until` is seen."""
        wanted = until or FINAL
        topics = [self.d.settings.topics.instances, self.d.settings.topics.steps]

        def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            subject = next(
                (
                    e["subject"]
                    for e in events
                    if e["type"] == "flowbus.instance.started"
                    and isinstance(e["data"]["input"], dict)
                    and e["data"]["input"].get("id") == order_id
                ),
                None,
            )
            own = {e["id"]: e for e in events if subject is not None and e["subject"] == subject}
            return sorted(own.values(), key=lambda e: e["flowbusseq"])

        def done(seen: list[dict[str, Any]]) -> bool:
            own = mine(seen)
            last = next((e["flowbusseq"] for e in reversed(own) if e["type"] in wanted), None)
            # Outcome events are numbered without gaps: wait for all up to the one wanted.
            return last is not None and [e["flowbusseq"] for e in own][:last] == list(
                range(1, last + 1)
            )

        events = await self.d.read_events(topics, until=done, timeout=timeout)
        return mine(events)

    async def command(self, kind: str, **data: Any) -> None:
        await self.d.publish(self.d.settings.topics.commands, [{"command": kind, **data}])


@pytest_asyncio.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[Harness]:
    hooks = HookServer()
    await hooks.start()
    deployment = await stack.deployment(
        "language", definitions(hooks.url), source_topics=("orders", "payments")
    )
    await deployment.start_worker(extra_env={"FLOWBUS_WORKER__PURGE_INTERVAL": "1"})
    try:
        yield Harness(deployment, hooks)
    finally:
        deployment.stop_workers()
        await hooks.stop()


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["type"].removeprefix("flowbus.")
        + (f":{e['data']['stepId']}" if "stepId" in e["data"] else "")
        for e in events
    ]


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00"))


async def test_retry_with_exponential_backoff_then_success(world: Harness) -> None:
    order = await world.order("t.retry")
    events = await world.run(order)

    assert kinds(events) == [
        "instance.started",
        "step.started:call",
        "step.failed:call",
        "step.retrying:call",
        "step.started:call",
        "step.failed:call",
        "step.retrying:call",
        "step.started:call",
        "step.completed:call",
        "step.started:done",
        "step.completed:done",
        "instance.completed",
    ]
    retrying = [e for e in events if e["type"] == "flowbus.step.retrying"]
    assert [e["data"]["delaySeconds"] for e in retrying] == [0.3, 0.6]
    assert [e["data"]["error"]["code"] for e in retrying] == ["503", "503"]
    starts = [
        at(e)
        for e in events
        if e["type"] == "flowbus.step.started" and e["data"]["stepId"] == "call"
    ]
    assert (starts[1] - starts[0]).total_seconds() >= 0.3
    assert (starts[2] - starts[1]).total_seconds() >= 0.6
    calls = world.hooks.calls_to("flaky", id=order)
    assert len(calls) == 3
    keys = [c.idempotency_key for c in calls]
    instance_id = events[0]["subject"]
    assert keys == [f"{instance_id}:call"] * 3, "one key for the step execution's retries"
    rows = await world.d.fetch(
        "SELECT attempt, status FROM step_executions "
        "WHERE instance_id = $1 AND step_id = 'call' ORDER BY attempt",
        uuid.UUID(instance_id),
    )
    assert [(r["attempt"], r["status"]) for r in rows] == [
        (1, "failed"),
        (2, "failed"),
        (3, "completed"),
    ]


async def test_retries_exhausted_then_routed_by_error_type_and_code(world: Harness) -> None:
    order = await world.order("t.route")
    events = await world.run(order)

    assert kinds(events)[-3:] == [
        "step.started:fallback",
        "step.completed:fallback",
        "instance.completed",
    ]
    assert len([e for e in events if e["type"] == "flowbus.step.failed"]) == 2
    assert events[-1]["data"]["output"] == {"routed": True}
    assert "step.started:nope" not in kinds(events)


async def test_unhandled_failure_compensates_completed_steps_in_reverse_order(
    world: Harness,
) -> None:
    order = await world.order("t.saga")
    events = await world.run(order)

    assert kinds(events)[-6:] == [
        "step.failed:confirm",
        "instance.compensating",
        "step.compensated:ship",
        "step.compensated:charge",
        "step.compensated:reserve",
        "instance.compensated",
    ]
    assert events[-1]["data"]["error"]["type"] == "HttpError"
    undo = await world.d.read_events(
        [world.d.topic("undo")],
        until=lambda seen: len([e for e in seen if e["data"]["order"] == order]) >= 3,
    )
    assert [e["data"]["step"] for e in undo if e["data"]["order"] == order] == [
        "ship",
        "charge",
        "reserve",
    ]
    rows = await world.d.fetch(
        "SELECT step_id, status FROM step_executions WHERE instance_id = $1",
        uuid.UUID(events[0]["subject"]),
    )
    assert {r["step_id"]: r["status"] for r in rows} == {
        "reserve": "compensated",
        "charge": "compensated",
        "ship": "compensated",
        "confirm": "failed",
    }
    [instance] = await world.d.fetch(
        "SELECT status FROM instances WHERE id = $1", uuid.UUID(events[0]["subject"])
    )
    assert instance["status"] == "compensated"


async def test_wait_for_a_duration_is_a_durable_timer(world: Harness) -> None:
    order = await world.order("t.sleep")
    events = await world.run(order)

    started = next(
        e for e in events if e["type"] == "flowbus.step.started" and e["data"]["stepId"] == "nap"
    )
    done = next(
        e for e in events if e["type"] == "flowbus.step.completed" and e["data"]["stepId"] == "nap"
    )
    assert (at(done) - at(started)).total_seconds() >= 1.0
    assert events[-1]["type"] == "flowbus.instance.completed"


async def test_wait_for_a_correlated_event(world: Harness) -> None:
    order = await world.order("t.pay")
    await world.run(order, until={"flowbus.step.started"})
    await asyncio.sleep(0.5)
    await world.d.publish(
        world.d.topic("payments"),
        [
            {"type": "payment.received", "order_id": "someone-else", "amount": 1},
            {"type": "payment.received", "order_id": order, "amount": 42},
        ],
    )
    events = await world.run(order)

    assert events[-1]["type"] == "flowbus.instance.completed"
    assert events[-1]["data"]["output"] == {"amount": 42}


async def test_an_event_that_arrives_just_before_the_wait_is_not_lost(world: Harness) -> None:
    order_id = uuid.uuid4().hex[:10]
    await world.d.publish(
        world.d.topic("payments"), [{"type": "payment.received", "order_id": order_id, "amount": 7}]
    )
    await asyncio.sleep(1.0)
    await world.order("t.pay", id=order_id)
    events = await world.run(order_id)

    assert events[-1]["type"] == "flowbus.instance.completed"
    assert events[-1]["data"]["output"] == {"amount": 7}


async def test_wait_timeout_takes_its_route(world: Harness) -> None:
    order = await world.order("t.expire")
    events = await world.run(order)

    waited = next(
        e
        for e in events
        if e["type"] == "flowbus.step.completed" and e["data"]["stepId"] == "payment"
    )
    assert waited["data"]["output"] == {"timedOut": True}
    assert events[-1]["data"]["output"] == {"expired": True}
    [row] = await world.d.fetch(
        "SELECT count(*) AS n FROM subscriptions WHERE instance_id = $1",
        uuid.UUID(events[0]["subject"]),
    )
    assert row["n"] == 0


async def test_parallel_join_all_merges_branch_outputs(world: Harness) -> None:
    order = await world.order("t.all")
    events = await world.run(order)

    both = next(
        e for e in events if e["type"] == "flowbus.step.completed" and e["data"]["stepId"] == "both"
    )
    assert both["data"]["output"] == {
        "left": {"l1": {"left": 1}},
        "right": {"r1": both["data"]["output"]["right"]["r1"], "r2": {"right": 2}},
    }
    assert kinds(events)[-3:] == [
        "step.started:after",
        "step.completed:after",
        "instance.completed",
    ]


async def test_parallel_join_any_cancels_the_other_branches(world: Harness) -> None:
    order = await world.order("t.any")
    events = await world.run(order)

    assert "step.cancelled:s1" in kinds(events)
    race = next(
        e for e in events if e["type"] == "flowbus.step.completed" and e["data"]["stepId"] == "race"
    )
    assert race["data"]["output"]["fast"]["f1"] == {"fast": True}
    assert "slow" not in race["data"]["output"]
    assert events[-1]["type"] == "flowbus.instance.completed"
    [row] = await world.d.fetch(
        "SELECT count(*) AS n FROM timers WHERE instance_id = $1", uuid.UUID(events[0]["subject"])
    )
    assert row["n"] == 0, "the cancelled branch's timer is gone"


async def test_subflow_maps_the_child_output_back(world: Harness) -> None:
    order = await world.order("t.parent", id="21")
    events = await world.run(order)

    assert events[-1]["type"] == "flowbus.instance.completed"
    sub = next(
        e for e in events if e["type"] == "flowbus.step.completed" and e["data"]["stepId"] == "sub"
    )
    assert sub["data"]["output"] == {"fromChild": "2121"}
    [child] = await world.d.fetch(
        "SELECT workflow_id, status, parent_step_id FROM instances WHERE parent_instance_id = $1",
        uuid.UUID(events[0]["subject"]),
    )
    assert (child["workflow_id"], child["status"], child["parent_step_id"]) == (
        "child-ok",
        "completed",
        "sub",
    )


async def test_child_failure_is_the_subflow_steps_failure(world: Harness) -> None:
    order = await world.order("t.parentfail")
    events = await world.run(order)

    failed = next(e for e in events if e["type"] == "flowbus.step.failed")
    assert failed["data"]["stepId"] == "sub"
    assert failed["data"]["error"]["type"] == "SubflowFailed"
    assert failed["data"]["error"]["code"] == "failed"
    assert events[-1]["type"] == "flowbus.instance.completed"
    assert events[-1]["data"]["output"] == {"handled": True}


async def test_workflow_timeout_ends_the_instance_timed_out_with_compensation(
    world: Harness,
) -> None:
    order = await world.order("t.timeout")
    events = await world.run(order)

    assert kinds(events)[-4:] == [
        "step.cancelled:nap",
        "instance.compensating",
        "step.compensated:reserve",
        "instance.timed_out",
    ]
    assert (at(events[-1]) - at(events[0])).total_seconds() >= 1.0


async def test_pause_holds_the_instance_and_resume_finishes_it(world: Harness) -> None:
    order = await world.order("t.steer")
    events = await world.run(order, until={"flowbus.step.started"})
    instance_id = events[0]["subject"]
    await world.command("pause", instanceId=instance_id)
    await world.run(order, until={"flowbus.instance.paused"})
    await asyncio.sleep(2.0)
    [row] = await world.d.fetch(
        "SELECT status FROM instances WHERE id = $1", uuid.UUID(instance_id)
    )
    assert row["status"] == "paused", "the nap's timer waits while paused"

    await world.command("resume", instanceId=instance_id)
    events = await world.run(order)
    assert kinds(events)[-4:] == [
        "step.completed:nap",
        "step.started:finish",
        "step.completed:finish",
        "instance.completed",
    ]


async def test_cancel_compensates_and_ends_the_instance(world: Harness) -> None:
    order = await world.order("t.steer")
    events = await world.run(order, until={"flowbus.step.started"})
    instance_id = events[0]["subject"]
    await world.run(order, until={"flowbus.step.completed"})
    await world.command("cancel", instanceId=instance_id, reason="customer changed their mind")
    events = await world.run(order)

    assert kinds(events)[-4:] == [
        "step.cancelled:nap",
        "instance.compensating",
        "step.compensated:reserve",
        "instance.compensated",
    ]
    assert events[-1]["data"]["error"] == {
        "type": "Cancelled",
        "message": "customer changed their mind",
        "code": None,
        "step_id": None,
        "details": None,
    }


async def test_a_command_for_an_unknown_instance_is_dead_lettered(world: Harness) -> None:
    ghost = str(uuid.uuid4())
    await world.command("cancel", instanceId=ghost)
    dead = await world.d.read_events(
        [world.d.settings.topics.deadletter],
        until=lambda seen: any(ghost in e["data"]["reason"] for e in seen),
    )
    assert any(e["data"]["reason"] == f"unknown instance {ghost}" for e in dead)


async def test_a_running_instance_finishes_on_the_version_it_started_with(world: Harness) -> None:
    order = await world.order("t.pay")
    await world.run(order, until={"flowbus.step.started"})
    v2 = {
        "id": "await-payment",
        "triggers": [
            {"topic": world.d.topic("orders"), "type": "t.pay", "transform": {"expression": "data"}}
        ],
        "steps": [
            {"id": "v2-only", "type": "action", "action": "set_variables", "config": {"version": 2}}
        ],
    }
    engine = create_engine(world.d.settings.database_url, pool_size=1)
    async with engine.begin() as conn:
        stored, created = await save_definition(conn, validate_definition(v2))
    await engine.dispose()
    assert (stored.version, created) == (2, True)
    await asyncio.sleep(1.0)  # the worker reloads on NOTIFY

    await world.d.publish(
        world.d.topic("payments"), [{"type": "payment.received", "order_id": order, "amount": 5}]
    )
    old = await world.run(order)
    assert old[-1]["type"] == "flowbus.instance.completed"
    assert {e["data"]["workflowVersion"] for e in old} == {1}
    assert old[-1]["data"]["output"] == {"amount": 5}

    fresh = await world.order("t.pay")
    new = await world.run(fresh)
    assert {e["data"]["workflowVersion"] for e in new} == {2}
    assert new[-1]["data"]["output"] == {"version": 2}


async def test_a_failed_instance_is_retried_from_the_failed_step_by_command(world: Harness) -> None:
    order = await world.order("t.retryable")
    events = await world.run(order)
    assert events[-1]["type"] == "flowbus.instance.failed"
    instance_id = events[0]["subject"]

    await world.command("retry", instanceId=instance_id, by="ops")
    events = await world.run(order, until={"flowbus.instance.completed"})

    assert kinds(events)[-5:] == [
        "instance.failed",
        "instance.retried:call",
        "step.started:call",
        "step.completed:call",
        "instance.completed",
    ]
    assert events[-3]["data"]["attempt"] == 2
    assert [c.idempotency_key for c in world.hooks.calls_to("flaky", id=order)] == [
        f"{instance_id}:call",
        f"{instance_id}:call:2",
    ], "an operator retry is a new step execution, with a new key"


async def test_execution_log_tags_events_filters_history_and_purges_old_instances(
    world: Harness,
) -> None:
    order = await world.order("t.audited", userId="u-7")
    events = await world.run(order)

    assert all(e["data"]["metadata"] == {"userId": "u-7"} for e in events)
    instance_id = uuid.UUID(events[0]["subject"])
    assert (
        await world.d.fetch("SELECT 1 FROM step_executions WHERE instance_id = $1", instance_id)
        == []
    ), "level error keeps failed attempts only"

    deadline = asyncio.get_running_loop().time() + 15
    while await world.d.fetch("SELECT 1 FROM instances WHERE id = $1", instance_id):
        assert asyncio.get_running_loop().time() < deadline, "retention purge did not run"
        await asyncio.sleep(0.5)


async def test_every_event_this_module_saw_matches_the_topic_catalog(world: Harness) -> None:
    d = world.d
    topics = [d.settings.topics.instances, d.settings.topics.steps, d.settings.topics.approvals]
    seen = await d.read_events(topics, until=lambda events: len(events) > 0)
    await asyncio.sleep(1.0)
    seen = await d.read_events(topics, until=lambda events: len(events) >= len(seen))

    assert len({e["type"] for e in seen}) > 5
    assert contract_violations(seen) == []
