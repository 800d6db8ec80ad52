"""Helpers for engine specifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowbus.definitions.loader import validate_definition
from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.effects import Effect, EmitEvent

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
NOW_TEXT = "2024-05-06T07:08:09.123Z"


def define(raw: dict[str, Any]) -> WorkflowDefinition:
    """Validate a raw definition and give it version 1, as the store would."""
    return validate_definition(raw).model_copy(update={"version": 1})


def emitted(effects: list[Effect]) -> list[EmitEvent]:
    return [e for e in effects if isinstance(e, EmitEvent)]


def event_types(effects: list[Effect]) -> list[str]:
    return [e.type for e in emitted(effects)]


def log_step(step_id: str, **extra: Any) -> dict[str, Any]:
    """An inline step that only logs its own id: the simplest step that completes."""
    return {
        "id": step_id,
        "type": "action",
        "action": "log",
        "config": {"message": step_id},
        **extra,
    }
