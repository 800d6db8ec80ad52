"""Code-first instances: the engine's side of `topics/sdk-protocol.md`.

The workflow's code runs in an SDK worker; flowbus keeps the state. Whenever the code
must run (the instance started, a wait ended, it is cancelled) the engine emits a
workflow task, `<instance>:<n>`, with the history of every step and wait the code reached
before. The worker answers with step checkpoints (`StepReported`) and one end of the task
(`TaskEnded`); only answers carrying the current task id apply, and none after the task
ended. Waits reuse the declarative machinery: a durable timer for `timer`, an event
subscription (with the early-event buffer) for `event`, a subflow for `child`.

A task nobody answers is sent again, with the same id, `limits.workflow_task_timeout`
after the last answer: its timer, when it fires early, only moves on to the new deadline.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from flowbus.definitions.types import Duration
from flowbus.engine.effects import (
    CancelChild,
    CancelTimers,
    Effect,
    RecordAttempt,
    SendWorkflowTask,
    SetTimer,
    StartChild,
    Subscribe,
    Unsubscribe,
)
from flowbus.engine.inputs import (
    ChildFinished,
    Command,
    EngineInput,
    EventReceived,
    StepReported,
    TaskEnded,
    TimerFired,
)
from flowbus.engine.run import Run
from flowbus.engine.state import (
    CodeFirstState,
    ErrorInfo,
    InstanceStatus,
    StepState,
    StepStatus,
)
from flowbus.times import parse_time, rfc3339

CHILD_NAMESPACE = uuid.UUID("7a0d5c1e-93b4-4f2a-b8e6-1c9d0f3a5e72")
CODE_STEP = "code"
"""The `stepType` of a code-first step in events and the step history."""
WAIT_TYPES = {"timer": "wait", "event": "wait", "child": "subflow", "approval": "approval"}
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)
_STEP_STATUS = {
    "started": StepStatus.RUNNING,
    "completed": StepStatus.COMPLETED,
    "failed": StepStatus.FAILED,
    "compensated": StepStatus.COMPENSATED,
    "compensation_failed": StepStatus.FAILED,
}


_OPEN = (StepStatus.RUNNING, StepStatus.WAITING)


class BadWait(ValueError):
    """A `waiting` result whose wait flowbus cannot set up; the instance is held."""


class CodeRun(Run):
    """One transition of a code-first instance."""

    @property
    def code(self) -> CodeFirstState:
        code = self.state.code
        assert code is not None, f"instance {self.state.id} is not code-first"
        return code

    def task_id(self) -> str:
        return f"{self.state.id}:{self.code.task}"

    # -- starting and tasks -------------------------------------------------------------

    def begin(self) -> None:
        self.state.code = CodeFirstState()
        if self.definition.timeout is not None:
            self.set_timer("workflow_timeout", self.definition.timeout)
        self.next_task("start")

    def next_task(self, reason: str) -> None:
        """Emit a new workflow task: the code runs from the start, replaying its history."""
        code = self.code
        code.task += 1
        code.reason = reason
        code.open = True
        code.held = None
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
            self._on_wait_ended(value.step_id, "event", value.event)
        elif isinstance(value, ChildFinished):
            self._on_child(value)
        elif isinstance(value, Command):
            self._on_command(value)

    def _on_step(self, report: StepReported) -> None:
        if not self._current(report.task_id):
            return
        code = self.code
        code.due = rfc3339(self.moment + self.limits.workflow_task_timeout)
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
        event = {
            "started": "started",
            "completed": "completed",
            "failed": "failed",
            "compensated": "compensated",
            "compensation_failed": "failed",
        }[report.status]
        if status is StepStatus.FAILED and report.status == "completed":
            event = "failed"
        extra: dict[str, Any] = {}
        if event in ("completed", "compensated"):
            extra["output"] = output
        elif event == "failed":
            extra["error"] = (error or _unknown_error(report.name)).model_dump(mode="json")
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
                entry["error"] = (error or _unknown_error(report.name)).model_dump(
                    mode="json", exclude={"step_id"}
                )
            self._remember(entry)

    def _remember(self, entry: dict[str, Any]) -> None:
        history = self.code.history
        for index, known in enumerate(history):
            if known["seq"] == entry["seq"]:
                history[index] = entry
                return
        history.append(entry)
        history.sort(key=lambda e: e["seq"])

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
        if ended.outcome == "nondeterministic":
            message = ended.error.message if ended.error else "the replay diverged"
            code.open = False
            code.held = "nondeterministic"
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
                code.held = "invalid_wait"
                self._held("invalid_wait", f"cannot wait: {exc}")

    def _held(self, reason: str, message: str) -> None:
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

    # -- waits --------------------------------------------------------------------------

    def _wait(self, wait: dict[str, Any]) -> None:
        """Set up the wait the task ended on; `BadWait` (nothing changed) if it cannot be."""
        kind, name, seq = wait.get("kind"), wait.get("name"), wait.get("seq")
        if kind not in WAIT_TYPES or not isinstance(name, str) or not isinstance(seq, int):
            raise BadWait("a wait needs kind (timer, event, child), name and seq")
        if kind == "approval":
            raise BadWait("approval waits of code-first workflows are not supported yet")
        code = self.code
        task = code.task
        effects: list[Effect] = []
        recorded = dict(wait)
        if kind == "timer":
            after = _duration(wait.get("duration"), "duration")
            effects.append(SetTimer("wait", self.moment + after, name, task))
        elif kind == "event":
            topic, match, event_type = wait.get("topic"), wait.get("match"), wait.get("type")
            if not isinstance(topic, str) or not isinstance(match, str):
                raise BadWait("an event wait needs topic and match")
            effects.append(
                Subscribe(
                    step_id=name,
                    attempt=task,
                    topic=topic,
                    event_type=event_type if isinstance(event_type, str) else None,
                    match=match,
                    key=str(wait.get("key")),
                )
            )
            if wait.get("timeout") is not None:
                after = _duration(wait.get("timeout"), "timeout")
                effects.append(SetTimer("wait_timeout", self.moment + after, name, task))
        else:
            workflow_id, version = wait.get("workflowId"), wait.get("version")
            if not isinstance(workflow_id, str):
                raise BadWait("a child wait needs workflowId")
            child_id = str(uuid.uuid5(CHILD_NAMESPACE, f"{self.state.id}/{name}/{task}"))
            recorded["childId"] = child_id
            effects.append(
                StartChild(
                    step_id=name,
                    attempt=task,
                    child_id=child_id,
                    workflow_id=workflow_id,
                    version=version if isinstance(version, int) else None,
                    input=wait.get("input"),
                )
            )
        code.wait = recorded
        self.state.steps[name] = StepState(
            status=StepStatus.WAITING, attempt=task, started_at=self.now
        )
        self._emit_step(name, WAIT_TYPES[kind], "started", task)
        self._record(name, WAIT_TYPES[kind], task, StepStatus.WAITING, self.now, None, None)
        self.state.status = InstanceStatus.WAITING
        self.effects.extend(effects)

    def _on_timer(self, timer: TimerFired) -> None:
        code = self.code
        if timer.kind == "task_timeout":
            if timer.attempt != code.task or not code.open or code.held is not None:
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
            self._on_wait_ended(timer.step_id, "timer", None)
        elif timer.kind == "wait_timeout":
            self._on_wait_ended(timer.step_id, "event", None, status="timed_out")

    def _on_child(self, finished: ChildFinished) -> None:
        wait = self.code.wait
        if wait is None or wait.get("childId") != finished.child_id:
            return
        result = {
            "instanceId": finished.child_id,
            "status": finished.status,
            "output": finished.output,
            "error": finished.error.model_dump(mode="json") if finished.error else None,
        }
        self._on_wait_ended(finished.step_id, "child", result)

    def _on_wait_ended(
        self, name: str | None, kind: str, result: Any, status: str = "completed"
    ) -> None:
        code = self.code
        wait = code.wait
        if wait is None or wait.get("name") != name or wait.get("kind") != kind:
            return
        assert name is not None
        self._stop_wait()
        step = self.state.steps[name]
        step.status = StepStatus.COMPLETED
        step.finished_at = self.now
        step.output = result
        self._emit_step(name, WAIT_TYPES[kind], "completed", step.attempt, output=result)
        self._record(
            name, WAIT_TYPES[kind], step.attempt, step.status, step.started_at, result, None
        )
        self._remember(
            {
                "kind": "wait",
                "name": name,
                "seq": wait["seq"],
                "waitKind": kind,
                "status": status,
                "result": result,
            }
        )
        self.next_task("resumed")

    def _stop_wait(self) -> None:
        wait = self.code.wait
        if wait is None:
            return
        self.code.wait = None
        name = wait["name"]
        self.effects.append(CancelTimers(step_id=name))
        if wait.get("kind") == "event":
            self.effects.append(Unsubscribe(step_id=name))
        elif wait.get("kind") == "child" and isinstance(wait.get("childId"), str):
            self.effects.append(CancelChild(child_id=wait["childId"]))

    # -- commands -----------------------------------------------------------------------

    def _on_command(self, command: Command) -> None:
        state, code = self.state, self.code
        if command.kind == "retry":
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

    # -- events and history -------------------------------------------------------------

    def _emit_step(self, name: str, step_type: str, kind: str, attempt: int, **data: Any) -> None:
        self.emit(
            "steps",
            f"flowbus.step.{kind}",
            stepId=name,
            stepType=step_type,
            attempt=attempt,
            **data,
        )

    def _record(
        self,
        name: str,
        step_type: str,
        attempt: int,
        status: StepStatus,
        started_at: str,
        output: Any,
        error: ErrorInfo | None,
    ) -> None:
        level = self.definition.execution_log.level
        if level == "error" and status is not StepStatus.FAILED:
            return
        self.effects.append(
            RecordAttempt(
                step_id=name,
                step_type=step_type,
                attempt=attempt,
                status=status.value,
                started_at=started_at,
                finished_at=None if status in _OPEN else self.now,
                input=None,
                output=output if level != "error" else None,
                error=error,
            )
        )


def _duration(value: Any, field: str) -> timedelta:
    try:
        return _DURATION.validate_python(value)
    except ValidationError:
        raise BadWait(f"{field}: {value!r} is not an ISO 8601 duration") from None


def _unknown_error(name: str) -> ErrorInfo:
    return ErrorInfo(type="Failed", message=f"step {name!r} failed", step_id=name)
