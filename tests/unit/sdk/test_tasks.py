"""Task handlers run against `flowbus.task.activity` dicts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from flowbus.sdk.tasks import TaskContext, run_activity_task, task
from tests.unit.sdk.test_replay import Recorder


class Charge(BaseModel):
    amount: int


class CardDeclined(Exception):
    pass


def activity(input: Any, heartbeat: str | None = None) -> dict[str, Any]:
    data = {
        "taskId": "i-1:charge:2",
        "instanceId": "i-1",
        "workflowId": "orders",
        "stepId": "charge",
        "taskType": "charge-card",
        "input": input,
        "attempt": 2,
        "idempotencyKey": "i-1:charge",
    }
    if heartbeat:
        data["heartbeatTimeout"] = heartbeat
    return data


seen: list[tuple[int, str, int]] = []


@task("charge-card")
async def charge(input: Charge, ctx: TaskContext) -> dict[str, Any]:
    seen.append((input.amount, ctx.idempotency_key, ctx.attempt))
    if input.amount > 100:
        raise CardDeclined("limit")
    return {"charged": input.amount}


async def test_completed_with_output() -> None:
    emit = Recorder()
    result = await run_activity_task(charge, activity({"amount": 5}), emit)
    assert result == {
        "taskId": "i-1:charge:2",
        "instanceId": "i-1",
        "stepId": "charge",
        "attempt": 2,
        "status": "completed",
        "output": {"charged": 5},
    }
    assert seen[-1] == (5, "i-1:charge", 2)
    assert emit.records == [("flowbus.result.activity", result)]


async def test_failed_with_exception_class() -> None:
    result = await run_activity_task(charge, activity({"amount": 500}), Recorder())
    assert result["status"] == "failed"
    assert result["error"] == {"type": "CardDeclined", "message": "limit"}


async def test_unknown_task_type_fails() -> None:
    result = await run_activity_task(None, activity({}), Recorder())
    assert result["status"] == "failed"
    assert result["error"]["type"] == "Unsupported"


async def test_heartbeats_while_running() -> None:
    @task("slow")
    async def slow(input: dict[str, Any], ctx: TaskContext) -> str:
        await asyncio.sleep(0.5)
        return "done"

    emit = Recorder()
    result = await run_activity_task(slow, activity({}, heartbeat="PT0.3S"), emit)
    assert result["status"] == "completed"
    statuses = [d["status"] for _, d in emit.records]
    assert statuses.count("heartbeat") >= 2
    assert statuses[-1] == "completed"


def test_handler_must_be_async() -> None:
    with pytest.raises(TypeError):
        task("sync")(lambda input, ctx: None)  # type: ignore[arg-type,return-value]
