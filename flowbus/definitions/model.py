"""The workflow definition language: what a definition document may say.

Definitions are JSON or YAML documents with camelCase keys. The common shape lives here;
each step type adds its own fields in its class under `flowbus/steps/`, and the step
registry dispatches on `type`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from flowbus.definitions.types import CelExpression, QueryPath, TemplateValue
from flowbus.expressions import Path, PathError
from flowbus.expressions.jsonata import JsonataError, JsonataExpression
from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern
from flowbus.matching.transition import parse_transition, transition_pattern
from flowbus.timers.cron import CronError, CronSchedule, zone_named

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


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("duration must be positive")
    return value


Duration = Annotated[timedelta, AfterValidator(_positive)]
"""An ISO 8601 duration such as PT30S, PT5M, P1DT2H (or a number of seconds)."""


class Transition(DefinitionModel):
    """An edge to another step, taken when its condition holds (or always, without one)."""

    to: str = Field(validation_alias=AliasChoices("to", "nextStepId"))
    condition: CelExpression | None = None


class RetryPolicy(DefinitionModel):
    """How often and how soon a failed step runs again. Backoffs are durable timers."""

    max_attempts: int = Field(3, ge=1, le=100, description="Attempts in all, the first included.")
    delay: Duration = Field(timedelta(seconds=1), description="Wait before the second attempt.")
    strategy: Literal["fixed", "exponential"] = "fixed"
    multiplier: float = Field(2.0, ge=1.0, description="Growth per attempt when exponential.")
    max_delay: Duration | None = None
    jitter: float = Field(
        0.0, ge=0.0, le=1.0, description="Spread each delay by up to this fraction (deterministic)."
    )
    retry_on: list[str] | None = Field(
        None, description="Error types that are retried; every error when omitted."
    )

    def delay_before(self, attempt: int) -> timedelta:
        """The wait before attempt number `attempt` (2 = the first retry), before jitter."""
        base = self.delay
        if self.strategy == "exponential":
            base = self.delay * (self.multiplier ** max(0, attempt - 2))
        if self.max_delay is not None:
            base = min(base, self.max_delay)
        return base

    def retries(self, error_type: str) -> bool:
        return self.retry_on is None or error_type in self.retry_on


class ErrorRoute(DefinitionModel):
    """Where a failure of a given error type (and code) goes."""

    error_type: str | None = None
    error_code: str | None = None
    next_step_id: str = Field(validation_alias=AliasChoices("nextStepId", "next_step_id", "to"))


class ErrorHandler(DefinitionModel):
    conditions: list[ErrorRoute] = Field(min_length=1)


class OnFailure(DefinitionModel):
    """What happens when a step has failed for good (after its retries).

    `stop` fails the instance (compensating completed steps), `continue` goes on at
    `nextStepId` (or the step's `next`), `retry` retries with the step's `retryPolicy`
    (3 attempts, exponential from 1 s, when it has none) and then stops. Error-handler
    conditions are tried first: the first whose type (and code) match routes the failure.
    """

    action: Literal["stop", "continue", "retry"] = "stop"
    next_step_id: str | None = None
    error_handler: ErrorHandler | None = None

    def route(self, error_type: str, error_code: str | None) -> str | None:
        if self.error_handler is None:
            return None
        for condition in self.error_handler.conditions:
            if condition.error_type not in (None, error_type):
                continue
            if condition.error_code not in (None, error_code):
                continue
            return condition.next_step_id
        return None


DEFAULT_RETRY = RetryPolicy(max_attempts=3, strategy="exponential")


class Compensation(DefinitionModel):
    """The action that undoes a completed step; it sees the step's output as `steps.<id>`."""

    action: str
    config: TemplateValue = Field(default_factory=lambda: _empty_template())

    @model_validator(mode="after")
    def _valid_action(self) -> Compensation:
        from flowbus.actions.registry import check_action_config

        check_action_config(self.action, self.config.source)
        return self


def _empty_template() -> Any:
    from flowbus.expressions import Template

    return Template({})


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

    retry_policy: RetryPolicy | None = None
    timeout: Duration | None = Field(
        None, description="Fail the attempt with a TimeoutError when it runs longer."
    )
    on_failure: OnFailure | None = None
    compensate: Compensation | None = None

    def successor_ids(self) -> list[str]:
        """Every step id this step may continue to (for reference and reachability checks)."""
        targets: list[str] = []
        if isinstance(self.next, str):
            targets.append(self.next)
        elif self.next is not None:
            targets.extend(t.to for t in self.next)
        if self.on_failure is not None:
            if self.on_failure.next_step_id is not None:
                targets.append(self.on_failure.next_step_id)
            if self.on_failure.error_handler is not None:
                targets.extend(c.next_step_id for c in self.on_failure.error_handler.conditions)
        return targets

    def branches(self) -> list[tuple[str, list[StepModel]]]:
        """Nested step lists (parallel branches): (branch id, steps)."""
        return []

    def waits(self) -> bool:
        """Whether entering this step always waits for something outside (breaks cycles)."""
        return False


class TransformError(ValueError):
    """A trigger could not map its event to a workflow input or a correlation id."""


class Transform(DefinitionModel):
    """Maps the trigger event document to the workflow input; compiled when it loads."""

    type: Literal["jmespath", "jsonata"] = "jmespath"
    expression: str = Field(
        description="A JMESPath query (dot paths work), or a JSONata expression with "
        "type: jsonata, over the event document."
    )
    _compiled: Path | JsonataExpression = PrivateAttr()

    @field_validator("expression")
    @classmethod
    def _compiles(cls, value: str, info: ValidationInfo) -> str:
        if "type" in info.data:
            _compile_transform(info.data["type"], value)
        return value

    @model_validator(mode="after")
    def _compile(self) -> Transform:
        self._compiled = _compile_transform(self.type, self.expression)
        return self

    def apply(self, document: dict[str, Any]) -> Any:
        """The workflow input for an event document; `TransformError` if it fails."""
        try:
            if isinstance(self._compiled, Path):
                return self._compiled.search(document)
            return self._compiled.evaluate(document)
        except (PathError, JsonataError) as exc:
            raise TransformError(f"transform failed: {exc}") from None


def _compile_transform(kind: str, expression: str) -> Path | JsonataExpression:
    try:
        return JsonataExpression(expression) if kind == "jsonata" else Path(expression)
    except (PathError, JsonataError) as exc:
        raise ValueError(f"expression does not compile: {exc}") from None


class Schedule(DefinitionModel):
    """When a schedule trigger starts instances: a cron expression read in a time zone.

    Each tick starts one instance, once across all workers. A tick found later than
    `grace` (every worker was down) is a misfire: `fire_once` starts one instance for
    all the ticks missed, `skip` starts none for them.
    """

    cron: str = Field(
        description="Five fields (minute hour day-of-month month day-of-week), "
        "or six with seconds first."
    )
    timezone: str = Field("UTC", description="IANA time zone the cron fields are read in.")
    misfire: Literal["fire_once", "skip"] = "fire_once"
    grace: Duration = Field(
        timedelta(minutes=1), description="How late a tick may start and still be on time."
    )
    input: Any = Field(
        None, description="The input of every instance; the tick's data when omitted."
    )
    _cron: CronSchedule = PrivateAttr()

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            CronSchedule(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone_named(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _compile(self) -> Schedule:
        self._cron = CronSchedule(self.cron, self.timezone)
        return self

    def next_after(self, instant: datetime) -> datetime:
        """The first tick strictly after `instant`, in UTC."""
        return self._cron.next_after(instant)


class Trigger(DefinitionModel):
    """What starts an instance of the workflow: consumed events that match, or a schedule.

    An event trigger names its topic; `type`, `pattern` and `transition` narrow the events
    it takes and must all hold. A schedule trigger has only `schedule` (and `correlation`).
    """

    topic: str | None = Field(None, description="Required, except for schedule triggers.")
    type: str | None = Field(
        None,
        description="Shorthand: the event's type "
        "(CloudEvents `type`, or a plain JSON body's `type` field).",
    )
    pattern: dict[str, Any] | None = Field(
        None,
        description="An EventBridge-style pattern over the event document "
        "{id, source, type, subject, time, topic, key, headers, data}.",
    )
    transition: str | None = Field(
        None,
        description="Shorthand 'entity:field:to_state' for state-machine transition events.",
    )
    schedule: Schedule | None = None
    description: str | None = None
    transform: Transform | None = None
    correlation: QueryPath | None = Field(
        None,
        description="JMESPath over the event document: the instance's correlation id.",
    )
    _pattern: dict[str, Any] | None = PrivateAttr(None)

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                compile_pattern(value)
            except PatternError as exc:
                raise ValueError(f"{exc.path}: {exc.reason}") from None
        return value

    @field_validator("transition")
    @classmethod
    def _transition_parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_transition(value)
            except PatternError as exc:
                raise ValueError(exc.reason) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if self.schedule is not None:
            extra = [
                name
                for name in ("topic", "type", "pattern", "transition", "transform")
                if getattr(self, name) is not None
            ]
            if extra:
                taken = ", ".join(extra)
                raise ValueError(
                    f"a schedule trigger takes no {taken}: its input is schedule.input"
                )
            return self
        if self.topic is None:
            raise ValueError("a trigger needs a topic (or a schedule)")
        parts: list[tuple[str, dict[str, Any]]] = []
        if self.type is not None:
            parts.append(("type", {"type": [self.type]}))
        if self.transition is not None:
            parts.append(("transition", transition_pattern(self.transition)))
        if self.pattern is not None:
            parts.append(("pattern", self.pattern))
        self._pattern = _all_of(parts)
        return self

    def event_pattern(self) -> dict[str, Any] | None:
        """The pattern an event must match (type, transition and pattern together);
        None for a schedule trigger."""
        return self._pattern

    def input_for(self, document: dict[str, Any]) -> Any:
        """The workflow input: the transform of the event document, else its data."""
        if self.transform is None:
            return document.get("data")
        return self.transform.apply(document)

    def correlation_for(self, document: dict[str, Any]) -> str | None:
        """The correlation id the document carries (None without one or without a value)."""
        if self.correlation is None:
            return None
        try:
            value = self.correlation.search(document)
        except PathError as exc:
            raise TransformError(f"correlation failed: {exc}") from None
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise TransformError(
            f"correlation {self.correlation.source!r} gave {type(value).__name__}, "
            "not a string or number"
        )


def _all_of(parts: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One pattern requiring all `parts`; a field constrained by two parts is refused,
    since a pattern names each field once."""
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}

    def merge(into: dict[str, Any], extra: dict[str, Any], prefix: str, part: str) -> None:
        for key, value in extra.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and key != "$or":
                if key not in into:
                    into[key] = {}
                    owner[path] = part
                if isinstance(into[key], dict):
                    merge(into[key], value, f"{path}.", part)
                    continue
            elif key not in into:
                into[key] = value
                owner[path] = part
                continue
            raise ValueError(
                f"{path} is constrained by both {owner[path]} and {part}: "
                "state it once, in the pattern"
            )

    for part, pattern in parts:
        merge(merged, pattern, "", part)
    return merged


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
    timeout: Duration | None = Field(
        None, description="End the instance timed_out (with compensation) when it runs longer."
    )
    start_at: str | None = Field(None, description="First step; the first listed by default.")
    steps: list[SerializeAsAny[StepModel]] = Field(min_length=1)
    output: TemplateValue | None = Field(
        None, description="Template of the instance output; the variables by default."
    )
    ui_components: list[dict[str, Any]] = Field(
        default_factory=list, description="Stored and returned as given, for user interfaces."
    )
    execution_log: ExecutionLog = Field(default_factory=ExecutionLog)
    _layout: StepLayout | None = PrivateAttr(None)

    @field_validator("steps", mode="before")
    @classmethod
    def _typed_steps(cls, value: Any) -> Any:
        # Each step is validated by the model its type registers, so that errors name
        # the step type's own fields.
        from flowbus.steps.registry import parse_steps

        return parse_steps(value) if isinstance(value, list) else value

    @property
    def first_step_id(self) -> str:
        return self.start_at or self.steps[0].id

    def step_map(self) -> dict[str, StepModel]:
        """Every step by id, the steps of parallel branches included."""
        return dict(self.layout().steps)

    def layout(self) -> StepLayout:
        """Where every step is, computed once per definition (definitions are immutable)."""
        if self._layout is None:
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
            self._layout = StepLayout(steps=steps, branch_of=branch_of)
        return self._layout
