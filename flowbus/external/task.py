"""The shell's half of `task` actions: the `flowbus.task.activity` record a task worker
gets (`topics/sdk-protocol.md`).

Why no executor, unlike `webhook`: a webhook is a call the worker must make and wait on,
so it is a leased job run outside any transaction. A task needs nobody in flowbus to wait:
handing it over is writing one outbox row, so the `RunAction` effect handler writes it in
the transaction that entered the step, and the task is published if and only if that step
attempt committed. What a lease does for a webhook, the timers do here, in the engine: the
step's `timeout` bounds the whole task and the action's `heartbeat` (a `heartbeat` timer,
pushed back by each heartbeat the worker sends) bounds a silence; either fails the step
with `TimeoutError`, retried by its policy with the same idempotency key. The answer comes
back on the results topic (`flowbus.ingest.results`) as the step's `ActionResult`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.effects import PublishEvent, RunAction
from flowbus.engine.state import InstanceState
from flowbus.times import parse_time, rfc3339

ACTIVITY_TASK = "flowbus.task.activity"
TASK_NAMESPACE = uuid.UUID("3b0f8a4e-2d71-4c55-9a0e-6c1f5e7d9b24")


def activity_task_id(instance_id: str, step_id: str, attempt: int) -> str:
    """`<instance>:<step>:<attempt>`: names one attempt of a task step."""
    return f"{instance_id}:{step_id}:{attempt}"


def activity_task(
    topic: str,
    state: InstanceState,
    effect: RunAction,
    definition: WorkflowDefinition | None,
    now: str,
) -> PublishEvent:
    """The task record of one attempt of a `task` step, keyed by instance id."""
    task_id = activity_task_id(state.id, effect.step_id, effect.attempt)
    config = effect.config
    step_state = state.steps.get(effect.step_id)
    heartbeat = step_state.data.get("heartbeat") if step_state is not None else None
    return PublishEvent(
        topic=topic,
        key=state.id,
        id=str(uuid.uuid5(TASK_NAMESPACE, task_id)),
        type=ACTIVITY_TASK,
        time=now,
        subject=state.id,
        data={
            "taskId": task_id,
            "instanceId": state.id,
            "workflowId": state.workflow_id,
            "workflowVersion": state.version,
            "stepId": effect.step_id,
            "taskType": config.get("taskType"),
            "input": config.get("input"),
            "attempt": effect.attempt,
            "idempotencyKey": effect.idempotency_key,
            "heartbeatTimeout": _duration(heartbeat),
            "deadline": _deadline(definition, effect.step_id, step_state),
        },
    )


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, int | float):
        return None
    return f"PT{seconds:g}S"


def _deadline(definition: WorkflowDefinition | None, step_id: str, step_state: Any) -> str | None:
    if definition is None or step_state is None:
        return None
    step = definition.layout().steps.get(step_id)
    timeout: timedelta | None = getattr(step, "timeout", None)
    if timeout is None:
        return None
    return rfc3339(parse_time(step_state.started_at) + timeout)
