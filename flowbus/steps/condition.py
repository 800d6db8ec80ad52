"""`condition` steps: choose the next step.

Either `next` transitions tried in order (first whose CEL condition holds wins, one
without a condition is the default), or one `condition` with `onTrue` / `onFalse`.
The step's output records which way it went.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import model_validator

from flowbus.definitions.model import StepModel
from flowbus.definitions.types import CelExpression
from flowbus.expressions import ExpressionError
from flowbus.steps.base import StepType

if TYPE_CHECKING:
    from flowbus.engine.run import StepCall


class ConditionStepModel(StepModel):
    type: Literal["condition"]
    condition: CelExpression | None = None
    on_true: str | None = None
    on_false: str | None = None

    @model_validator(mode="after")
    def _one_way_of_branching(self) -> ConditionStepModel:
        if self.condition is not None:
            if self.next is not None:
                raise ValueError("use either condition with onTrue/onFalse, or next, not both")
            if self.on_true is None and self.on_false is None:
                raise ValueError("condition needs onTrue and/or onFalse")
        elif not isinstance(self.next, list):
            raise ValueError("a condition step needs `condition` or a list of `next` transitions")
        return self

    def successor_ids(self) -> list[str]:
        targets = [t for t in (self.on_true, self.on_false) if t is not None]
        return targets + super().successor_ids()


class ConditionStep(StepType[ConditionStepModel]):
    name = "condition"
    model = ConditionStepModel

    def enter(self, step: ConditionStepModel, call: StepCall) -> None:
        if step.condition is None:
            call.complete(None)
            return
        try:
            outcome = step.condition.test(call.scope())
        except ExpressionError as exc:
            call.fail_with("ExpressionError", str(exc))
            return
        target = step.on_true if outcome else step.on_false
        call.complete({"result": outcome}, next_step=target)
