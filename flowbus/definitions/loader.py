"""Read definitions from JSON or YAML and check them whole: fields, references, reachability."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from flowbus.definitions.errors import DefinitionError, Problem
from flowbus.definitions.model import WorkflowDefinition

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")
_STEP_MESSAGE = re.compile(r"^step '([^']+)' \([^)]*\): (.*)$", re.S)


def parse_document(text: str, source: str) -> Any:
    try:
        if source.endswith(".json"):
            return orjson.loads(text)
        return yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(None, [Problem(f"not valid JSON/YAML: {exc}")], source) from None


def validate_definition(raw: Any, source: str | None = None) -> WorkflowDefinition:
    """Validate a raw document, or raise `DefinitionError` listing every problem."""
    definition_id = raw.get("id", raw.get("workflowId")) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise DefinitionError(None, [Problem("a definition must be an object")], source)
    try:
        definition = WorkflowDefinition.model_validate(raw)
    except ValidationError as exc:
        raise DefinitionError(
            definition_id, [_problem(err) for err in exc.errors()], source
        ) from None
    problems = list(check_graph(definition))
    problems.extend(_check_input_schema(definition))
    if problems:
        raise DefinitionError(definition.id, problems, source)
    return definition


def _problem(err: Any) -> Problem:
    loc = [str(p) for p in err["loc"]]
    message = str(err["msg"]).removeprefix("Value error, ")
    if loc[:1] == ["steps"]:
        match = _STEP_MESSAGE.match(message)
        if match:
            step_id, rest = match.groups()
            field, _, detail = rest.partition(": ")
            return Problem(detail or rest, field=field if detail else None, step_id=step_id)
    return Problem(message, field=".".join(loc) or None)


def check_graph(definition: WorkflowDefinition) -> Iterable[Problem]:
    """Duplicate ids, references to unknown steps, and steps nothing leads to."""
    seen: set[str] = set()
    for step in definition.steps:
        if step.id in seen:
            yield Problem("duplicate step id", field="id", step_id=step.id)
        seen.add(step.id)
    if definition.start_at is not None and definition.start_at not in seen:
        yield Problem(f"unknown step {definition.start_at!r}", field="startAt")
    edges: dict[str, list[str]] = {}
    for step in definition.steps:
        edges[step.id] = step.successor_ids()
        for target in edges[step.id]:
            if target not in seen:
                yield Problem(f"refers to unknown step {target!r}", field="next", step_id=step.id)
    reachable: set[str] = set()
    frontier = [definition.first_step_id]
    while frontier:
        current = frontier.pop()
        if current in reachable or current not in seen:
            continue
        reachable.add(current)
        frontier.extend(edges.get(current, []))
    for step in definition.steps:
        if step.id not in reachable:
            yield Problem("unreachable: no step leads here", step_id=step.id)


def _check_input_schema(definition: WorkflowDefinition) -> Iterable[Problem]:
    if definition.input_schema is None:
        return
    try:
        Draft202012Validator.check_schema(definition.input_schema)
    except SchemaError as exc:
        yield Problem(f"not a valid JSON Schema: {exc.message}", field="inputSchema")


def load_file(path: Path) -> WorkflowDefinition:
    return validate_definition(parse_document(path.read_text(), str(path)), str(path))


def definition_files(path: Path) -> list[Path]:
    """The definition files at `path`: the file itself, or every definition file in the folder."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in DEFINITION_SUFFIXES and p.is_file())


def load_path(path: Path) -> list[WorkflowDefinition]:
    """Load every definition at `path`; raise one `DefinitionError` per bad file, first found."""
    return [load_file(p) for p in definition_files(path)]
