"""One engine transition in progress: the working state, the effects so far, and the
`StepCall` facade through which step types act on the instance."""

from __future__ import annotations

import uuid
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from flowbus.actions.base import ActionContext
from flowbus.actions.registry import ACTIONS
from flowbus.definitions.model import StepModel, WorkflowDefinition
from flowbus.engine.effects import Channel, Effect, EmitEvent, RecordAttempt, RunAction
from flowbus.engine.state import ErrorInfo, InstanceState, InstanceStatus, StepState, StepStatus
from flowbus.expressions import ExpressionError, Template

if TYPE_CHECKING:
    from flowbus.steps.base import StepType

EVENT_NAMESPACE = uuid.UUID("6f1c3c52-8d0e-4d59-a7a4-1f0b9a3e2c11")
MAX_STEPS_PER_TRANSITION = 10_000


class EngineError(RuntimeError):
    """A broken invariant inside the engine (a bug, never bad user input)."""


def event_id(instance_id: str, seq: int) -> str:
    """Stable id of the `seq`-th event of an instance: the same on every replay."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{instance_id}/{seq}"))


class Run:
    """The working copy of one transition. Owns `state`; collects `effects`."""

    def __init__(self, definition: WorkflowDefinition, state: InstanceState, now: str) -> None:
        from flowbus.steps.registry import STEP_TYPES

        self.definition = definition
        self.state = state
        self.now = now
        self.effects: list[Effect] = []
        self._steps = definition.step_map()
        self._step_types = STEP_TYPES
        self._ready: deque[str] = deque()

    # -- events -------------------------------------------------------------------------

    def next_event_id(self) -> str:
        self.state.seq += 1
        return event_id(self.state.id, self.state.seq)

    def emit(self, channel: Channel, type: str, **data: Any) -> None:
        payload = {
            "instanceId": self.state.id,
            "workflowId": self.state.workflow_id,
            "workflowVersion": self.state.version,
            "correlationId": self.state.correlation_id,
        }
        payload.update(data)
        eid = self.next_event_id()
        self.effects.append(
            EmitEvent(
                channel=channel, id=eid, type=type, time=self.now, seq=self.state.seq, data=payload
            )
        )

    # -- scope --------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        """What expressions and templates see."""
        return {
            "input": self.state.input,
            "variables": self.state.variables,
            "steps": self.state.step_outputs(),
            "trigger": self.state.trigger,
            "instance": {
                "id": self.state.id,
                "workflowId": self.state.workflow_id,
                "workflowVersion": self.state.version,
                "correlationId": self.state.correlation_id,
            },
        }

    # -- step lifecycle -----------------------------------------------------------------

    def step(self, step_id: str) -> StepModel:
        try:
            return self._steps[step_id]
        except KeyError:
            raise EngineError(f"{self.definition.id} has no step {step_id!r}") from None

    def step_type(self, step: StepModel) -> StepType[Any]:
        return self._step_types[step.type]

    def schedule(self, step_id: str) -> None:
        self._ready.append(step_id)

    def drain(self) -> None:
        """Enter ready steps until every active step waits on something outside."""
        entered = 0
        while self._ready and not self.state.status.is_final:
            entered += 1
            if entered > MAX_STEPS_PER_TRANSITION:
                self.fail_instance(
                    ErrorInfo(
                        type="LoopLimitExceeded",
                        message=f"more than {MAX_STEPS_PER_TRANSITION} steps ran without waiting",
                    )
                )
                return
            self._enter(self._ready.popleft())

    def _enter(self, step_id: str) -> None:
        step = self.step(step_id)
        previous = self.state.steps.get(step_id)
        attempt = 1 if previous is None else previous.attempt + 1
        self.state.steps[step_id] = StepState(
            status=StepStatus.RUNNING, attempt=attempt, started_at=self.now
        )
        if step_id not in self.state.active:
            self.state.active.append(step_id)
        self.emit(
            "steps", "flowbus.step.started", stepId=step_id, stepType=step.type, attempt=attempt
        )
        self.record(step, None)
        self.step_type(step).enter(step, StepCall(self, step))

    def record(self, step: StepModel, output: Any) -> None:
        s = self.state.steps[step.id]
        self.effects.append(
            RecordAttempt(
                step_id=step.id,
                step_type=step.type,
                attempt=s.attempt,
                status=s.status.value,
                started_at=s.started_at,
                finished_at=s.finished_at,
                input=None,
                output=output,
                error=s.error.model_dump(mode="json") if s.error else None,
            )
        )

    def resolve_next(self, step: StepModel) -> str | None:
        """The successor by the step's `next`: an id, or the first transition that holds."""
        if step.next is None or isinstance(step.next, str):
            return step.next
        scope = self.scope()
        for transition in step.next:
            if transition.condition is None or transition.condition.test(scope):
                return transition.to
        raise ExpressionError(f"no transition of step {step.id!r} matched and none is a default")

    def complete_step(self, step: StepModel, output: Any, next_step: str | None) -> None:
        s = self.state.steps[step.id]
        s.status = StepStatus.COMPLETED
        s.output = output
        s.finished_at = self.now
        self.state.active.remove(step.id)
        self.state.completed.append(step.id)
        self.emit(
            "steps",
            "flowbus.step.completed",
            stepId=step.id,
            stepType=step.type,
            attempt=s.attempt,
            output=output,
        )
        self.record(step, output)
        if next_step is not None:
            self.schedule(next_step)
        elif not self.state.active and not self._ready:
            self.complete_instance()

    def fail_step(self, step: StepModel, error: ErrorInfo) -> None:
        s = self.state.steps[step.id]
        s.status = StepStatus.FAILED
        s.error = error
        s.finished_at = self.now
        if step.id in self.state.active:
            self.state.active.remove(step.id)
        self.emit(
            "steps",
            "flowbus.step.failed",
            stepId=step.id,
            stepType=step.type,
            attempt=s.attempt,
            error=error.model_dump(mode="json"),
        )
        self.record(step, None)
        self.fail_instance(error)

    # -- instance lifecycle -------------------------------------------------------------

    def complete_instance(self) -> None:
        output_template = self.definition.output
        output = (
            Template(output_template).render(self.scope())
            if output_template is not None
            else dict(self.state.variables)
        )
        self.state.status = InstanceStatus.COMPLETED
        self.state.output = output
        self.emit("instances", "flowbus.instance.completed", status="completed", output=output)

    def fail_instance(self, error: ErrorInfo) -> None:
        self.state.status = InstanceStatus.FAILED
        self.state.error = error
        self.state.active.clear()
        self._ready.clear()
        self.emit(
            "instances",
            "flowbus.instance.failed",
            status="failed",
            error=error.model_dump(mode="json"),
        )


class Follow(Enum):
    """Continue by the step's own `next` (the default of `StepCall.complete`)."""

    NEXT = "next"


class StepCall:
    """What a step type may do to its instance while it handles an input."""

    __slots__ = ("_run", "step")

    def __init__(self, run: Run, step: StepModel) -> None:
        self._run = run
        self.step = step

    @property
    def now(self) -> str:
        return self._run.now

    @property
    def attempt(self) -> int:
        return self._run.state.steps[self.step.id].attempt

    def scope(self) -> dict[str, Any]:
        return self._run.scope()

    def complete(self, output: Any, *, next_step: str | Follow | None = Follow.NEXT) -> None:
        """Finish the step; continue at `next_step`, or by the step's `next` if not given."""
        target: str | None
        if isinstance(next_step, Follow):
            try:
                target = self._run.resolve_next(self.step)
            except ExpressionError as exc:
                self.fail_with("ExpressionError", str(exc))
                return
        else:
            target = next_step
        self._run.complete_step(self.step, output, target)

    def fail(self, error: ErrorInfo) -> None:
        self._run.fail_step(self.step, error)

    def fail_with(self, error_type: str, message: str, code: str | None = None) -> None:
        self.fail(ErrorInfo(type=error_type, message=message, code=code, step_id=self.step.id))

    def run_action(self, action_name: str, config: Template) -> None:
        """Run an action: inline ones now, external ones through the shell."""
        run = self._run
        action = ACTIONS[action_name]
        try:
            rendered = config.render(run.scope())
        except ExpressionError as exc:
            self.fail_with("ExpressionError", str(exc))
            return
        key = f"{run.state.id}:{self.step.id}:{self.attempt}"
        if not action.inline:
            run.effects.append(
                RunAction(
                    step_id=self.step.id,
                    attempt=self.attempt,
                    action=action_name,
                    config=rendered,
                    idempotency_key=key,
                )
            )
            return
        context = ActionContext(
            instance_id=run.state.id,
            workflow_id=run.state.workflow_id,
            step_id=self.step.id,
            attempt=self.attempt,
            now=run.now,
            idempotency_key=key,
            new_event_id=run.next_event_id,
        )
        try:
            outcome = action.run_inline(rendered, context)
        except ValidationError as exc:
            self.fail_with("ActionConfigError", _validation_message(exc))
            return
        run.state.variables.update(outcome.variables)
        run.effects.extend(outcome.effects)
        self.complete(outcome.output)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )
