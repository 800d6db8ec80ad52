"""`action` steps: run one action from the action registry; its output is the step's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from flowbus.actions.registry import check_action_config
from flowbus.definitions.step import StepModel
from flowbus.definitions.types import TemplateValue
from flowbus.expressions import Template
from flowbus.steps.base import StepCall, StepType

if TYPE_CHECKING:
    from flowbus.engine.inputs import ActionResult


class ActionStepModel(StepModel):
    type: Literal["action"]
    action: str = Field(description="Name of the action in the action registry.")
    config: TemplateValue = Field(
        default_factory=lambda: Template({}),
        description="The action's settings; strings may hold {{ path }} templates.",
    )

    @model_validator(mode="after")
    def _known_action_and_valid_config(self) -> ActionStepModel:
        check_action_config(self.action, self.config.source)
        return self


class ActionStep(StepType[ActionStepModel]):
    name = "action"
    model = ActionStepModel

    def enter(self, step: ActionStepModel, call: StepCall) -> None:
        call.run_action(step.action, step.config)

    def on_action_result(self, step: ActionStepModel, call: StepCall, result: ActionResult) -> None:
        if result.error is not None:
            call.fail(result.error)
        else:
            call.complete(result.output)
