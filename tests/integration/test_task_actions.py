"""Declarative `task` steps done by task workers written with plain Kafka records, as the
protocol in topics/sdk-protocol.md documents them (no SDK)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from tests.integration.conftest import DeploymentFactory
from tests.support.contracts import contract_violations
from tests.support.stack import Deployment


def charging(**step: Any) -> dict[str, Any]:
    return {
        "id": "charge-order",
        "triggers": [{"topic": "orders", "type": "order.placed"}],
        "steps": [
            {
                "id": "charge",
                "type": "action",
                "action": "task",
                "config": {"taskType": "charge-card", "input": {"amount": "{{ input.amount }}"}},
                "timeout": "PT1M",
                **step,
            }
        ],
    }


def result(task: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
    """A `flowbus.result.activity` CloudEvent answering `task` (its data)."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "plain-task-worker",
        "type": "flowbus.result.activity",
        "subject": task["instanceId"],
        "data": {
            "taskId": task["taskId"],
            "instanceId": task["instanceId"],
            "stepId": task["stepId"],
            "attempt": task["attempt"],
            "status": status,
            **fields,
        },
    }


async def next_task(d: Deployment, attempt: int = 1) -> dict[str, Any]:
    """What a plain task worker takes from the tasks topic: the task of `attempt`."""

    def found(seen: list[dict[str, Any]]) -> bool:
        return any(e["data"]["attempt"] == attempt for e in seen)

    events = await d.read_events([d.settings.topics.tasks], until=found, timeout=60)
    [task] = [e for e in events if e["data"]["attempt"] == attempt]
    assert task["type"] == "flowbus.task.activity"
    assert task["_key"] == task["data"]["instanceId"]
    assert contract_violations([task]) == []
    data: dict[str, Any] = task["data"]
    return data


async def answer(d: Deployment, task: dict[str, Any], status: str, **fields: Any) -> None:
    await d.publish(d.settings.topics.results, [result(task, status, **fields)], task["instanceId"])


async def outcome(d: Deployment, ended: str = "flowbus.instance.completed") -> list[dict[str, Any]]:
    topics = [d.settings.topics.instances, d.settings.topics.steps]
    return await d.read_events(
        topics, until=lambda seen: any(e["type"] == ended for e in seen), timeout=60
    )


async def test_a_plain_task_worker_completes_a_task_step(deploy: DeploymentFactory) -> None:
    d = await deploy("task-plain", [charging()])
    await d.start_worker()
    await d.publish(d.topic("orders"), [{"type": "order.placed", "amount": 42}])

    task = await next_task(d)
    assert task["taskType"] == "charge-card"
    assert task["input"] == {"amount": 42}
    assert task["idempotencyKey"] == f"{task['instanceId']}:charge"
    assert task["deadline"] is not None
    await answer(d, task, "completed", output={"charged": 42})

    events = await outcome(d)
    [completed] = [e for e in events if e["type"] == "flowbus.step.completed"]
    assert completed["data"]["output"] == {"charged": 42}
    assert contract_violations(events) == []
    rows = await d.fetch("SELECT attempt, status FROM step_executions WHERE step_id = 'charge'")
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "completed")]


async def test_a_worker_that_stops_heartbeating_loses_the_task_to_a_retry(
    deploy: DeploymentFactory,
) -> None:
    step = charging(retryPolicy={"maxAttempts": 2, "delay": "PT0.2S"})
    step["steps"][0]["config"]["heartbeat"] = "PT2S"
    d = await deploy("task-heartbeat", [step])
    await d.start_worker()
    await d.publish(d.topic("orders"), [{"type": "order.placed", "amount": 7}])

    first = await next_task(d, attempt=1)
    assert first["heartbeatTimeout"] == "PT2S"
    for _ in range(3):  # alive for a while, then silent (the worker hangs or dies)
        await answer(d, first, "heartbeat")
        await asyncio.sleep(1)
    second = await next_task(d, attempt=2)
    assert second["idempotencyKey"] == first["idempotencyKey"]
    await answer(d, first, "completed", output={"by": "the first worker, too late"})
    await answer(d, second, "completed", output={"by": "the second worker"})

    events = await outcome(d)
    [failed] = [e for e in events if e["type"] == "flowbus.step.failed"]
    assert failed["data"]["error"]["type"] == "TimeoutError"
    [completed] = [e for e in events if e["type"] == "flowbus.step.completed"]
    assert completed["data"]["output"] == {"by": "the second worker"}
    rows = await d.fetch(
        "SELECT attempt, status FROM step_executions WHERE step_id = 'charge' ORDER BY attempt"
    )
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "failed"), (2, "completed")]


async def test_bad_results_change_nothing_and_the_unusable_are_dead_lettered(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("task-bad", [charging()])
    worker = await d.start_worker()
    await d.publish(d.topic("orders"), [{"type": "order.placed", "amount": 1}])
    task = await next_task(d)
    await answer(d, task, "completed", output={"charged": 1})
    await outcome(d)

    stranger = {**task, "instanceId": str(uuid.uuid4())}
    await d.publish(d.settings.topics.results, [b"{not json"])
    await answer(d, stranger, "completed", output={"charged": 666})
    await answer(d, {**task, "attempt": 2}, "failed", error={"type": "Boom", "message": "late"})
    await answer(d, task, "completed", output={"charged": 666})

    dead = await d.read_events(
        [d.settings.topics.deadletter], until=lambda seen: len(seen) >= 2, timeout=60
    )
    reasons = [e["data"]["reason"] for e in dead]
    assert any("unknown instance" in r for r in reasons), reasons
    assert len(dead) == 2, reasons
    await d.wait_for_log(worker, "result.stale")
    rows = await d.fetch("SELECT status, state->'steps'->'charge'->'output' AS out FROM instances")
    assert [(r["status"], r["out"]) for r in rows] == [("completed", {"charged": 1})]
    rows = await d.fetch("SELECT attempt, status FROM step_executions WHERE step_id = 'charge'")
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "completed")]
