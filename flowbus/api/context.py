"""What every request of the API process shares: settings, database, broker, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbus.api.broker import Broker
from flowbus.api.metrics import ApiMetrics
from flowbus.api.problems import ProblemItem, json_pointer
from flowbus.config import Settings
from flowbus.definitions.inputs import InputValidators
from flowbus.definitions.model import WorkflowDefinition


@dataclass
class ApiContext:
    settings: Settings
    engine: AsyncEngine
    broker: Broker
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    _inputs: InputValidators = field(default_factory=InputValidators, init=False, repr=False)

    def input_problems(self, definition: WorkflowDefinition, value: Any) -> list[ProblemItem]:
        """Where `value` breaks the definition's input schema, as pointers into a start
        request's `input`."""
        return [
            ProblemItem(detail=error.message, pointer=json_pointer(["input", *error.path]))
            for error in self._inputs.violations(definition, value)
        ]


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]
