"""Code-first instances: the engine's side of `topics/sdk-protocol.md`.

The workflow's code runs in an SDK worker; flowbus keeps the state. Whenever the code
must run (the instance started, a wait ended, it is cancelled) the engine emits a
workflow task, `<instance>:<n>`, with the history of every step and wait the code reached
before. The worker answers with step checkpoints (`StepReported`) and one end of the task
(`TaskEnded`); only answers carrying the current task id apply, and none after the task
ended. Waits (`code_waits`) reuse the declarative machinery.

A task nobody answers is sent again, with the same id, `limits.workflow_task_timeout`
after the last answer: its timer, when it fires early, only moves on to the new deadline.

An instance flowbus cannot go on with is held (`CodeFirstState.held`, a
`flowbus.instance.held` event): the replay diverged (`nondeterministic`), no worker hosts
its version (`unsupported`: the task keeps being sent again until one answers), or the
code waits for something flowbus cannot set up (`invalid_wait`). An operator `retry`
sends a held instance a new task; a code-first instance that ended `failed` is not
retried (its compensations ran: replaying the history would reuse undone results).
"""

from __future__ import annotations

from typing import Any

from flowbus.engine.code_base import CODE_STEP, unknown_error
from flowbus.engine.code_waits import BadWait, CodeWaits
from flowbus.engine.effects import SendWorkflowTask, SetTimer
from flowbus.engine.inputs import (
    ApprovalDecision,
    ChildFinished,
    Command,
    EngineInput,
    EventReceived,
    StepReported,
    TaskEnded,
    TimerFired,
)
from flowbus.engine.state import (
    CodeFirstState,
    ErrorInfo,
    InstanceStatus,
    StepState,
    StepStatus,
)
from flowbus.times import parse_time, rfc3339

_STEP_STATUS = {
    "started": StepStatus.RUNNING,
    "completed": StepStatus.COMPLETED,
    "failed": StepStatus.FAILED,
    "compensated": StepStatus.COMPENSATED,
    "compensation_failed": StepStatus.FAILED,
}
_STEP_EVENT = {
    "started": "started",
    "completed": "completed",
    "failed": "failed",
    "compensated": "compensated",
    "compensation_failed": "failed",
}
_APPROVAL_TIMERS = ("deadline", "reminder")


class CodeRun(CodeWaits):
    """One transition of a code-first instance."""

    # -- starting and tasks -------------------------------------------------------------

    def begin(self) -> None:
        self.state.code = CodeFirstState()
        if self.definition.timeout is not None:
            self.set_timer("workflow_timeout", self.definition.timeout)
        self.next_task("start")

    def next_task(self, reason: str) -> None:
        code = self.code
        code.task += 1
        code.reason = reason
        code.open = True
        self._unhold()
        self.state.status = InstanceStatus.RUNNING
        self._send_task()

    def _send_task(self) -> None:
        code = self.code
        due = self.moment + self.limits.workflow_task_timeout
        code.due = rfc3339(due)
        self.effects.append(
            SendWorkflowTask(
                id=self.next_published_id(),
                time=self.now,
                data={
                    "taskId": self.task_id(),
                    "instanceId": self.state.id,
                    "workflowId": self.state.workflow_id,
                    "version": self.state.version,
                    "input": self.state.input,
                    "startedAt": self.state.created_at,
                    "now": self.now,
                    "reason": code.reason,
                    "history": list(code.history),
                },
            )
        )
        self.effects.append(SetTimer(kind="task_timeout", due_at=due, attempt=code.task))

    def _current(self, task_id: str) -> bool:
        return self.code.open and task_id == self.task_id()

    # -- inputs -------------------------------------------------------------------------

    def on_input(self, value: EngineInput) -> None:
        if isinstance(value, StepReported):
            self._on_step(value)
        elif isinstance(value, TaskEnded):
            self._on_task_ended(value)
        elif isinstance(value, TimerFired):
            self._on_timer(value)
        elif isinstance(value, EventReceived):
            self.end_wait(value.step_id, "event", value.event)
        elif isinstance(value, ChildFinished):
            self._on_child(value)
        elif isinstance(value, ApprovalDecision):
            self._on_decision(value)
        elif isinstance(value, Command):
            self._on_command(value)

    def _on_step(self, report: StepReported) -> None:
        if not self._current(report.task_id):
            return
        code = self.code
        code.due = rfc3339(self.moment + self.limits.workflow_task_timeout)
        self._unhold("unsupported")
        previous = self.state.steps.get(report.name)
        started_at = self.now
        if previous is not None and previous.attempt == report.attempt:
            started_at = previous.started_at
        status = _STEP_STATUS[report.status]
        finished = None if status is StepStatus.RUNNING else self.now
        error = report.error
        if error is not None and error.step_id is None:
            error = error.model_copy(update={"step_id": report.name})
        output = report.result if report.status in ("completed", "compensated") else None
        if report.status == "completed":
            too_large = self.limits.check_output(report.name, output)
            if too_large is not None:
                status, error, output = StepStatus.FAILED, too_large, None
        self.state.steps[report.name] = StepState(
            status=status,
            attempt=report.attempt,
            started_at=started_at,
            finished_at=finished,
            output=output if status is StepStatus.COMPLETED else None,
            error=error,
            data={"seq": report.seq, "optional": report.optional},
        )
        if report.status in ("compensated", "compensation_failed"):
            self._compensating()
        event = _STEP_EVENT[report.status]
        if status is StepStatus.FAILED and report.status == "completed":
            event = "failed"
        extra: dict[str, Any] = {}
        if event in ("completed", "compensated"):
            extra["output"] = output
        elif event == "failed":
            extra["error"] = (error or unknown_error(report.name)).model_dump(mode="json")
        self._emit_step(report.name, CODE_STEP, event, report.attempt, **extra)
        self._record(report.name, CODE_STEP, report.attempt, status, started_at, output, error)
        if report.status in ("completed", "failed") or status is StepStatus.FAILED:
            entry: dict[str, Any] = {
                "kind": "step",
                "name": report.name,
                "seq": report.seq,
                "status": status.value,
            }
            if status is StepStatus.COMPLETED:
                entry["result"] = output
            else:
                entry["error"] = (error or unknown_error(report.name)).model_dump(
                    mode="json", exclude={"step_id"}
                )
            self._remember(entry)

    def _compensating(self) -> None:
        if self.state.status is InstanceStatus.COMPENSATING:
            return
        cause = self.state.error or ErrorInfo(type="Failed", message="the workflow failed")
        self.state.status = InstanceStatus.COMPENSATING
        self.state.error = cause
        self.emit(
            "instances",
            "flowbus.instance.compensating",
            status="compensating",
            error=cause.model_dump(mode="json"),
            steps=[],
        )

    def _on_task_ended(self, ended: TaskEnded) -> None:
        if not self._current(ended.task_id):
            return
        code = self.code
        if ended.outcome == "unsupported":
            message = ended.error.message if ended.error else "no worker hosts this version"
            where = f"v{self.state.version} of {self.state.workflow_id}"
            code.due = rfc3339(self.moment + self.limits.workflow_task_timeout)
            self._held("unsupported", f"{where}: {message}")
            return
        self._unhold("unsupported")
        if ended.outcome == "nondeterministic":
            message = ended.error.message if ended.error else "the replay diverged"
            code.open = False
            self._held("nondeterministic", message)
            return
        code.open = False
        if ended.outcome == "completed":
            self._finish_code(InstanceStatus.COMPLETED, output=ended.output)
        elif ended.outcome == "failed":
            error = ended.error or ErrorInfo(type="Failed", message="the workflow failed")
            if self.state.status is InstanceStatus.COMPENSATING and self.state.error is not None:
                error = self.state.error if ended.error is None else ended.error
            self._finish_code(InstanceStatus.FAILED, error=error)
        elif ended.outcome == "compensated":
            self._compensating()
            ending = code.ending or InstanceStatus.COMPENSATED
            final = ending if ending is InstanceStatus.TIMED_OUT else InstanceStatus.COMPENSATED
            self._finish_code(final, error=ended.error or self.state.error)
        else:
            try:
                self._wait(ended.wait or {})
            except BadWait as exc:
                self._held("invalid_wait", f"cannot wait: {exc}")

    def _held(self, reason: str, message: str) -> None:
        """Hold the instance: say why in its state and in a `flowbus.instance.held` event
        (again when the reason or message changes, not for every resent task)."""
        code = self.code
        if (code.held, code.held_message) == (reason, message):
            return
        if code.held != reason:
            code.held_since = self.now
        code.held, code.held_message = reason, message
        self.emit(
            "instances",
            "flowbus.instance.held",
            status=self.state.status.value,
            reason=reason,
            message=message,
            taskId=self.task_id(),
        )

    def _finish_code(
        self, status: InstanceStatus, *, output: Any = None, error: ErrorInfo | None = None
    ) -> None:
        if status is InstanceStatus.COMPLETED:
            too_large = self.limits.check_event(None, "flowbus.instance.completed", output)
            if too_large is not None:
                status, error, output = InstanceStatus.FAILED, too_large, None
            else:
                self.state.output = output
        self._stop_wait()
        self._finish(status, output=output, error=error)

    # -- commands -----------------------------------------------------------------------

    def _unhold(self, only: str | None = None) -> None:
        """The instance is no longer held (only if held for `only`, when given)."""
        code = self.code
        if only is None or code.held == only:
            code.held = code.held_message = code.held_since = None

    # -- timers -------------------------------------------------------------------------

    def _on_timer(self, timer: TimerFired) -> None:
        code = self.code
        if timer.kind == "task_timeout":
            if timer.attempt != code.task or not code.open:
                return
            if code.held not in (None, "unsupported"):
                return
            due = parse_time(code.due) if code.due else self.moment
            if self.moment >= due:
                self._send_task()
            else:
                self.effects.append(SetTimer(kind="task_timeout", due_at=due, attempt=code.task))
            return
        if timer.kind == "workflow_timeout":
            if self.state.status is not InstanceStatus.COMPENSATING:
                self._end_by("timeout", InstanceStatus.TIMED_OUT)
            return
        if timer.attempt != code.task:
            return
        if timer.kind == "wait":
            self.end_wait(timer.step_id, "timer", None)
        elif timer.kind == "wait_timeout":
            self.end_wait(timer.step_id, "event", None, status="timed_out")
        elif timer.kind in _APPROVAL_TIMERS:
            self._on_approval_timer(timer)

    # -- commands -----------------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        state, code = self.state, self.code
        if command.kind == "retry":
            # Final instances never get here: `retry` of a failed code-first one is refused.
            if code.held is not None and not state.status.is_final:
                self.next_task("resumed")
            return
        if command.kind == "cancel" and state.status is not InstanceStatus.COMPENSATING:
            if command.compensate:
                self._end_by(command.reason or "cancelled by command", InstanceStatus.CANCELLED)
            else:
                code.open = False
                reason = command.reason or "cancelled by command"
                cause = ErrorInfo(type="Cancelled", message=reason)
                self._finish_code(InstanceStatus.CANCELLED, error=cause)
            return
        if command.kind == "pause" and state.status in (
            InstanceStatus.RUNNING,
            InstanceStatus.WAITING,
        ):
            state.status = InstanceStatus.PAUSED
            self.emit("instances", "flowbus.instance.paused", status="paused", by=command.by)
        elif command.kind == "resume" and state.status is InstanceStatus.PAUSED:
            state.status = InstanceStatus.WAITING if code.wait else InstanceStatus.RUNNING
            self.emit("instances", "flowbus.instance.resumed", status="running", by=command.by)

    def _end_by(self, reason: str, ending: InstanceStatus) -> None:
        """Ask the worker to run the compensations (a `cancel` task), then end."""
        self._stop_wait()
        if ending is InstanceStatus.TIMED_OUT:
            cause = ErrorInfo(
                type="TimeoutError", message=f"workflow timeout {self.definition.timeout} elapsed"
            )
        else:
            cause = ErrorInfo(type="Cancelled", message=reason)
        self.state.error = cause
        self.code.ending = ending
        self._compensating()
        self.next_task("cancel")
        self.state.status = InstanceStatus.COMPENSATING
