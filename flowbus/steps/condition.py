"""`condition` steps: choose the next step.

Three ways to say it: `next` transitions tried in order (first whose CEL condition holds
wins, one without a condition is the default); one CEL `condition` with `onTrue` /
`onFalse`; or structured `rules` (`{field, operator, value}`, combined by `match: all|any`)
with `onTrue` / `onFalse`. The step's output records the result.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from flowbus.definitions.step import StepModel
from flowbus.definitions.types import CelExpression, DefinitionModel, QueryPath
from flowbus.expressions import ExpressionError, PathError
from flowbus.steps.base import StepCall, StepType

Operator = Literal[
    "equals", "not_equals", "contains", "gt", "gte", "lt", "lte", "in", "exists", "matches"
]
_NUMBER = (int, float)


class Rule(DefinitionModel):
    """`field` (a path over input, variables, steps, trigger) compared with `value`."""

    field: QueryPath
    operator: Operator
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Rule:
        if self.operator in ("gt", "gte", "lt", "lte") and not _is_number(self.value):
            raise ValueError(f"value: {self.operator} needs a number")
        if self.operator == "in" and not isinstance(self.value, list):
            raise ValueError("value: in needs a list")
        if self.operator == "exists" and not isinstance(self.value, bool | None):
            raise ValueError("value: exists takes true or false")
        if self.operator == "matches":
            if not isinstance(self.value, str):
                raise ValueError("value: matches needs a regular expression")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value: not a regular expression: {exc}") from None
        return self

    def test(self, scope: dict[str, Any]) -> bool:
        actual = self.field.search(scope)
        expected = self.value
        match self.operator:
            case "exists":
                return (actual is not None) is (expected is not False)
            case "equals":
                return bool(actual == expected)
            case "not_equals":
                return bool(actual != expected)
            case "contains":
                if isinstance(actual, str) and isinstance(expected, str):
                    return expected in actual
                return isinstance(actual, list) and expected in actual
            case "in":
                return actual in expected
            case "matches":
                return isinstance(actual, str) and re.search(expected, actual) is not None
        if not _is_number(actual):
            return False
        match self.operator:
            case "gt":
                return bool(actual > expected)
            case "gte":
                return bool(actual >= expected)
            case "lt":
                return bool(actual < expected)
            case _:
                return bool(actual <= expected)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


class ConditionStepModel(StepModel):
    type: Literal["condition"]
    condition: CelExpression | None = None
    rules: list[Rule] | None = Field(None, min_length=1)
    match: Literal["all", "any"] = "all"
    on_true: str | None = None
    on_false: str | None = None

    @model_validator(mode="after")
    def _one_way_of_branching(self) -> ConditionStepModel:
        if self.condition is not None and self.rules is not None:
            raise ValueError("use either condition or rules, not both")
        if self.condition is not None or self.rules is not None:
            if self.next is not None:
                raise ValueError("use onTrue/onFalse with condition or rules, not next")
            if self.on_true is None and self.on_false is None:
                raise ValueError("onTrue: onTrue and/or onFalse are needed")
        elif not isinstance(self.next, list):
            raise ValueError(
                "a condition step needs `condition`, `rules` or a list of `next` transitions"
            )
        return self

    def successor_ids(self) -> list[str]:
        targets = [t for t in (self.on_true, self.on_false) if t is not None]
        return targets + super().successor_ids()


class ConditionStep(StepType[ConditionStepModel]):
    name = "condition"
    model = ConditionStepModel

    def enter(self, step: ConditionStepModel, call: StepCall) -> None:
        if step.condition is None and step.rules is None:
            call.complete(None)
            return
        scope = call.scope()
        try:
            if step.condition is not None:
                outcome = step.condition.test(scope)
            else:
                assert step.rules is not None
                results = (rule.test(scope) for rule in step.rules)
                outcome = all(results) if step.match == "all" else any(results)
        except (ExpressionError, PathError) as exc:
            call.fail_with("ExpressionError", str(exc))
            return
        target = step.on_true if outcome else step.on_false
        call.complete({"result": outcome}, next_step=target)
