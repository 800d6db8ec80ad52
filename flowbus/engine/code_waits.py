"""The waits of code-first instances, on the declarative machinery: a durable timer for
`timer`, an event subscription (with the early-event buffer) for `event`, a subflow for
`child`, and the `approval` step's requests and decisions for `approval`. When a wait
ends it enters the replay history with what ended it, and the next workflow task goes
out."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from flowbus.definitions.types import Duration
from flowbus.engine.code_approval import (
    APPROVAL,
    InvalidApproval,
    WaitCall,
    approval_model,
)
from flowbus.engine.code_base import WAIT_TYPES, CodeBase
from flowbus.engine.effects import (
    CancelChild,
    CancelTimers,
    Effect,
    SetTimer,
    StartChild,
    Subscribe,
    Unsubscribe,
)
from flowbus.engine.inputs import ApprovalDecision, ChildFinished, TimerFired
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepState, StepStatus
from flowbus.steps.approval import refuse

CHILD_NAMESPACE = uuid.UUID("7a0d5c1e-93b4-4f2a-b8e6-1c9d0f3a5e72")
_DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


class BadWait(ValueError):
    """A `waiting` result whose wait flowbus cannot set up; the instance is held."""


class CodeWaits(CodeBase):
    """Setting up, ending and stopping the wait a code-first instance is in."""

    def _wait(self, wait: dict[str, Any]) -> None:
        """Set up the wait the task ended on; `BadWait` (nothing changed) if it cannot be."""
        kind, name, seq = wait.get("kind"), wait.get("name"), wait.get("seq")
        if kind not in WAIT_TYPES or not isinstance(name, str) or not isinstance(seq, int):
            raise BadWait("a wait needs kind (timer, event, approval, child), name and seq")
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
        elif kind == "approval":
            try:
                approval_model(name, wait)
            except InvalidApproval as exc:
                raise BadWait(f"an approval wait needs assignees: {exc}") from None
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
        if kind == "approval":
            APPROVAL.enter(approval_model(name, wait), self._approval_call(recorded))

    def _approval_call(self, wait: dict[str, Any]) -> WaitCall:
        name = wait["name"]
        return WaitCall(self, name, approval_model(name, wait), wait.get("summary"))

    def _open_approval(self, name: str | None) -> dict[str, Any] | None:
        wait = self.code.wait
        if wait is None or wait.get("kind") != "approval" or wait.get("name") != name:
            return None
        return wait

    def _on_decision(self, decision: ApprovalDecision) -> None:
        wait = self._open_approval(decision.step_id)
        if wait is None or self.state.status is InstanceStatus.COMPENSATING:
            refuse(WaitCall(self, decision.step_id, None), decision, "unknown or closed approval")
            return
        call = self._approval_call(wait)
        APPROVAL.on_decision(approval_model(wait["name"], wait), call, decision)

    def _on_approval_timer(self, timer: TimerFired) -> None:
        wait = self._open_approval(timer.step_id)
        if wait is not None:
            call = self._approval_call(wait)
            APPROVAL.on_timer(approval_model(wait["name"], wait), call, timer.kind)

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
        self.end_wait(finished.step_id, "child", result)

    def end_wait(
        self,
        name: str | None,
        kind: str,
        result: Any,
        status: str = "completed",
        error: ErrorInfo | None = None,
    ) -> None:
        """The wait `name` of `kind` ended with `result` (or failed with `error`): record
        it in the history and send the next task."""
        code = self.code
        wait = code.wait
        if wait is None or wait.get("name") != name or wait.get("kind") != kind:
            return
        assert name is not None
        self._stop_wait(ended=True)
        step = self.state.steps[name]
        step.finished_at = self.now
        entry: dict[str, Any] = {
            "kind": "wait",
            "name": name,
            "seq": wait["seq"],
            "waitKind": kind,
            "status": status,
            "result": result,
        }
        step_type = WAIT_TYPES[kind]
        if error is None:
            step.status, step.output = StepStatus.COMPLETED, result
            self._emit_step(name, step_type, "completed", step.attempt, output=result)
        else:
            step.status, step.error = StepStatus.FAILED, error
            entry["status"] = "failed"
            entry["error"] = error.model_dump(mode="json", exclude={"step_id"})
            self._emit_step(
                name, step_type, "failed", step.attempt, error=error.model_dump(mode="json")
            )
        self._record(
            name, step_type, step.attempt, step.status, step.started_at, step.output, error
        )
        self._remember(entry)
        self.next_task("resumed")

    def _stop_wait(self, *, ended: bool = False) -> None:
        """Leave the current wait: cancel its timers and what it started; an approval
        stopped before it was decided is closed as cancelled."""
        wait = self.code.wait
        if wait is None:
            return
        name = wait["name"]
        if wait.get("kind") == "approval" and not ended:
            APPROVAL.on_cancel(approval_model(name, wait), self._approval_call(wait))
        self.code.wait = None
        self.effects.append(CancelTimers(step_id=name))
        if wait.get("kind") == "event":
            self.effects.append(Unsubscribe(step_id=name))
        elif wait.get("kind") == "child" and isinstance(wait.get("childId"), str):
            self.effects.append(CancelChild(child_id=wait["childId"]))


def _duration(value: Any, field: str) -> timedelta:
    try:
        return _DURATION.validate_python(value)
    except ValidationError:
        raise BadWait(f"{field}: {value!r} is not an ISO 8601 duration") from None
