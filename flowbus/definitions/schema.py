"""The published JSON Schema of the definition language, built from the pydantic models."""

from __future__ import annotations

from typing import Any

from flowbus.definitions.model import WorkflowDefinition
from flowbus.steps.registry import STEP_TYPES


def definition_json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of a workflow definition document, steps typed by `type`."""
    schema = WorkflowDefinition.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    refs = []
    for step_type in STEP_TYPES.values():
        model = step_type.model
        step_schema = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(step_schema.pop("$defs", {}))
        defs[model.__name__] = step_schema
        refs.append({"$ref": f"#/$defs/{model.__name__}"})
    defs.pop("StepModel", None)
    _replace_step_refs(schema, {"oneOf": refs})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "flowbus workflow definition"
    return schema


def _replace_step_refs(node: Any, typed: dict[str, Any]) -> None:
    """Point every list of steps (top level and parallel branches) at the typed steps."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "items" and value == {"$ref": "#/$defs/StepModel"}:
                node[key] = typed
            else:
                _replace_step_refs(value, typed)
    elif isinstance(node, list):
        for item in node:
            _replace_step_refs(item, typed)
