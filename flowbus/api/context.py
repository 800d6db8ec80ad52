"""What every request of the API process shares: settings, database, broker, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.api.broker import Broker
from flowbus.api.metrics import ApiMetrics
from flowbus.api.problems import ProblemItem, json_pointer
from flowbus.config import Settings
from flowbus.definitions.model import WorkflowDefinition


@dataclass
class ApiContext:
    settings: Settings
    engine: AsyncEngine
    broker: Broker
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    _validators: dict[tuple[str, int], Draft202012Validator | None] = field(
        default_factory=dict, init=False, repr=False
    )

    def input_problems(self, definition: WorkflowDefinition, value: Any) -> list[ProblemItem]:
        """Where `value` breaks the definition's input schema, as pointers into a start
        request's `input` (validators compiled once per stored version: versions are
        immutable)."""
        key = (definition.id, definition.version or 0)
        if key not in self._validators:
            schema = definition.input_schema
            self._validators[key] = Draft202012Validator(schema) if schema is not None else None
        validator = self._validators[key]
        if validator is None:
            return []
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.path])
        return [
            ProblemItem(detail=error.message, pointer=json_pointer(["input", *error.path]))
            for error in errors
        ]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]
