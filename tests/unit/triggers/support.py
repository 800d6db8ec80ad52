"""Small definitions for trigger tests."""

from __future__ import annotations

from typing import Any

from flowbus.definitions.loader import validate_definition
from flowbus.definitions.model import WorkflowDefinition


def definition(*triggers: dict[str, Any], workflow_id: str = "wf", **fields: Any) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "triggers": list(triggers),
        "steps": [{"id": "only", "type": "action", "action": "log", "config": {"message": "m"}}],
        **fields,
    }


def stored(*triggers: dict[str, Any], workflow_id: str = "wf", **fields: Any) -> WorkflowDefinition:
    """A valid definition as the store returns it (with a version)."""
    loaded = validate_definition(definition(*triggers, workflow_id=workflow_id, **fields))
    return loaded.model_copy(update={"version": 1})


def event_document(
    topic: str = "orders", type_: str | None = "order.created", **data: Any
) -> dict[str, Any]:
    return {
        "id": "e-1",
        "source": "shop",
        "type": type_,
        "subject": None,
        "time": "2026-11-21T10:00:00Z",
        "topic": topic,
        "key": "k-1",
        "headers": {},
        "data": data,
    }
