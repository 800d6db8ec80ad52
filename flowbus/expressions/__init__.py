"""The safe expression and template languages of definitions, compiled once at load."""

from flowbus.expressions.cel import Expression, ExpressionError
from flowbus.expressions.paths import Path, PathError
from flowbus.expressions.templates import Template, TemplateError

__all__ = [
    "Expression",
    "ExpressionError",
    "Path",
    "PathError",
    "Template",
    "TemplateError",
]
