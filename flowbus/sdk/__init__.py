"""The flowbus SDK: code-first workflows and task workers in the user's own processes.

Light to install: it needs only pydantic, aiokafka and orjson. Workers talk to flowbus
only through the tasks and results topics (`topics/sdk-protocol.md`).
"""

from flowbus.sdk.context import WorkflowContext
from flowbus.sdk.errors import NonDeterminism, StepError
from flowbus.sdk.replay import run_workflow_task
from flowbus.sdk.steps import Step
from flowbus.sdk.tasks import Task, TaskContext, run_activity_task, task
from flowbus.sdk.worker import Topics, Worker
from flowbus.sdk.workflows import Workflow, workflow

__all__ = [
    "NonDeterminism",
    "Step",
    "StepError",
    "Task",
    "TaskContext",
    "Topics",
    "Worker",
    "Workflow",
    "WorkflowContext",
    "run_activity_task",
    "run_workflow_task",
    "task",
    "workflow",
]
