"""The engine: a pure function from (definition, state, input, now) to (state, effects).

No I/O, no clock, no randomness: the same arguments always give the same transition,
event ids included, so a transition that did not commit can simply be computed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.effects import Effect
from flowbus.engine.inputs import ActionResult, EngineInput
from flowbus.engine.run import EngineError, Run, StepCall
from flowbus.engine.state import (
    ErrorInfo,
    InstanceState,
    InstanceStatus,
    ParentLink,
    StepStatus,
)
from flowbus.expressions import PathError


@dataclass(frozen=True, slots=True)
class Transition:
    """The instance's new state and what the shell must do about it."""

    state: InstanceState
    effects: list[Effect]


def rfc3339(now: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as every flowbus event carries."""
    u = now.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def start(
    definition: WorkflowDefinition,
    *,
    instance_id: str,
    input: Any,
    now: datetime,
    trigger: dict[str, Any] | None = None,
    correlation_id: str | None = None,
    parent: ParentLink | None = None,
) -> Transition:
    """Create an instance of `definition` and run it until it waits or ends."""
    if definition.version is None:
        raise EngineError(f"definition {definition.id} has no version; store it first")
    at = rfc3339(now)
    state = InstanceState(
        id=instance_id,
        workflow_id=definition.id,
        version=definition.version,
        status=InstanceStatus.RUNNING,
        input=input,
        trigger=trigger,
        correlation_id=correlation_id,
        parent=parent,
        created_at=at,
        updated_at=at,
    )
    run = Run(definition, state, at)
    run.emit(
        "instances",
        "flowbus.instance.started",
        status="running",
        input=input,
        parentInstanceId=parent.instance_id if parent else None,
    )
    scope = {"input": input, "trigger": trigger}
    try:
        state.variables = {name: path.search(scope) for name, path in definition.context.items()}
    except PathError as exc:
        run.fail_instance(ErrorInfo(type="ContextError", message=str(exc)))
        return Transition(state, run.effects)
    run.schedule(definition.first_step_id)
    run.drain()
    return Transition(state, run.effects)


def apply(
    definition: WorkflowDefinition, state: InstanceState, event: EngineInput, now: datetime
) -> Transition:
    """Advance an instance by one input. Takes ownership of `state`.

    Inputs that no longer apply (a result for an attempt that is not the current one, or
    anything for an instance that has ended) change nothing and yield no effects.
    """
    if state.workflow_id != definition.id or state.version != definition.version:
        raise EngineError(
            f"instance {state.id} runs {state.workflow_id} v{state.version}, "
            f"not {definition.id} v{definition.version}"
        )
    at = rfc3339(now)
    if state.status.is_final:
        return Transition(state, [])
    run = Run(definition, state, at)
    if isinstance(event, ActionResult):
        _on_action_result(run, event)
    run.drain()
    if run.effects:
        state.updated_at = at
    return Transition(state, run.effects)


def _on_action_result(run: Run, result: ActionResult) -> None:
    current = run.state.steps.get(result.step_id)
    if (
        current is None
        or current.attempt != result.attempt
        or current.status is not StepStatus.RUNNING
        or result.step_id not in run.state.active
    ):
        return
    step = run.step(result.step_id)
    run.step_type(step).on_action_result(step, StepCall(run, step), result)
