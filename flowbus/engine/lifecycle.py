"""How an instance ends: completed, failed, cancelled, timed out, or retried after
failing; the saga that undoes completed steps, newest first, before it ends; and the
workflow-level onFailure applied after it (`flowbus/definitions/failure.py`)."""

from __future__ import annotations

from typing import Any

from flowbus.definitions.step import Compensation, StepModel
from flowbus.engine.actions import PENDING, run_action
from flowbus.engine.effects import CancelTimers, NotifyParent, StartChild
from flowbus.engine.ids import failure_workflow_id
from flowbus.engine.state import (
    Compensating,
    ErrorInfo,
    FailurePath,
    FailureWorkflow,
    InstanceStatus,
    StepState,
    StepStatus,
)
from flowbus.engine.working import WorkingCopy
from flowbus.expressions import ExpressionError

FAILURE_WORKFLOW_STEP = "$onFailure"
"""The parent step a failure workflow instance names: no step id can take this form."""


class Lifecycle(WorkingCopy):
    """The whole instance's part of a transition."""

    def complete_instance(self) -> None:
        path = self.state.failure_path
        if path is not None:
            # The failure path ran to its end: the instance ends as the failure left it.
            self._finish(path.ending, error=path.error, failed=True)
            return
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
        if self.state.failure_path is not None:
            # The failure path itself failed: no second saga, no second path.
            self._finish(InstanceStatus.FAILED, error=error)
            return
        handler = self.definition.on_failure
        if handler is not None and handler.action == "continue" and error.step_id is not None:
            target = handler.route(error.type, error.code)
            if target is not None:
                self.state.status = InstanceStatus.RUNNING
                self.schedule(target)
                return
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
        state.failure_path = None
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
        self._finish(final, error=comp.cause, failed=ending is InstanceStatus.FAILED)

    def _run_compensation(self, step: StepModel, compensation: Compensation) -> bool:
        s = self.state.steps[step.id]
        outcome = run_action(
            self,
            step,
            compensation.action,
            compensation.config,
            purpose="compensate",
            key=f"{self.state.id}:{step.id}:compensate:{s.attempt}",
        )
        if outcome is PENDING:
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
        self,
        status: InstanceStatus,
        *,
        output: Any = None,
        error: ErrorInfo | None = None,
        failed: bool = False,
    ) -> None:
        """End the instance; `failed`: it ends because it failed (compensated or not), so
        the workflow-level onFailure applies."""
        failed = failed or status is InstanceStatus.FAILED
        if failed and self._take_failure_path(status, error):
            return
        state = self.state
        state.status = status
        if error is not None:
            state.error = error
        state.active.clear()
        state.deferred.clear()
        self._ready.clear()
        self._skip_pending()
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
                    error=state.error,
                )
            )
        if failed:
            self._start_failure_workflow(status)

    # -- the workflow-level onFailure ---------------------------------------------------

    def _take_failure_path(self, ending: InstanceStatus, error: ErrorInfo | None) -> bool:
        """Run the onFailure path (after compensation) instead of ending now, if a step's
        failure routes to one and none ran yet."""
        handler = self.definition.on_failure
        cause = error or self.state.error
        if handler is None or self.state.failure_path is not None or cause is None:
            return False
        if cause.step_id is None:
            return False
        target = handler.route(cause.type, cause.code)
        if target is None:
            return False
        self.state.failure_path = FailurePath(ending=ending, error=cause)
        self.state.error = cause
        self.state.status = InstanceStatus.RUNNING
        self.schedule(target)
        return True

    def _start_failure_workflow(self, status: InstanceStatus) -> None:
        handler = self.definition.on_failure
        state = self.state
        if handler is None or handler.workflow is None:
            return
        if state.parent is not None and state.parent.step_id == FAILURE_WORKFLOW_STEP:
            return  # a failure workflow's own failure starts no other one
        child_id = failure_workflow_id(state.id, state.seq)
        state.failure_workflow = FailureWorkflow(instance_id=child_id, workflow_id=handler.workflow)
        failed = {
            "instanceId": state.id,
            "workflowId": state.workflow_id,
            "workflowVersion": state.version,
            "status": status.value,
            "error": state.error.model_dump(mode="json") if state.error else None,
            "input": state.input,
            "variables": state.variables,
            "correlationId": state.correlation_id,
        }
        self.effects.append(
            StartChild(
                step_id=FAILURE_WORKFLOW_STEP,
                attempt=1,
                child_id=child_id,
                workflow_id=handler.workflow,
                version=handler.version,
                input=failed,
            )
        )

    # -- steps that never ran -----------------------------------------------------------

    def skip(self, step_id: str, *, by: str | None) -> None:
        """Mark a step that has no state yet (or is only pending) as not taken."""
        current = self.state.steps.get(step_id)
        if current is not None and current.status is not StepStatus.PENDING:
            return
        self.state.steps[step_id] = StepState(
            status=StepStatus.SKIPPED,
            attempt=0,
            tries=0,
            execution=0,
            started_at=self.now,
            finished_at=self.now,
        )
        self.emit_step(self.step(step_id), "skipped", skippedBy=by)

    def mark_pending(self, step_id: str) -> None:
        """A step came due but does not start yet: pending, unless it ran before (its state
        then stays that of its latest attempt, which compensation and `steps.<id>` read)."""
        current = self.state.steps.get(step_id)
        if current is not None and current.status is not StepStatus.SKIPPED:
            return
        self.state.steps[step_id] = StepState(
            status=StepStatus.PENDING, attempt=0, tries=0, execution=0, started_at=self.now
        )

    def _skip_pending(self) -> None:
        for step_id, s in list(self.state.steps.items()):
            if s.status is StepStatus.PENDING:
                self.skip(step_id, by=None)
