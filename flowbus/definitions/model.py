"""The workflow definition language: what a definition document may say.

Definitions are JSON or YAML documents with camelCase keys. The common shape lives here;
each step type adds its own fields in its class under `flowbus/steps/`, and the step
registry dispatches on `type`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SerializeAsAny, field_validator
from pydantic.alias_generators import to_camel

from flowbus.definitions.types import CelExpression, QueryPath

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class DefinitionModel(BaseModel):
    """Base of every definition model: camelCase keys, unknown keys refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
    )


class Transition(DefinitionModel):
    """An edge to another step, taken when its condition holds (or always, without one)."""

    to: str = Field(validation_alias=AliasChoices("to", "nextStepId"))
    condition: CelExpression | None = None


class StepModel(DefinitionModel):
    """Fields every step has. Step types subclass it and fix `type` to a literal."""

    id: str = Field(validation_alias=AliasChoices("id", "stepId"), pattern=_ID_PATTERN)
    type: str
    name: str | None = None
    description: str | None = None
    next: str | list[Transition] | None = Field(
        None,
        description="The step that follows: an id, or transitions tried in order "
        "(first whose condition holds wins; one without a condition is the default). "
        "None ends the workflow (or the parallel branch).",
    )

    def successor_ids(self) -> list[str]:
        """Every step id this step may continue to (for reference and reachability checks)."""
        if self.next is None:
            return []
        if isinstance(self.next, str):
            return [self.next]
        return [t.to for t in self.next]


class Transform(DefinitionModel):
    """Maps the trigger event document to the workflow input."""

    type: Literal["jmespath"] = "jmespath"
    expression: QueryPath


class Trigger(DefinitionModel):
    """Which consumed events start an instance of the workflow."""

    topic: str
    type: str | None = Field(
        None,
        description="Shorthand: the event's type "
        "(CloudEvents `type`, or a plain JSON body's `type` field).",
    )
    description: str | None = None
    transform: Transform | None = None


class WorkflowDefinition(DefinitionModel):
    """A versioned workflow: triggers, input schema, context mappings and steps."""

    id: str = Field(validation_alias=AliasChoices("id", "workflowId"), pattern=_ID_PATTERN)
    name: str | None = None
    description: str | None = None
    version: int | None = Field(
        None, ge=1, description="Assigned by the store when omitted: one more than the latest."
    )
    deprecated: bool = False
    input_schema: dict[str, Any] | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    context: dict[str, QueryPath] = Field(
        default_factory=dict,
        description="Variables computed at start: name -> JMESPath over {input, trigger}.",
    )
    start_at: str | None = Field(None, description="First step; the first listed by default.")
    steps: list[SerializeAsAny[StepModel]] = Field(min_length=1)
    output: Any = Field(
        None, description="Template of the instance output; the variables by default."
    )
    ui_components: list[dict[str, Any]] = Field(default_factory=list)
    execution_log: dict[str, Any] | None = None

    @field_validator("steps", mode="before")
    @classmethod
    def _typed_steps(cls, value: Any) -> Any:
        # Each step is validated by the model its type registers, so that errors name
        # the step type's own fields.
        from flowbus.steps.registry import parse_step

        if not isinstance(value, list):
            return value
        return [parse_step(raw, index) for index, raw in enumerate(value)]

    @property
    def first_step_id(self) -> str:
        return self.start_at or self.steps[0].id

    def step_map(self) -> dict[str, StepModel]:
        return {step.id: step for step in self.steps}
