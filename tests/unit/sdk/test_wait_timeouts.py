"""A wait whose timeout passed first raises in the code, on every replay alike."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.sdk import StepError, WorkflowContext, run_workflow_task, workflow
from tests.unit.sdk.test_replay import Recorder, task

seen: list[str] = []


@workflow("payment-wait")
async def payment_wait(ctx: WorkflowContext, input: Any) -> str:
    try:
        await ctx.wait_for_event("payments", match="data.orderId", key="o-1", timeout=5)
    except StepError as exc:
        seen.append(exc.type)
        return "gave up"
    return "paid"


@pytest.mark.parametrize("replays", [1, 2])
async def test_an_event_wait_that_timed_out_raises_timeout_error(replays: int) -> None:
    history = [
        {
            "kind": "wait",
            "name": "event-1",
            "seq": 1,
            "waitKind": "event",
            "status": "timed_out",
            "result": None,
        }
    ]
    seen.clear()
    for _ in range(replays):
        emit = Recorder()
        result = await run_workflow_task(
            payment_wait, task(history, workflow_id="payment-wait", reason="resumed"), emit
        )
    assert seen == ["TimeoutError"] * replays
    assert result["outcome"] == "completed"
    assert result["output"] == "gave up"
