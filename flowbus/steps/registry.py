"""The step-type registry: `type:` name -> step type. Register a new step type here.

Loading the registry also registers each type's model with `parse_steps`, which is why
definitions import `parse_steps` from here.
"""

from __future__ import annotations

from typing import Any

from flowbus.steps.action import ActionStep
from flowbus.steps.approval import ApprovalStep
from flowbus.steps.base import StepType
from flowbus.steps.condition import ConditionStep
from flowbus.steps.fail import FailStep
from flowbus.steps.parallel import ParallelStep
from flowbus.steps.parsing import StepDefinitionError, parse_steps, register_step_models
from flowbus.steps.subflow import SubflowStep
from flowbus.steps.wait import WaitStep

__all__ = ["STEP_TYPES", "StepDefinitionError", "parse_steps"]

STEP_TYPES: dict[str, StepType[Any]] = {
    step_type.name: step_type
    for step_type in (
        ActionStep(),
        ConditionStep(),
        WaitStep(),
        ParallelStep(),
        SubflowStep(),
        ApprovalStep(),
        FailStep(),
    )
}

register_step_models({name: step_type.model for name, step_type in STEP_TYPES.items()})
