"""A start form generated from a workflow's `inputSchema`, and the input read back from it.

Each top-level property of an object schema is one field: a text box for strings, a number
box for numbers and integers, a checkbox for booleans, a list for an `enum`, and a JSON box
for anything else. A schema without properties gets one JSON box for the whole input. The
form only shapes the input; the API checks it against the schema and its answer names the
field that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

FieldKind = Literal["text", "number", "integer", "checkbox", "select", "json"]
PREFIX = "field."
WHOLE = "input_json"


@dataclass(frozen=True, slots=True)
class InputField:
    name: str
    kind: FieldKind
    required: bool
    description: str | None
    options: tuple[str, ...]
    value: str
    """The field's starting text (the schema's default or example)."""

    @property
    def form_name(self) -> str:
        return PREFIX + self.name

    @property
    def dom_id(self) -> str:
        return "f-" + "".join(c if c.isalnum() else "-" for c in self.name)


def _type(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    return declared if isinstance(declared, str) else None


def _starting_text(schema: Mapping[str, Any], kind: FieldKind) -> str:
    for key in ("default", "const"):
        if key in schema:
            value = schema[key]
            break
    else:
        examples = schema.get("examples")
        if not isinstance(examples, list) or not examples:
            return ""
        value = examples[0]
    if kind == "json" or not isinstance(value, str | int | float | bool):
        return orjson.dumps(value).decode()
    if kind == "checkbox":
        return "on" if value is True else ""
    return str(value)


def input_fields(schema: Any) -> list[InputField] | None:
    """One field per property of an object schema; None when the input is better typed as
    one JSON document (no schema, or no properties)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    fields = []
    # Stored documents keep no key order (PostgreSQL jsonb): the required fields first, in
    # the order `required` lists them, then the others by name.
    properties: dict[str, Any] = schema["properties"]
    ordered = [n for n in (required or []) if n in properties]
    ordered += sorted(n for n in properties if n not in ordered)
    for name in ordered:
        raw = properties[name]
        prop: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        enum = prop.get("enum")
        kind: FieldKind
        if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
            kind, options = "select", tuple(enum)
        else:
            options = ()
            kind = {
                "string": "text",
                "number": "number",
                "integer": "integer",
                "boolean": "checkbox",
            }.get(_type(prop) or "", "json")  # type: ignore[assignment]
        description = prop.get("description") or prop.get("title")
        fields.append(
            InputField(
                name=str(name),
                kind=kind,
                required=name in needed,
                description=str(description) if description else None,
                options=options,
                value=_starting_text(prop, kind),
            )
        )
    return fields


class InputFormError(ValueError):
    """A field's text is not a value of its kind; names the field."""


def read_input(schema: Any, form: Mapping[str, str]) -> Any:
    """The workflow input the form describes (the JSON box wins when it is filled in)."""
    whole = (form.get(WHOLE) or "").strip()
    fields = input_fields(schema)
    if whole or fields is None:
        if not whole:
            return None
        try:
            return orjson.loads(whole)
        except orjson.JSONDecodeError as exc:
            raise InputFormError(f"the input is not valid JSON: {exc}") from None
    value: dict[str, Any] = {}
    for field in fields:
        text = form.get(field.form_name)
        if field.kind == "checkbox":
            value[field.name] = text is not None
            continue
        text = (text or "").strip()
        if not text and not field.required:
            continue
        value[field.name] = _field_value(field, text)
    return value


def _field_value(field: InputField, text: str) -> Any:
    if field.kind in ("text", "select"):
        return text
    if field.kind in ("number", "integer"):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InputFormError(f"{field.name}: {text!r} is not a number")
        if field.kind == "integer" or number.is_integer():
            return int(number) if number.is_integer() else number
        return number
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputFormError(f"{field.name}: not valid JSON ({exc})") from None
