"""The engine: a pure function from (definition, state, input, now) to (state, effects).

No I/O, no clock, no randomness: the same arguments always give the same transition,
event ids included, so a transition that did not commit can simply be computed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.code import CodeRun
from flowbus.engine.effects import Effect
from flowbus.engine.errors import EngineError
from flowbus.engine.inputs import (
    ActionResult,
    ApprovalDecision,
    ChildFinished,
    Command,
    EngineInput,
    EventReceived,
    StepReported,
    TaskEnded,
    TimerFired,
)
from flowbus.engine.lifecycle import FAILURE_WORKFLOW_STEP
from flowbus.engine.limits import DEFAULT_LIMITS, Limits
from flowbus.engine.run import Run
from flowbus.engine.state import (
    ErrorInfo,
    InstanceState,
    InstanceStatus,
    ParentLink,
    StepStatus,
)
from flowbus.engine.working import engine_time
from flowbus.expressions import PathError

__all__ = ["Transition", "apply", "start"]


@dataclass(frozen=True, slots=True)
class Transition:
    """The instance's new state and what the shell must do about it."""

    state: InstanceState
    effects: list[Effect]


def start(
    definition: WorkflowDefinition,
    *,
    instance_id: str,
    input: Any,
    now: datetime,
    trigger: dict[str, Any] | None = None,
    correlation_id: str | None = None,
    parent: ParentLink | None = None,
    limits: Limits = DEFAULT_LIMITS,
    begin: bool = True,
) -> Transition:
    """Create an instance of `definition` and run it until it waits or ends.

    With `begin=False` the instance is only created (status `created`, its first step
    `pending`); a `Command(kind="start")` starts it later.
    """
    if definition.version is None:
        raise EngineError(f"definition {definition.id} has no version; store it first")
    at = engine_time(now)
    state = InstanceState(
        id=instance_id,
        workflow_id=definition.id,
        version=definition.version,
        status=InstanceStatus.CREATED,
        input=input,
        trigger=trigger,
        correlation_id=correlation_id,
        parent=parent,
        created_at=at,
        updated_at=at,
    )
    state.metadata = _metadata(definition, input, trigger)
    if begin:
        return _begin(definition, state, now, limits)
    run = Run(definition, state, now, limits)
    run.emit(
        "instances",
        "flowbus.instance.created",
        status="created",
        input=input,
        parentInstanceId=parent.instance_id if parent else None,
    )
    if not definition.code_first:
        run.mark_pending(definition.first_step_id)
    return Transition(state, run.effects)


def _begin(
    definition: WorkflowDefinition, state: InstanceState, now: datetime, limits: Limits
) -> Transition:
    """Start a created instance: run it until it waits or ends."""
    state.status = InstanceStatus.RUNNING
    state.updated_at = engine_time(now)
    started = {
        "status": "running",
        "input": state.input,
        "parentInstanceId": state.parent.instance_id if state.parent else None,
    }
    if definition.code_first:
        code = CodeRun(definition, state, now, limits)
        code.emit("instances", "flowbus.instance.started", **started)
        code.begin()
        return Transition(state, code.effects)
    run = Run(definition, state, now, limits)
    run.emit("instances", "flowbus.instance.started", **started)
    scope = {"input": state.input, "trigger": state.trigger}
    try:
        state.variables = {name: path.search(scope) for name, path in definition.context.items()}
    except PathError as exc:
        run.fail_instance(ErrorInfo(type="ContextError", message=str(exc)))
        return Transition(state, run.effects)
    too_large = limits.check_variables(None, state.variables)
    if too_large is not None:
        run.fail_instance(too_large)
        return Transition(state, run.effects)
    if definition.timeout is not None:
        run.set_timer("workflow_timeout", definition.timeout)
    run.schedule(definition.first_step_id)
    run.drain()
    return Transition(state, run.effects)


def _metadata(
    definition: WorkflowDefinition, input: Any, trigger: dict[str, Any] | None
) -> dict[str, Any]:
    sources = [input, (trigger or {}).get("data"), trigger]
    found: dict[str, Any] = {}
    for name in definition.execution_log.metadata:
        for source in sources:
            if isinstance(source, dict) and source.get(name) is not None:
                found[name] = source[name]
                break
    return found


def apply(
    definition: WorkflowDefinition,
    state: InstanceState,
    event: EngineInput,
    now: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> Transition:
    """Advance an instance by one input. Takes ownership of `state`.

    Inputs that no longer apply (a result for an attempt that is not the current one, a
    timer of a step that has moved on, anything for an instance that has ended) change
    nothing and yield no effects.
    """
    if state.workflow_id != definition.id or state.version != definition.version:
        raise EngineError(
            f"instance {state.id} runs {state.workflow_id} v{state.version}, "
            f"not {definition.id} v{definition.version}"
        )
    if isinstance(event, ChildFinished) and event.step_id == FAILURE_WORKFLOW_STEP:
        return _failure_workflow_ended(state, event)
    if isinstance(event, Command) and event.kind == "start":
        if state.status is not InstanceStatus.CREATED:
            return Transition(state, [])
        return _begin(definition, state, now, limits)
    if state.status is InstanceStatus.CREATED and not (
        isinstance(event, Command) and event.kind == "cancel"
    ):
        return Transition(state, [])
    if state.status.is_final and not _retries(state, event):
        return Transition(state, [])
    if state.code is not None:
        code = CodeRun(definition, state, now, limits)
        code.on_input(event)
        if code.effects:
            state.updated_at = code.now
        return Transition(state, code.effects)
    if isinstance(event, StepReported | TaskEnded):
        return Transition(state, [])
    run = Run(definition, state, now, limits)
    _HANDLERS[type(event)](run, event)
    run.drain()
    if run.effects:
        state.updated_at = run.now
    return Transition(state, run.effects)


def _failure_workflow_ended(state: InstanceState, finished: ChildFinished) -> Transition:
    """Note how the failure workflow this instance started ended (nothing else changes)."""
    started = state.failure_workflow
    if started is not None and started.instance_id == finished.child_id:
        state.failure_workflow = started.model_copy(
            update={"status": finished.status, "error": finished.error}
        )
    return Transition(state, [])


def _retries(state: InstanceState, event: EngineInput) -> bool:
    return (
        isinstance(event, Command)
        and event.kind == "retry"
        and state.status is InstanceStatus.FAILED
        and state.code is None
        and state.error is not None
        and state.error.step_id is not None
        and state.error.type != "CompensationFailed"
    )


def _live(run: Run, step_id: str | None, attempt: int | None = None) -> bool:
    if step_id is None or step_id not in run.state.active:
        return False
    current = run.state.steps.get(step_id)
    if current is None:
        return False
    return attempt is None or current.attempt == attempt


def _on_action_result(run: Run, result: Any) -> None:
    assert isinstance(result, ActionResult)
    if result.purpose == "compensate":
        comp = run.state.compensation
        current = run.state.steps.get(result.step_id)
        if (
            comp is None
            or not comp.pending
            or comp.pending[0] != result.step_id
            or current is None
            or current.attempt != result.attempt
        ):
            return
        step = run.step(result.step_id)
        error = result.error or run.limits.check_output(step.id, result.output)
        if error is not None:
            run.compensation_failed(step, error)
        else:
            run.compensated(step, result.output)
            run.compensate_next()
        return
    if not _live(run, result.step_id, result.attempt):
        return
    if run.state.steps[result.step_id].status is not StepStatus.RUNNING:
        return
    step = run.step(result.step_id)
    run.step_type(step).on_action_result(step, run.call(step), result)


def _on_timer(run: Run, timer: Any) -> None:
    assert isinstance(timer, TimerFired)
    if timer.kind == "workflow_timeout":
        if run.state.status is not InstanceStatus.COMPENSATING:
            run.time_out_instance()
        return
    if not _live(run, timer.step_id, timer.attempt):
        return
    assert timer.step_id is not None
    step = run.step(timer.step_id)
    current = run.state.steps[timer.step_id]
    if timer.kind == "retry":
        if current.status is StepStatus.RETRYING:
            run.retry(step.id)
        return
    if timer.kind == "step_timeout":
        if current.status in (StepStatus.RUNNING, StepStatus.WAITING):
            step_type = run.step_type(step)
            if step_type.on_timeout(step, run.call(step)):
                return
            step_type.on_cancel(step, run.call(step))
            run.call(step).fail_with(
                "TimeoutError", f"step {step.id!r} exceeded its timeout of {step.timeout}"
            )
        return
    if timer.kind == "heartbeat":
        if current.status is StepStatus.RUNNING:
            run.step_type(step).on_cancel(step, run.call(step))
            silence = current.data.get("heartbeat")
            run.call(step).fail_with(
                "TimeoutError", f"step {step.id!r} had no heartbeat for {silence} seconds"
            )
        return
    run.step_type(step).on_timer(step, run.call(step), timer.kind)


def _on_event(run: Run, received: Any) -> None:
    assert isinstance(received, EventReceived)
    step_ids = [received.step_id] if received.step_id else list(run.state.active)
    for step_id in step_ids:
        if not _live(run, step_id):
            continue
        step = run.step(step_id)
        if run.step_type(step).on_event(step, run.call(step), received.event):
            return


def _on_child(run: Run, finished: Any) -> None:
    assert isinstance(finished, ChildFinished)
    if not _live(run, finished.step_id):
        return
    step = run.step(finished.step_id)
    run.step_type(step).on_child_finished(step, run.call(step), finished)


def _on_decision(run: Run, decision: Any) -> None:
    assert isinstance(decision, ApprovalDecision)
    step = run.step(decision.step_id)
    if not _live(run, decision.step_id):
        run.step_type(step).on_stale_decision(step, run.call(step), decision)
        return
    run.step_type(step).on_decision(step, run.call(step), decision)


def _on_command(run: Run, command: Any) -> None:
    assert isinstance(command, Command)
    state = run.state
    if command.kind == "pause":
        if state.status in (InstanceStatus.RUNNING, InstanceStatus.WAITING):
            state.status = InstanceStatus.PAUSED
            run.emit("instances", "flowbus.instance.paused", status="paused", by=command.by)
    elif command.kind == "resume":
        if state.status is InstanceStatus.PAUSED:
            state.status = InstanceStatus.RUNNING
            run.emit("instances", "flowbus.instance.resumed", status="running", by=command.by)
            for step_id in state.deferred:
                run.schedule(step_id)
            state.deferred.clear()
    elif command.kind == "cancel" and state.status is not InstanceStatus.COMPENSATING:
        run.cancel_instance(compensate=command.compensate, reason=command.reason)
    elif command.kind == "retry" and _retries(state, command):
        run.retry_instance(by=command.by)


_HANDLERS = {
    ActionResult: _on_action_result,
    TimerFired: _on_timer,
    EventReceived: _on_event,
    ChildFinished: _on_child,
    ApprovalDecision: _on_decision,
    Command: _on_command,
}
