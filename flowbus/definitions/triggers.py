"""What starts a workflow: consumed events that match a pattern, or a schedule; and how
the event becomes the instance's input and correlation id."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flowbus.definitions.cron import CronError, CronSchedule, zone_named
from flowbus.definitions.types import DefinitionModel, Duration, QueryPath
from flowbus.expressions import Path, PathError
from flowbus.expressions.jsonata import JsonataError, JsonataExpression
from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern
from flowbus.matching.transition import parse_transition, transition_pattern


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

    An event trigger names its topic, or takes events from every source topic; `type`,
    `pattern` and `transition` narrow the events it takes and must all hold (a trigger
    without a topic needs at least one of them). A schedule trigger has only `schedule`
    (and `correlation`).
    """

    topic: str | None = Field(
        None,
        description="The topic it reads; without one, an event trigger with a type, pattern "
        "or transition takes matching events on every source topic.",
    )
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
        narrowing = (self.type, self.pattern, self.transition)
        if self.topic is None and all(part is None for part in narrowing):
            raise ValueError(
                "a trigger needs a topic, a type, a pattern or a transition (or a schedule)"
            )
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
