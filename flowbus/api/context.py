"""What every request of the API process shares: settings, database, broker, metrics."""

from __future__ import annotations

import asyncio
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
from flowbus.limits import JsonLimits


@dataclass
class ApiContext:
    settings: Settings
    engine: AsyncEngine
    broker: Broker
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the process is asked to stop: live streams end."""
    _inputs: InputValidators = field(default_factory=InputValidators, init=False, repr=False)

    @property
    def body_limits(self) -> JsonLimits:
        limits = self.settings.limits
        return JsonLimits(limits.max_body_bytes, limits.max_depth)

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
