"""The step-type registry: `type:` name -> step type. Register a new step type here."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from flowbus.definitions.model import StepModel
from flowbus.steps.action import ActionStep
from flowbus.steps.base import StepType
from flowbus.steps.condition import ConditionStep

STEP_TYPES: dict[str, StepType[Any]] = {
    step_type.name: step_type for step_type in (ActionStep(), ConditionStep())
}


class StepDefinitionError(ValueError):
    """A step that does not validate; the message names the step and the field."""


def step_type_of(step: StepModel) -> StepType[Any]:
    return STEP_TYPES[step.type]


def parse_step(raw: Any, index: int) -> StepModel:
    """Validate one raw step with the model its `type` registers."""
    if isinstance(raw, StepModel):
        return raw
    if not isinstance(raw, dict):
        raise StepDefinitionError(f"steps[{index}]: a step must be an object")
    step_id = raw.get("id", raw.get("stepId"))
    label = f"step {step_id!r}" if isinstance(step_id, str) else f"steps[{index}]"
    kind = raw.get("type")
    if kind not in STEP_TYPES:
        raise StepDefinitionError(
            f"{label}: type: unknown step type {kind!r}; known: {', '.join(sorted(STEP_TYPES))}"
        )
    try:
        return STEP_TYPES[kind].model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise StepDefinitionError(f"{label} ({kind}): {problems}") from None


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message
