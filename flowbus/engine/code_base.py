"""What every part of a code-first transition shares: the instance's code-first state,
the current task id, the step events and step history rows, and the replay history the
next workflow task carries."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import RecordAttempt
from flowbus.engine.run import Run
from flowbus.engine.state import CodeFirstState, ErrorInfo, StepStatus

CODE_STEP = "code"
"""The `stepType` of a code-first step in events and the step history."""
WAIT_TYPES = {"timer": "wait", "event": "wait", "child": "subflow", "approval": "approval"}
"""The `stepType` a wait of each kind is recorded and reported with."""

_OPEN = (StepStatus.RUNNING, StepStatus.WAITING)


class CodeBase(Run):
    """A transition of a code-first instance: the state and records every part uses."""

    @property
    def code(self) -> CodeFirstState:
        code = self.state.code
        assert code is not None, f"instance {self.state.id} is not code-first"
        return code

    def task_id(self) -> str:
        return f"{self.state.id}:{self.code.task}"

    def next_task(self, reason: str) -> None:
        """Emit a new workflow task: the code runs from the start, replaying its history."""
        raise NotImplementedError

    def _remember(self, entry: dict[str, Any]) -> None:
        """Put `entry` into the replay history at its `seq` (replacing one already there)."""
        history = self.code.history
        for index, known in enumerate(history):
            if known["seq"] == entry["seq"]:
                history[index] = entry
                return
        history.append(entry)
        history.sort(key=lambda e: e["seq"])

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


def unknown_error(name: str) -> ErrorInfo:
    return ErrorInfo(type="Failed", message=f"step {name!r} failed", step_id=name)
