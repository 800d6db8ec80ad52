"""Approval waits of code-first instances, on the `approval` step's own machinery.

`await ctx.approval(...)` ends its task waiting for `{"kind": "approval", "assignees",
"quorum", "deadline", "summary"}`. The engine reads that as an `approval` step (id = the
wait's name) and lets `ApprovalStep` run it through `WaitCall`, this module's `StepCall`:
the same `flowbus.approval.*` events, approvals table rows, signed decisions, quorum,
deadlines, reminders and refusals as a declarative approval. Where the step would
complete or fail, the wait ends instead: approved, with the step's output
`{"approved": true, "decisions": [...]}` as its result; rejected or expired, failed with
`ApprovalRejected` (its `details` the same document, which is also the history entry's
`result`), so the code's `ctx.approval` raises.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from flowbus.definitions.step import StepModel
from flowbus.engine.effects import Channel, Effect, TimerKind
from flowbus.engine.state import ErrorInfo, StepState, StepStatus
from flowbus.expressions import Template
from flowbus.steps.approval import ApprovalStep, ApprovalStepModel
from flowbus.steps.base import Follow

if TYPE_CHECKING:
    from flowbus.engine.code_waits import CodeWaits

APPROVAL = ApprovalStep()
SPEC_FIELDS = ("assignees", "quorum", "deadline")


class InvalidApproval(ValueError):
    """The wait's fields do not make an approval."""


def approval_model(name: str, wait: dict[str, Any]) -> ApprovalStepModel:
    """The `approval` step an approval wait stands for (its summary is plain text)."""
    spec: dict[str, Any] = {"id": "approval", "type": "approval"}
    spec.update({field: wait[field] for field in SPEC_FIELDS if wait.get(field) is not None})
    if wait.get("summary") is not None:
        spec["summary"] = "-"  # shown as the code sent it: `WaitCall.render` returns that
    try:
        model = ApprovalStepModel.model_validate(spec)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'approval'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidApproval(problems) from None
    return model.model_copy(update={"id": name})


class WaitCall:
    """The `StepCall` an approval wait's `ApprovalStep` acts through."""

    __slots__ = ("_model", "_name", "_run", "_summary")

    def __init__(
        self, run: CodeWaits, name: str, model: ApprovalStepModel | None, summary: Any = None
    ) -> None:
        self._run = run
        self._name = name
        self._model = model
        self._summary = summary

    @property
    def step(self) -> StepModel:
        assert self._model is not None, "a stale decision's call has no step"
        return self._model

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
        return self._run.state.steps[self._name]

    @property
    def attempt(self) -> int:
        return self.state.attempt

    def scope(self) -> dict[str, Any]:
        return self._run.scope()

    def render(self, template: Template, extra: dict[str, Any] | None = None) -> Any:
        # The code passes its summary as text, already what the approvers are shown.
        return self._summary

    def complete(self, output: Any, *, next_step: str | Follow | None = Follow.NEXT) -> None:
        self._run.end_wait(self._name, "approval", output)

    def fail(self, error: ErrorInfo) -> None:
        self._run.end_wait(self._name, "approval", error.details, error=error)

    def fail_with(
        self, error_type: str, message: str, code: str | None = None, details: Any = None
    ) -> None:
        self.fail(
            ErrorInfo(
                type=error_type, message=message, code=code, step_id=self._name, details=details
            )
        )

    def wait(self) -> None:
        self.state.status = StepStatus.WAITING

    def set_timer(self, kind: TimerKind, after: timedelta | datetime) -> None:
        self._run.set_timer(kind, after, self.step)

    def add_effect(self, effect: Effect) -> None:
        self._run.effects.append(effect)

    def emit(self, channel: Channel, type: str, **data: Any) -> None:
        self._run.emit(channel, type, stepId=self._name, **data)

    def run_action(self, action_name: str, config: Template) -> None:
        raise NotImplementedError("an approval wait runs no action")

    def start_branch(self, first_step_id: str) -> None:
        raise NotImplementedError("an approval wait has no branches")

    def cancel_branch(self, branch_id: str) -> None:
        raise NotImplementedError("an approval wait has no branches")

    def output_of(self, step_id: str) -> Any:
        return None
