"""The building blocks of definition models: their base, and field types that compile at
load (CEL conditions, templates, JMESPath paths) or check themselves (durations, ids)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from flowbus.expressions import (
    Expression,
    ExpressionError,
    Path,
    PathError,
    Template,
    TemplateError,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""What workflow and step ids may look like."""


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


def _expression(value: Any) -> Expression:
    if isinstance(value, Expression):
        return value
    try:
        return Expression(value)
    except ExpressionError as exc:
        raise ValueError(f"expression does not compile: {exc}") from None


def _template(value: Any) -> Template:
    if isinstance(value, Template):
        return value
    try:
        return Template(value)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None


def _path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    try:
        return Path(value)
    except PathError as exc:
        raise ValueError(f"path does not compile: {exc}") from None


CelExpression = Annotated[
    Expression,
    BeforeValidator(_expression),
    PlainSerializer(lambda e: e.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "A CEL expression."}),
]

TemplateValue = Annotated[
    Template,
    BeforeValidator(_template),
    PlainSerializer(lambda t: t.source, return_type=Any),
    WithJsonSchema({"description": "Any JSON value; strings may hold {{ path }} placeholders."}),
]

QueryPath = Annotated[
    Path,
    BeforeValidator(_path),
    PlainSerializer(lambda p: p.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "A JMESPath query (dot paths work)."}),
]
