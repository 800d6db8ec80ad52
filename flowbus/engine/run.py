"""One engine transition in progress: steps entered until each waits, left when they
complete or fail (with retries and failure routing), and `EngineCall`, the `StepCall`
through which step types act on the instance."""

from __future__ import annotations

import hashlib
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from flowbus.definitions.step import DEFAULT_RETRY, RetryPolicy, StepModel
from flowbus.engine.actions import PENDING, run_action
from flowbus.engine.effects import Channel, Effect, TimerKind
from flowbus.engine.ids import step_key
from flowbus.engine.lifecycle import Lifecycle
from flowbus.engine.limits import PAYLOAD_TOO_LARGE
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepState, StepStatus
from flowbus.engine.working import LIVE
from flowbus.expressions import ExpressionError, Template
from flowbus.steps.base import Follow

MAX_STEPS_PER_TRANSITION = 10_000
# Errors in the definition itself: running the step again cannot fix them.
NOT_RETRIED = frozenset({"ExpressionError", "ActionConfigError"})


class Run(Lifecycle):
    """The working copy of one transition, stepping through the definition."""

    def call(self, step: StepModel) -> EngineCall:
        return EngineCall(self, step)

    # -- entering steps -----------------------------------------------------------------

    def drain(self) -> None:
        """Enter ready steps until every active step waits on something outside."""
        entered = 0
        while self._ready and not self.state.status.is_final:
            if self.state.status is InstanceStatus.PAUSED:
                for due in self._ready:
                    self.mark_pending(due)
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
            if s is None or s.status not in LIVE:
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

    def complete_step(self, step: StepModel, output: Any, next_step: str | None) -> None:
        s = self.leave(step, StepStatus.COMPLETED)
        s.output = output
        self.state.completed.append(step.id)
        self.emit_step(step, "completed", output=output)
        self.record(step, output)
        self._skip_alternatives(step, next_step)
        self._continue(step, next_step)

    def _skip_alternatives(self, step: StepModel, chosen: str | None) -> None:
        """A completed step's successors that it did not choose, that have not run, and
        that the chosen path cannot lead to are skipped (only those: steps further on are
        left as they are)."""
        routes = step.successor_ids()
        if len(routes) < 2:
            return
        on_failure: set[str] = set()
        handler = step.on_failure
        if handler is not None:
            if handler.next_step_id is not None:
                on_failure.add(handler.next_step_id)
            if handler.error_handler is not None:
                on_failure.update(c.next_step_id for c in handler.error_handler.conditions)
        ahead = self._reachable_from(chosen)
        for target in dict.fromkeys(routes):
            if target not in ahead and target not in on_failure:
                self.skip(target, by=step.id)

    def _reachable_from(self, step_id: str | None) -> set[str]:
        seen: set[str] = set()
        frontier = [] if step_id is None else [step_id]
        while frontier:
            current = frontier.pop()
            if current not in seen:
                seen.add(current)
                frontier.extend(self.step(current).successor_ids())
        return seen

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
        s = self.leave(step, StepStatus.FAILED)
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

    def _branch_ended(self, branch: tuple[str, str], error: ErrorInfo | None) -> None:
        parallel_id, branch_id = branch
        parallel = self.step(parallel_id)
        s = self.state.steps.get(parallel_id)
        if s is None or s.status not in LIVE:
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


def _jittered(policy: RetryPolicy, attempt: int, seed: str) -> timedelta:
    """The backoff before `attempt`, spread deterministically (the engine has no randomness)."""
    base = policy.delay_before(attempt)
    if policy.jitter <= 0:
        return base
    digest = hashlib.sha256(seed.encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    spread = 1 - policy.jitter + 2 * policy.jitter * fraction
    return base * spread


class EngineCall:
    """The engine's `StepCall`: what a step type does while it handles an input, done
    to the run."""

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
        outcome = run_action(
            self._run,
            self.step,
            action_name,
            config,
            purpose="step",
            key=step_key(self.instance_id, self.step.id, self.state.execution),
        )
        if outcome is PENDING:
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
