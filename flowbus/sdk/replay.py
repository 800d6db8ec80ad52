"""Running one workflow task: replay, run up to the next wait or the end, answer.

Pure apart from the `emit` callback it is given, so the whole replay core is driven by
protocol dicts in tests; the Kafka worker supplies an `emit` that waits for the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from flowbus.sdk.context import WorkflowContext
from flowbus.sdk.errors import (
    WORKFLOW_RESULT,
    Emit,
    NonDeterminism,
    _Halt,
    _Suspend,
    error_document,
)
from flowbus.sdk.values import seconds, to_json
from flowbus.sdk.workflows import Workflow

log = logging.getLogger("flowbus.sdk")


async def run_workflow_task(
    workflow: Workflow | None, task: Mapping[str, Any], emit: Emit
) -> dict[str, Any]:
    """Run `task` (a `flowbus.task.workflow` data dict) and return the
    `flowbus.result.workflow` data, after emitting every step result and that record.

    `workflow` is `None` when this worker does not host the task's workflow version.
    """
    result = await _outcome(workflow, task, emit)
    await emit(WORKFLOW_RESULT, result)
    return result


async def _outcome(
    workflow: Workflow | None, task: Mapping[str, Any], emit: Emit
) -> dict[str, Any]:
    base = {"taskId": task["taskId"], "instanceId": task["instanceId"]}
    if workflow is None:
        return {
            **base,
            "outcome": "unsupported",
            "error": {
                "type": "Unsupported",
                "message": f"this worker does not host workflow {task.get('workflowId')!r} "
                f"version {task.get('version')}",
            },
        }
    cancel = task.get("reason") == "cancel"
    ctx = WorkflowContext(task, emit, halt_on_new=cancel)
    timed_out = not cancel and ctx.elapsed().total_seconds() > seconds(workflow.timeout)
    if timed_out:
        ctx = WorkflowContext(task, emit, halt_on_new=True)
    try:
        value = workflow.parse_input(task.get("input"))
    except ValidationError as exc:
        return {**base, "outcome": "failed", "error": error_document(exc)}

    failure: BaseException | None = None
    output: Any = None
    try:
        output = to_json(await workflow.fn(ctx, value))
    except (_Suspend, _Halt, NonDeterminism):
        pass
    except Exception as exc:
        failure = exc
    interrupt = ctx._interrupt
    if isinstance(interrupt, NonDeterminism):
        return _nondeterministic(base, interrupt)
    if isinstance(interrupt, _Suspend) and not (cancel or timed_out):
        return {**base, "outcome": "waiting", "wait": interrupt.wait}
    if (failure is not None or interrupt is None) and (unreached := ctx._unreached()):
        seq, entry = unreached
        found = f"the exception {type(failure).__name__}" if failure else "the end of the workflow"
        return _nondeterministic(
            base, NonDeterminism(seq, f"{entry.get('kind')} {entry.get('name')!r}", found)
        )
    if cancel or timed_out or failure is not None:
        succeeded = await ctx._run_compensations()
        outcome = "compensated" if succeeded and (cancel or ctx._compensations) else "failed"
        result: dict[str, Any] = {**base, "outcome": outcome}
        if timed_out:
            result["error"] = {
                "type": "TimeoutError",
                "message": f"the workflow ran longer than {workflow.timeout}",
            }
        elif failure is not None:
            result["error"] = error_document(failure)
        return result
    return {**base, "outcome": "completed", "output": output}


def _nondeterministic(base: dict[str, Any], exc: NonDeterminism) -> dict[str, Any]:
    log.error("non-determinism in %s: %s", base["instanceId"], exc)
    return {
        **base,
        "outcome": "nondeterministic",
        "error": {
            "type": "NonDeterminism",
            "message": str(exc),
            "details": {"seq": exc.seq, "expected": exc.expected, "found": exc.found},
        },
    }
