"""Pydantic field types that compile at load: CEL conditions, templates, JMESPath paths."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from flowbus.expressions import (
    Expression,
    ExpressionError,
    Path,
    PathError,
    Template,
    TemplateError,
)


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
