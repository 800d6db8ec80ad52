"""`task`: hand a step to a task worker, a process of the user's that takes tasks from
the tasks topic and answers on the results topic (`topics/sdk-protocol.md`).

An external action like `webhook`, but nothing in flowbus waits on a call: the shell
publishes a `flowbus.task.activity` record through the outbox, in the transaction that
entered the step, and the worker's answer comes back as the step's result. A `heartbeat`
bounds how long the worker may stay silent; the step's `timeout` bounds the whole task.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import ConfigDict, Field

from flowbus.actions.base import ActionConfig, ActionType
from flowbus.definitions.types import Duration


class TaskConfig(ActionConfig):
    """What a task worker gets. `input` may hold `{{ path }}` templates."""

    model_config = ConfigDict(populate_by_name=True)

    task_type: str = Field(
        alias="taskType",
        min_length=1,
        max_length=200,
        description="The name task workers register their handler under.",
    )
    input: Any = Field(None, description="The task's input, sent as JSON.")
    heartbeat: Duration | None = Field(
        None,
        description="Longest silence allowed between two heartbeats of the worker; the "
        "step fails with TimeoutError (and is retried by its policy) when it is exceeded.",
    )


class Task(ActionType):
    """Dispatch the step to a task worker; its answer is the step's output or error.

    Every attempt carries the step execution's idempotency key (the same on every retry)
    and its attempt number; an answer for another attempt than the current one changes
    nothing.
    """

    name = "task"
    config_model = TaskConfig
    inline = False

    def heartbeat(self, config: dict[str, Any]) -> timedelta | None:
        return TaskConfig.model_validate(config).heartbeat
