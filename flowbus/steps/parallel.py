"""`parallel` steps: branches of nested steps that run at the same time.

`join: all` (default) continues when every branch has run to its end; `any` when the
first has; a number `n` when n have. Branches still running then are cancelled. A
branch fails when one of its steps fails without a handler; the parallel step then fails
with that error (for `any` / `n` only once the join can no longer be reached). The output
is `{branchId: {stepId: output, ...}, ...}` for the branches that completed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from flowbus.definitions.step import StepModel
from flowbus.definitions.types import DefinitionModel
from flowbus.steps.base import StepCall, StepType
from flowbus.steps.parsing import parse_steps

if TYPE_CHECKING:
    from flowbus.engine.state import ErrorInfo


class Branch(DefinitionModel):
    id: str = Field(min_length=1)
    steps: list[SerializeAsAny[StepModel]] = Field(min_length=1)

    @field_validator("steps", mode="before")
    @classmethod
    def _typed_steps(cls, value: Any) -> Any:
        return parse_steps(value) if isinstance(value, list) else value


class ParallelStepModel(StepModel):
    type: Literal["parallel"]
    branches_: list[Branch] = Field(alias="branches", min_length=1)
    join: Literal["all", "any"] | int = "all"

    @model_validator(mode="after")
    def _join_reachable(self) -> ParallelStepModel:
        if isinstance(self.join, int) and not 1 <= self.join <= len(self.branches_):
            raise ValueError(f"join: must be between 1 and {len(self.branches_)}")
        ids = [b.id for b in self.branches_]
        if len(set(ids)) != len(ids):
            raise ValueError("branches: branch ids must be unique")
        return self

    def branches(self) -> list[tuple[str, list[StepModel]]]:
        return [(b.id, list(b.steps)) for b in self.branches_]

    def needed(self) -> int:
        if self.join == "all":
            return len(self.branches_)
        if self.join == "any":
            return 1
        return self.join


class ParallelStep(StepType[ParallelStepModel]):
    name = "parallel"
    model = ParallelStepModel

    def enter(self, step: ParallelStepModel, call: StepCall) -> None:
        call.wait()
        call.state.data["branches"] = {b.id: "running" for b in step.branches_}
        for branch in step.branches_:
            call.start_branch(branch.steps[0].id)

    def on_branch_ended(
        self, step: ParallelStepModel, call: StepCall, branch_id: str, error: ErrorInfo | None
    ) -> None:
        status: dict[str, str] = call.state.data["branches"]
        if status.get(branch_id) != "running":
            return
        status[branch_id] = "failed" if error is not None else "completed"
        completed = [b for b, s in status.items() if s == "completed"]
        running = [b for b, s in status.items() if s == "running"]
        if len(completed) >= step.needed():
            self._stop(call, running, status)
            call.complete(
                {
                    b.id: {
                        s.id: call.output_of(s.id)
                        for s in b.steps
                        if call.output_of(s.id) is not None
                    }
                    for b in step.branches_
                    if status[b.id] == "completed"
                }
            )
        elif error is not None and len(completed) + len(running) < step.needed():
            self._stop(call, running, status)
            call.fail_with(
                error.type,
                f"branch {branch_id!r} failed: {error.message}",
                code=error.code,
                details={"branch": branch_id, "error": error.model_dump(mode="json")},
            )

    def on_cancel(self, step: ParallelStepModel, call: StepCall) -> None:
        status: dict[str, str] = call.state.data.get("branches", {})
        self._stop(call, [b for b, s in status.items() if s == "running"], status)

    @staticmethod
    def _stop(call: StepCall, branch_ids: list[str], status: dict[str, str]) -> None:
        for branch_id in branch_ids:
            status[branch_id] = "cancelled"
            call.cancel_branch(branch_id)
