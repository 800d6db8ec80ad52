"""One engine transition in progress: the working state, the effects so far, and the
`StepCall` facade through which step types act on the instance."""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from flowbus.actions.base import ActionContext, InlineOutcome
from flowbus.actions.registry import ACTIONS
from flowbus.definitions.model import (
    DEFAULT_RETRY,
    Compensation,
    RetryPolicy,
    StepModel,
    WorkflowDefinition,
)
from flowbus.engine.effects import (
    ActionPurpose,
    CancelTimers,
    Channel,
    Effect,
    EmitEvent,
    NotifyParent,
    PublishEvent,
    RecordAttempt,
    RunAction,
    SetTimer,
    TimerKind,
)
from flowbus.engine.limits import DEFAULT_LIMITS, PAYLOAD_TOO_LARGE, Limits
from flowbus.engine.state import (
    Compensating,
    ErrorInfo,
    InstanceState,
    InstanceStatus,
    StepState,
    StepStatus,
)
from flowbus.expressions import ExpressionError, Template

if TYPE_CHECKING:
    from flowbus.steps.base import StepType

EVENT_NAMESPACE = uuid.UUID("6f1c3c52-8d0e-4d59-a7a4-1f0b9a3e2c11")
MAX_STEPS_PER_TRANSITION = 10_000
# Errors in the definition itself: running the step again cannot fix them.
NOT_RETRIED = frozenset({"ExpressionError", "ActionConfigError"})
_LIVE = frozenset({StepStatus.RUNNING, StepStatus.WAITING, StepStatus.RETRYING})


class EngineError(RuntimeError):
    """A broken invariant inside the engine (a bug, never bad user input)."""


def event_id(instance_id: str, seq: int) -> str:
    """Stable id of the `seq`-th outcome event of an instance: the same on every replay."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{instance_id}/{seq}"))


def published_event_id(instance_id: str, n: int) -> str:
    """Stable id of the `n`-th event an instance's actions published."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{instance_id}/published/{n}"))


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as every flowbus event carries."""
    if moment.tzinfo is None:
        raise EngineError("times given to the engine must carry a time zone")
    u = moment.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


class Follow(Enum):
    """Continue by the step's own `next` (the default of `StepCall.complete`)."""

    NEXT = "next"


class Run:
    """The working copy of one transition. Owns `state`; collects `effects`."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        state: InstanceState,
        now: datetime,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        from flowbus.steps.registry import STEP_TYPES

        self.definition = definition
        self.state = state
        self.limits = limits
        self.moment = now
        self.now = rfc3339(now)
        self.effects: list[Effect] = []
        layout = definition.layout()
        self._steps = layout.steps
        self._branch_of = layout.branch_of
        self._step_types = STEP_TYPES
        self._ready: deque[str] = deque()

    # -- events -------------------------------------------------------------------------

    def next_event_id(self) -> str:
        self.state.seq += 1
        return event_id(self.state.id, self.state.seq)

    def next_published_id(self) -> str:
        self.state.published += 1
        return published_event_id(self.state.id, self.state.published)

    def emit(self, channel: Channel, type: str, **data: Any) -> None:
        payload = {
            "instanceId": self.state.id,
            "workflowId": self.state.workflow_id,
            "workflowVersion": self.state.version,
            "correlationId": self.state.correlation_id,
        }
        if self.state.metadata:
            payload["metadata"] = self.state.metadata
        payload.update(data)
        eid = self.next_event_id()
        self.effects.append(
            EmitEvent(
                channel=channel, id=eid, type=type, time=self.now, seq=self.state.seq, data=payload
            )
        )

    def emit_step(self, step: StepModel, kind: str, **data: Any) -> None:
        s = self.state.steps[step.id]
        self.emit(
            "steps",
            f"flowbus.step.{kind}",
            stepId=step.id,
            stepType=step.type,
            attempt=s.attempt,
            **data,
        )

    def set_timer(
        self, kind: TimerKind, after: timedelta | datetime, step: StepModel | None = None
    ) -> None:
        due = after if isinstance(after, datetime) else self.moment + after
        attempt = self.state.steps[step.id].attempt if step is not None else None
        self.effects.append(
            SetTimer(
                kind=kind,
                due_at=rfc3339(due),
                step_id=step.id if step else None,
                attempt=attempt,
            )
        )
        if step is not None:
            self.state.steps[step.id].data["timers"] = True

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

    # -- lookups ------------------------------------------------------------------------

    def step(self, step_id: str) -> StepModel:
        try:
            return self._steps[step_id]
        except KeyError:
            raise EngineError(f"{self.definition.id} has no step {step_id!r}") from None

    def step_type(self, step: StepModel) -> StepType[Any]:
        return self._step_types[step.type]

    def branch_of(self, step_id: str) -> tuple[str, str] | None:
        return self._branch_of.get(step_id)

    def call(self, step: StepModel) -> StepCall:
        return StepCall(self, step)

    # -- entering steps -----------------------------------------------------------------

    def schedule(self, step_id: str) -> None:
        self._ready.append(step_id)

    def drain(self) -> None:
        """Enter ready steps until every active step waits on something outside."""
        entered = 0
        while self._ready and not self.state.status.is_final:
            if self.state.status is InstanceStatus.PAUSED:
                self.state.deferred.extend(self._ready)
                self._ready.clear()
                break
            step_id = self._ready.popleft()
            if not self._branch_open(step_id):
                continue
            entered += 1
            if entered > MAX_STEPS_PER_TRANSITION:
                self.fail_instance(
                    ErrorInfo(
                        type="LoopLimitExceeded",
                        message=f"more than {MAX_STEPS_PER_TRANSITION} steps ran without waiting",
                    )
                )
                return
            self._enter(step_id, retry=False)
        self._settle_status()

    def prune_ready(self) -> None:
        """Forget queued steps whose branch has stopped."""
        self._ready = deque(s for s in self._ready if self._branch_open(s))

    def _branch_open(self, step_id: str) -> bool:
        """Whether a step may still start: its parallel branch (if any) is still running."""
        branch = self.branch_of(step_id)
        while branch is not None:
            parallel_id, branch_id = branch
            s = self.state.steps.get(parallel_id)
            if s is None or s.status not in _LIVE:
                return False
            if s.data.get("branches", {}).get(branch_id) != "running":
                return False
            branch = self.branch_of(parallel_id)
        return True

    def retry(self, step_id: str) -> None:
        """Enter a step again for its next try (a retry timer fired)."""
        self._enter(step_id, retry=True)

    def _enter(self, step_id: str, *, retry: bool) -> None:
        step = self.step(step_id)
        previous = self.state.steps.get(step_id)
        attempt = 1 if previous is None else previous.attempt + 1
        tries = previous.tries + 1 if retry and previous is not None else 1
        execution = 1 if previous is None else previous.execution + (0 if retry else 1)
        self.state.steps[step_id] = StepState(
            status=StepStatus.RUNNING,
            attempt=attempt,
            tries=tries,
            execution=execution,
            started_at=self.now,
        )
        if step_id not in self.state.active:
            self.state.active.append(step_id)
        self.emit_step(step, "started")
        if step.timeout is not None:
            self.set_timer("step_timeout", step.timeout, step)
        self.record(step, None)
        self.step_type(step).enter(step, self.call(step))

    def record(self, step: StepModel, output: Any) -> None:
        """History of the attempt, as detailed as the definition's executionLog level says."""
        s = self.state.steps[step.id]
        level = self.definition.execution_log.level
        failed = s.status is StepStatus.FAILED
        if level == "error" and not failed:
            return
        step_input = s.data.get("input") if level == "debug" else None
        self.effects.append(
            RecordAttempt(
                step_id=step.id,
                step_type=step.type,
                attempt=s.attempt,
                status=s.status.value,
                started_at=s.started_at,
                finished_at=s.finished_at,
                input=step_input,
                output=output if level != "error" else None,
                error=s.error.model_dump(mode="json") if s.error else None,
            )
        )

    # -- leaving steps ------------------------------------------------------------------

    def resolve_next(self, step: StepModel) -> str | None:
        """The successor by the step's `next`: an id, or the first transition that holds."""
        if step.next is None or isinstance(step.next, str):
            return step.next
        scope = self.scope()
        for transition in step.next:
            if transition.condition is None or transition.condition.test(scope):
                return transition.to
        raise ExpressionError(f"no transition of step {step.id!r} matched and none is a default")

    def _leave(self, step: StepModel, status: StepStatus) -> StepState:
        s = self.state.steps[step.id]
        s.status = status
        s.finished_at = self.now
        if step.id in self.state.active:
            self.state.active.remove(step.id)
        if s.data.pop("timers", False):
            self.effects.append(CancelTimers(step_id=step.id))
        return s

    def complete_step(self, step: StepModel, output: Any, next_step: str | None) -> None:
        s = self._leave(step, StepStatus.COMPLETED)
        s.output = output
        self.state.completed.append(step.id)
        self.emit_step(step, "completed", output=output)
        self.record(step, output)
        self._continue(step, next_step)

    def _continue(self, step: StepModel, next_step: str | None) -> None:
        if next_step is not None:
            self.schedule(next_step)
            return
        branch = self.branch_of(step.id)
        if branch is not None:
            self._branch_ended(branch, None)
        elif not self.state.active and not self._ready:
            self.complete_instance()

    def fail_step(self, step: StepModel, error: ErrorInfo) -> None:
        """A try failed: retry it, route the failure, or fail upwards."""
        if error.step_id is None:
            error = error.model_copy(update={"step_id": step.id})
        s = self._leave(step, StepStatus.FAILED)
        s.error = error
        self.emit_step(step, "failed", error=error.model_dump(mode="json"))
        self.record(step, None)
        policy = self._retry_policy(step)
        if policy is not None and s.tries < policy.max_attempts and self._retryable(policy, error):
            delay = _jittered(policy, s.tries + 1, f"{self.state.id}/{step.id}/{s.attempt}")
            s.status = StepStatus.RETRYING
            self.state.active.append(step.id)
            self.emit_step(
                step,
                "retrying",
                nextTry=s.tries + 1,
                maxAttempts=policy.max_attempts,
                delaySeconds=delay.total_seconds(),
                error=error.model_dump(mode="json"),
            )
            self.set_timer("retry", delay, step)
            return
        self._route_failure(step, error)

    def _retry_policy(self, step: StepModel) -> RetryPolicy | None:
        if step.retry_policy is not None:
            return step.retry_policy
        if step.on_failure is not None and step.on_failure.action == "retry":
            return DEFAULT_RETRY
        return None

    @staticmethod
    def _retryable(policy: RetryPolicy, error: ErrorInfo) -> bool:
        if error.type in NOT_RETRIED:
            return False
        if error.type == PAYLOAD_TOO_LARGE:
            # The same input gives the same output: retried only when asked for by name.
            return policy.retry_on is not None and error.type in policy.retry_on
        return policy.retries(error.type)

    def _route_failure(self, step: StepModel, error: ErrorInfo) -> None:
        handler = step.on_failure
        if handler is not None:
            target = handler.route(error.type, error.code)
            if target is not None:
                self.schedule(target)
                return
            if handler.action == "continue":
                target = handler.next_step_id
                if target is None:
                    try:
                        target = self.resolve_next(step)
                    except ExpressionError as exc:
                        error = ErrorInfo(type="ExpressionError", message=str(exc), step_id=step.id)
                        self._fail_upwards(step, error)
                        return
                self._continue(step, target)
                return
        self._fail_upwards(step, error)

    def _fail_upwards(self, step: StepModel, error: ErrorInfo) -> None:
        branch = self.branch_of(step.id)
        if branch is not None:
            self._branch_ended(branch, error)
        else:
            self.fail_instance(error)

    def cancel_step(self, step_id: str) -> None:
        """Stop a live step (join, cancel, timeout): it cleans up after itself."""
        step = self.step(step_id)
        s = self.state.steps.get(step_id)
        if s is None or s.status not in _LIVE:
            return
        self.step_type(step).on_cancel(step, self.call(step))
        self._leave(step, StepStatus.CANCELLED)
        self.emit_step(step, "cancelled")
        self.record(step, None)

    def _branch_ended(self, branch: tuple[str, str], error: ErrorInfo | None) -> None:
        parallel_id, branch_id = branch
        parallel = self.step(parallel_id)
        s = self.state.steps.get(parallel_id)
        if s is None or s.status not in _LIVE:
            return
        self.step_type(parallel).on_branch_ended(parallel, self.call(parallel), branch_id, error)

    # -- the whole instance -------------------------------------------------------------

    def _settle_status(self) -> None:
        state = self.state
        if state.status.is_final or state.status in (
            InstanceStatus.PAUSED,
            InstanceStatus.COMPENSATING,
        ):
            return
        running = any(
            state.steps[sid].status is StepStatus.RUNNING for sid in state.active
        ) or bool(self._ready)
        state.status = InstanceStatus.RUNNING if running else InstanceStatus.WAITING

    def complete_instance(self) -> None:
        output_template = self.definition.output
        try:
            output = (
                output_template.render(self.scope())
                if output_template is not None
                else dict(self.state.variables)
            )
        except ExpressionError as exc:
            self.fail_instance(ErrorInfo(type="ExpressionError", message=f"output: {exc}"))
            return
        too_large = self.limits.check_event(None, "flowbus.instance.completed", output)
        if too_large is not None:
            self.fail_instance(too_large)
            return
        self.state.output = output
        self._finish(InstanceStatus.COMPLETED, output=output)

    def fail_instance(self, error: ErrorInfo) -> None:
        self._stop_everything()
        self._compensate_then_end(InstanceStatus.FAILED, error)

    def cancel_instance(self, *, compensate: bool, reason: str | None) -> None:
        self._stop_everything()
        cause = ErrorInfo(type="Cancelled", message=reason or "cancelled by command")
        if compensate:
            self._compensate_then_end(InstanceStatus.CANCELLED, cause)
        else:
            self._finish(InstanceStatus.CANCELLED, error=cause)

    def retry_instance(self, *, by: str | None) -> None:
        """Run a failed instance again from the step that failed (a new attempt)."""
        state = self.state
        assert state.error is not None
        assert state.error.step_id is not None
        failed_step = state.error.step_id
        state.status = InstanceStatus.RUNNING
        state.error = None
        self.emit(
            "instances", "flowbus.instance.retried", status="running", stepId=failed_step, by=by
        )
        if self.definition.timeout is not None:
            self.set_timer("workflow_timeout", self.definition.timeout)
        self.schedule(failed_step)

    def time_out_instance(self) -> None:
        self._stop_everything()
        timeout = self.definition.timeout
        cause = ErrorInfo(type="TimeoutError", message=f"workflow timeout {timeout} elapsed")
        self._compensate_then_end(InstanceStatus.TIMED_OUT, cause)

    def _stop_everything(self) -> None:
        for step_id in list(self.state.active):
            self.cancel_step(step_id)
        self.state.active.clear()
        self.state.deferred.clear()
        self._ready.clear()

    # -- compensation (saga) ------------------------------------------------------------

    def _compensate_then_end(self, ending: InstanceStatus, cause: ErrorInfo) -> None:
        # A step that ran several times (in a loop) is undone once, at its latest completion.
        pending = [
            step_id
            for step_id in dict.fromkeys(reversed(self.state.completed))
            if self.step(step_id).compensate is not None
            and self.state.steps[step_id].status is StepStatus.COMPLETED
        ]
        if not pending:
            self._finish(ending, error=cause)
            return
        self.state.status = InstanceStatus.COMPENSATING
        self.state.error = cause
        self.state.compensation = Compensating(pending=pending, ending=ending, cause=cause)
        self.emit(
            "instances",
            "flowbus.instance.compensating",
            status="compensating",
            error=cause.model_dump(mode="json"),
            steps=pending,
        )
        self.compensate_next()

    def compensate_next(self) -> None:
        """Run compensations newest first; external ones continue on their result."""
        comp = self.state.compensation
        assert comp is not None
        while comp.pending:
            step = self.step(comp.pending[0])
            assert step.compensate is not None
            done = self._run_compensation(step, step.compensate)
            if not done:
                return
        ending = comp.ending
        final = ending if ending is InstanceStatus.TIMED_OUT else InstanceStatus.COMPENSATED
        self.state.compensation = None
        self._finish(final, error=comp.cause)

    def _run_compensation(self, step: StepModel, compensation: Compensation) -> bool:
        s = self.state.steps[step.id]
        outcome = self.run_action(
            step,
            compensation.action,
            compensation.config,
            purpose="compensate",
            key=f"{self.state.id}:{step.id}:compensate:{s.attempt}",
        )
        if outcome is _PENDING:
            return False
        if isinstance(outcome, ErrorInfo):
            self.compensation_failed(step, outcome)
            return False
        self.compensated(step, outcome)
        return True

    def compensated(self, step: StepModel, output: Any) -> None:
        comp = self.state.compensation
        assert comp is not None
        assert comp.pending[0] == step.id
        comp.pending.pop(0)
        s = self.state.steps[step.id]
        s.status = StepStatus.COMPENSATED
        self.emit_step(step, "compensated", output=output)
        self.record(step, s.output)

    def compensation_failed(self, step: StepModel, error: ErrorInfo) -> None:
        comp = self.state.compensation
        assert comp is not None
        self.state.compensation = None
        failure = ErrorInfo(
            type="CompensationFailed",
            message=f"compensation of step {step.id!r} failed: {error.message}",
            step_id=step.id,
            details={
                "compensationError": error.model_dump(mode="json"),
                "cause": comp.cause.model_dump(mode="json") if comp.cause else None,
            },
        )
        self._finish(InstanceStatus.FAILED, error=failure)

    def _finish(
        self, status: InstanceStatus, *, output: Any = None, error: ErrorInfo | None = None
    ) -> None:
        state = self.state
        state.status = status
        if error is not None:
            state.error = error
        state.active.clear()
        state.deferred.clear()
        self._ready.clear()
        self.effects.append(CancelTimers(step_id=None))
        data: dict[str, Any] = {"status": status.value}
        if status is InstanceStatus.COMPLETED:
            data["output"] = output
        else:
            data["error"] = state.error.model_dump(mode="json") if state.error else None
        self.emit("instances", f"flowbus.instance.{status.value}", **data)
        if state.parent is not None:
            self.effects.append(
                NotifyParent(
                    parent_id=state.parent.instance_id,
                    step_id=state.parent.step_id,
                    child_id=state.id,
                    status=status.value,
                    output=state.output,
                    error=state.error.model_dump(mode="json") if state.error else None,
                )
            )

    # -- actions ------------------------------------------------------------------------

    def run_action(
        self,
        step: StepModel,
        action_name: str,
        config: Template,
        *,
        purpose: ActionPurpose,
        key: str,
    ) -> Any:
        """Run an action for `step`: returns its output, an `ErrorInfo`, or `_PENDING` when
        the shell runs it (the result arrives as an `ActionResult`)."""
        action = ACTIONS[action_name]
        scope = self.scope()
        try:
            rendered = config.render(scope)
        except ExpressionError as exc:
            return ErrorInfo(type="ExpressionError", message=str(exc), step_id=step.id)
        try:
            action.config_model.model_validate(rendered)
        except ValidationError as exc:
            return ErrorInfo(
                type="ActionConfigError", message=validation_message(exc), step_id=step.id
            )
        s = self.state.steps[step.id]
        attempt = s.attempt
        if self.definition.execution_log.level == "debug":
            self.state.steps[step.id].data["input"] = rendered
        if not action.inline:
            self.effects.append(
                RunAction(
                    step_id=step.id,
                    attempt=attempt,
                    action=action_name,
                    config=rendered,
                    idempotency_key=key,
                    purpose=purpose,
                    tries=s.tries if purpose == "step" else 1,
                )
            )
            return _PENDING
        context = ActionContext(
            instance_id=self.state.id,
            workflow_id=self.state.workflow_id,
            step_id=step.id,
            attempt=attempt,
            now=self.now,
            idempotency_key=key,
            new_event_id=self.next_published_id,
            tries=s.tries,
        )
        outcome = action.run_inline(rendered, context)
        too_large = self._check_inline(step, outcome)
        if too_large is not None:
            return too_large
        self.state.variables.update(outcome.variables)
        self.effects.extend(outcome.effects)
        return outcome.output

    def _check_inline(self, step: StepModel, outcome: InlineOutcome) -> ErrorInfo | None:
        """Bound what an inline action produced before any of it takes effect."""
        too_large = self.limits.check_output(step.id, outcome.output)
        if too_large is None and outcome.variables:
            merged = {**self.state.variables, **outcome.variables}
            too_large = self.limits.check_variables(step.id, merged)
        for effect in outcome.effects:
            if too_large is not None:
                break
            if isinstance(effect, PublishEvent):
                too_large = self.limits.check_event(step.id, effect.type, _published(effect))
        return too_large


_PENDING = object()


def _published(event: PublishEvent) -> dict[str, Any]:
    """What of a published event counts towards its size: all but the envelope."""
    return {
        "topic": event.topic,
        "key": event.key,
        "type": event.type,
        "subject": event.subject,
        "data": event.data,
    }


def validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
    )


def step_key(instance_id: str, step_id: str, execution: int) -> str:
    """The idempotency key of one execution of a step: the same on every retry of it.

    `<instance>:<step>` for the step's first execution, `<instance>:<step>:<n>` for its n-th
    (the workflow looped back to it, or an operator retried the instance).
    """
    key = f"{instance_id}:{step_id}"
    return key if execution == 1 else f"{key}:{execution}"


def _jittered(policy: RetryPolicy, attempt: int, seed: str) -> timedelta:
    """The backoff before `attempt`, spread deterministically (the engine has no randomness)."""
    base = policy.delay_before(attempt)
    if policy.jitter <= 0:
        return base
    digest = hashlib.sha256(seed.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    spread = 1 - policy.jitter + 2 * policy.jitter * fraction
    return base * spread


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
    def moment(self) -> datetime:
        return self._run.moment

    @property
    def instance_id(self) -> str:
        return self._run.state.id

    @property
    def state(self) -> StepState:
        return self._run.state.steps[self.step.id]

    @property
    def attempt(self) -> int:
        return self.state.attempt

    def scope(self) -> dict[str, Any]:
        return self._run.scope()

    def render(self, template: Template, extra: dict[str, Any] | None = None) -> Any:
        scope = self._run.scope()
        if extra:
            scope.update(extra)
        return template.render(scope)

    def complete(self, output: Any, *, next_step: str | Follow | None = Follow.NEXT) -> None:
        """Finish the step; continue at `next_step`, or by the step's `next` if not given.

        An output over the limits fails the step with `PayloadTooLarge` instead.
        """
        too_large = self._run.limits.check_output(self.step.id, output)
        if too_large is not None:
            self.fail(too_large)
            return
        target: str | None
        if isinstance(next_step, Follow):
            # The step's own transitions may test its output (steps.<own id>).
            self.state.output = output
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

    def fail_with(
        self, error_type: str, message: str, code: str | None = None, details: Any = None
    ) -> None:
        self.fail(
            ErrorInfo(
                type=error_type, message=message, code=code, step_id=self.step.id, details=details
            )
        )

    def wait(self) -> None:
        """The step now waits for an input from outside (timer, event, child, decision)."""
        self.state.status = StepStatus.WAITING

    def set_timer(self, kind: TimerKind, after: timedelta | datetime) -> None:
        self._run.set_timer(kind, after, self.step)

    def add_effect(self, effect: Effect) -> None:
        self._run.effects.append(effect)

    def emit(self, channel: Channel, type: str, **data: Any) -> None:
        self._run.emit(channel, type, stepId=self.step.id, **data)

    def run_action(self, action_name: str, config: Template) -> None:
        """Run the step's action: inline ones now, external ones through the shell."""
        outcome = self._run.run_action(
            self.step,
            action_name,
            config,
            purpose="step",
            key=step_key(self.instance_id, self.step.id, self.state.execution),
        )
        if outcome is _PENDING:
            return
        if isinstance(outcome, ErrorInfo):
            self.fail(outcome)
        else:
            self.complete(outcome)

    def start_branch(self, first_step_id: str) -> None:
        self._run.schedule(first_step_id)

    def cancel_branch(self, branch_id: str) -> None:
        """Stop a branch of this (parallel) step: its live steps and the ones queued."""
        run = self._run
        for step_id in list(run.state.active):
            if run.branch_of(step_id) == (self.step.id, branch_id):
                run.cancel_step(step_id)
        run.prune_ready()

    def output_of(self, step_id: str) -> Any:
        s = self._run.state.steps.get(step_id)
        return None if s is None or s.status is not StepStatus.COMPLETED else s.output
