"""Checking a workflow input against its definition's inputSchema, with each version's
validator compiled once (stored versions are immutable)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from flowbus.definitions.model import WorkflowDefinition


class InputValidators:
    """Compiled inputSchema validators, one per stored version."""

    def __init__(self) -> None:
        self._validators: dict[tuple[str, int], Draft202012Validator | None] = {}

    def violations(self, definition: WorkflowDefinition, value: Any) -> list[ValidationError]:
        """Where `value` breaks the definition's input schema, in path order."""
        key = (definition.id, definition.version or 0)
        if key not in self._validators:
            schema = definition.input_schema
            self._validators[key] = Draft202012Validator(schema) if schema is not None else None
        validator = self._validators[key]
        if validator is None:
            return []
        return sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.path])
