"""`@task`: handlers for declarative `action: task` steps, run by the SDK worker."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flowbus.sdk.errors import ACTIVITY_RESULT, Emit, error_document
from flowbus.sdk.values import seconds, to_json
from flowbus.sdk.workflows import pydantic_hint

Handler = Callable[[Any, "TaskContext"], Awaitable[Any]]


@dataclass(frozen=True)
class Task:
    """A registered task handler for the tasks whose `taskType` is `task_type`."""

    task_type: str
    fn: Handler
    input_model: type[BaseModel] | None = None

    def parse_input(self, raw: Any) -> Any:
        """The input as the handler receives it: the model when its hint names one."""
        if self.input_model is None:
            return raw
        return self.input_model.model_validate(raw if raw is not None else {})


def task(type: str) -> Callable[[Handler], Task]:
    """Register `async def handler(input: dict | Model, ctx: TaskContext) -> output` for
    the declarative tasks whose `taskType` is `type`."""

    def register(fn: Handler) -> Task:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"task {type!r} must be an async function")
        return Task(task_type=type, fn=fn, input_model=pydantic_hint(fn, 0))

    return register


class TaskContext:
    """What a task handler receives besides its input."""

    def __init__(self, data: Mapping[str, Any], emit: Emit) -> None:
        self.task_id: str = str(data["taskId"])
        self.instance_id: str = str(data["instanceId"])
        self.workflow_id: str | None = data.get("workflowId")
        self.step_id: str = str(data.get("stepId") or "")
        self.attempt: int = int(data.get("attempt") or 1)
        self.idempotency_key: str = str(
            data.get("idempotencyKey") or f"{self.instance_id}:{self.step_id}"
        )
        """The same on every attempt of this step: pass it to the system the task calls."""
        self.deadline: str | None = data.get("deadline")
        self._emit = emit

    def _result(self, status: str) -> dict[str, Any]:
        return {
            "taskId": self.task_id,
            "instanceId": self.instance_id,
            "stepId": self.step_id,
            "attempt": self.attempt,
            "status": status,
        }

    async def heartbeat(self) -> None:
        """Tell flowbus the task is still running (also sent automatically)."""
        await self._emit(ACTIVITY_RESULT, self._result("heartbeat"))


async def run_activity_task(
    handler: Task | None, data: Mapping[str, Any], emit: Emit
) -> dict[str, Any]:
    """Run one `flowbus.task.activity` and emit (and return) its `flowbus.result.activity`,
    heartbeating every `heartbeatTimeout / 3` while the handler runs."""
    ctx = TaskContext(data, emit)
    result = ctx._result("failed")
    if handler is None:
        result["error"] = {
            "type": "Unsupported",
            "message": f"no handler for task type {data.get('taskType')!r}",
        }
        await emit(ACTIVITY_RESULT, result)
        return result
    beat = data.get("heartbeatTimeout")
    beats = asyncio.create_task(_heartbeats(ctx, seconds(beat) / 3)) if beat else None
    try:
        output = to_json(await handler.fn(handler.parse_input(data.get("input")), ctx))
    except Exception as exc:
        result["error"] = error_document(exc)
    else:
        result = {**ctx._result("completed"), "output": output}
    finally:
        if beats is not None:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
    await emit(ACTIVITY_RESULT, result)
    return result


async def _heartbeats(ctx: TaskContext, every: float) -> None:
    while True:
        await asyncio.sleep(max(every, 0.05))
        await ctx.heartbeat()
