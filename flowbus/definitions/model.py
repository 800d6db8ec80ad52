"""The workflow definition language: what a definition document may say.

Definitions are JSON or YAML documents with camelCase keys. A declarative definition
(`kind: declarative`, the default) lists its steps; a code-first one (`kind: code`) has
none: its code runs in an SDK worker, driven by workflow tasks (`topics/sdk-protocol.md`),
and the definition carries what flowbus needs to store, version, list and start it.
The document's own fields live here, its triggers in `triggers.py` and the fields every
step has in `step.py`; each step type adds its own in its class under `flowbus/steps/`,
and the step registry dispatches on `type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
)

from flowbus.definitions.compat.seed004 import SemanticVersion
from flowbus.definitions.failure import WorkflowOnFailure
from flowbus.definitions.step import StepModel
from flowbus.definitions.triggers import Trigger
from flowbus.definitions.types import (
    ID_PATTERN,
    DefinitionModel,
    Duration,
    QueryPath,
    TemplateValue,
)
from flowbus.steps.registry import parse_steps


class ExecutionLog(DefinitionModel):
    """How much of an instance's history is kept, for how long, and what it is tagged with."""

    level: Literal["debug", "info", "error"] = Field(
        "info",
        description="debug: step inputs and outputs; info: outputs; error: failed attempts only.",
    )
    retention: Duration | None = Field(
        None, description="Ended instances older than this are purged with their history."
    )
    metadata: list[str] = Field(
        default_factory=list,
        description="Fields (looked up in the input, then the trigger event's data) attached to "
        "the instance's events and log lines, e.g. userId, correlationId.",
    )


@dataclass(frozen=True, slots=True)
class StepLayout:
    """Every step by id, and for a step inside a parallel branch, (parallel id, branch id)."""

    steps: Mapping[str, StepModel]
    branch_of: Mapping[str, tuple[str, str]]


DefinitionKind = Literal["declarative", "code"]
_NOT_IN_CODE = {"start_at": "startAt", "context": "context", "output": "output", "steps": "steps"}


class WorkflowDefinition(DefinitionModel):
    """A versioned workflow: triggers, input schema, context mappings and steps."""

    kind: DefinitionKind = Field(
        "declarative",
        description="declarative: the steps below; code: a workflow function run by an SDK "
        "worker (no steps, startAt, context or output).",
    )
    id: str = Field(validation_alias=AliasChoices("id", "workflowId"), pattern=ID_PATTERN)
    name: str | None = None
    description: str | None = None
    version: int | None = Field(
        None, ge=1, description="Assigned by the store when omitted: one more than the latest."
    )
    version_label: str | None = Field(
        None,
        description='A semantic version such as 1.2.0 (`version: "1.2.0"` in seed 004\'s '
        "format): each stored label is greater than the ones stored before it.",
    )
    deprecated: bool = False
    input_schema: dict[str, Any] | None = None
    triggers: list[Trigger] = Field(default_factory=list)
    context: dict[str, QueryPath] = Field(
        default_factory=dict,
        description="Variables computed at start: name -> JMESPath over {input, trigger}.",
    )
    timeout: Duration | None = Field(
        None, description="End the instance timed_out (with compensation) when it runs longer."
    )
    start_at: str | None = Field(None, description="First step; the first listed by default.")
    steps: list[SerializeAsAny[StepModel]] = Field(
        default_factory=list,
        validate_default=True,
        description="At least one for a declarative workflow.",
    )
    output: TemplateValue | None = Field(
        None, description="Template of the instance output; the variables by default."
    )
    ui_components: list[dict[str, Any]] = Field(
        default_factory=list, description="Stored and returned as given, for user interfaces."
    )
    execution_log: ExecutionLog = Field(default_factory=ExecutionLog)
    on_failure: WorkflowOnFailure | None = Field(
        None,
        description="When the instance fails for good: a failure path run after compensation, "
        "and/or a failure workflow started with the failed instance's data.",
    )

    @field_validator("on_failure")
    @classmethod
    def _failure_routes_to_top_level_steps(
        cls, value: WorkflowOnFailure | None, info: ValidationInfo
    ) -> WorkflowOnFailure | None:
        if value is None:
            return value
        if info.data.get("kind") == "code":
            raise ValueError("a code-first workflow (kind: code) has no workflow-level onFailure")
        steps = info.data.get("steps")
        if steps is None:  # the steps were refused: they are reported already
            return value
        top_level = {step.id for step in steps}
        for target in value.targets():
            if target not in top_level:
                raise ValueError(f"refers to unknown top-level step {target!r}")
        return value

    def failure_entry_ids(self) -> list[str]:
        """Steps the workflow-level onFailure may start (reachable without a `next`)."""
        return self.on_failure.targets() if self.on_failure is not None else []

    @field_validator("version_label")
    @classmethod
    def _semantic_version(cls, value: str | None) -> str | None:
        if value is not None:
            SemanticVersion.parse(value)
        return value

    @field_validator("steps", mode="before")
    @classmethod
    def _typed_steps(cls, value: Any) -> Any:
        # Each step is validated by the model its type registers, so that errors name
        # the step type's own fields.
        return parse_steps(value) if isinstance(value, list) else value

    @field_validator("start_at", "context", "output", "steps")
    @classmethod
    def _by_kind(cls, value: Any, info: ValidationInfo) -> Any:
        name = _NOT_IN_CODE[info.field_name or ""]
        if info.data.get("kind") == "code":
            if value:
                raise ValueError(f"a code-first workflow (kind: code) has no {name}")
        elif name == "steps" and not value:
            raise ValueError("a declarative workflow needs at least one step")
        return value

    @property
    def code_first(self) -> bool:
        """Whether the workflow's code runs in an SDK worker rather than as steps here."""
        return self.kind == "code"

    @property
    def first_step_id(self) -> str:
        return self.start_at or self.steps[0].id

    def step_map(self) -> dict[str, StepModel]:
        """Every step by id, the steps of parallel branches included."""
        return dict(self.layout().steps)

    def layout(self) -> StepLayout:
        """Where every step is, computed once per definition (definitions are immutable)."""
        return self.step_layout

    @cached_property
    def step_layout(self) -> StepLayout:
        # A cached property lives in the instance's __dict__: read on every transition,
        # it costs a plain attribute lookup, not pydantic's private-attribute __getattr__.
        steps: dict[str, StepModel] = {}
        branch_of: dict[str, tuple[str, str]] = {}

        def visit(listed: list[StepModel]) -> None:
            for step in listed:
                steps.setdefault(step.id, step)
                for branch_id, nested in step.branches():
                    for inner in nested:
                        branch_of.setdefault(inner.id, (step.id, branch_id))
                    visit(nested)

        visit(list(self.steps))
        return StepLayout(steps=steps, branch_of=branch_of)
