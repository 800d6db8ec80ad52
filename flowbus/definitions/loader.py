"""Read definitions from JSON or YAML (in flowbus's language, or in the shapes of other
workflow systems, converted) and check them whole: fields, references, reachability and
loops that could never end."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from flowbus.definitions.compat import convert_document, unresolved_tasks
from flowbus.definitions.errors import DefinitionError, Problem
from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.step import StepModel
from flowbus.steps.parsing import StepDefinitionError
from flowbus.storable import nul_path

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")


def parse_document(text: str, source: str) -> Any:
    try:
        if source.endswith(".json"):
            return orjson.loads(text)
        return yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise DefinitionError(None, [Problem(f"not valid JSON/YAML: {exc}")], source) from None


def validate_definition(raw: Any, source: str | None = None) -> WorkflowDefinition:
    """Validate a raw document, or raise `DefinitionError` listing every problem.

    Documents in the shapes of other workflow systems are converted first
    (`flowbus.definitions.compat`); steps must no longer reference tasks.
    """
    if not isinstance(raw, dict):
        raise DefinitionError(None, [Problem("a definition must be an object")], source)
    named = raw.get("id", raw.get("workflowId"))
    definition_id = named if isinstance(named, str) else None
    unstorable = nul_path(raw)
    if unstorable is not None:
        problem = Problem("contains a NUL character (\\u0000), which cannot be stored", unstorable)
        raise DefinitionError(definition_id, [problem], source)
    raw, problems = convert_document(raw)
    if not problems:
        problems = list(unresolved_tasks(raw))
    if problems:
        raise DefinitionError(definition_id, problems, source)
    try:
        definition = WorkflowDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = [p for err in exc.errors() for p in _problems(err)]
        raise DefinitionError(definition_id, problems, source) from None
    problems = [] if definition.code_first else list(check_graph(definition))
    problems.extend(_check_input_schema(definition))
    if problems:
        raise DefinitionError(definition.id, problems, source)
    return definition


def _problems(err: Any) -> list[Problem]:
    nested = err.get("ctx", {}).get("error")
    if isinstance(nested, StepDefinitionError):
        return nested.problems
    loc = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return [Problem(message, field=loc or None)]


def _scopes(definition: WorkflowDefinition) -> Iterable[tuple[list[str], list[StepModel]]]:
    """Each list of steps that reference one another, with the steps it is entered at: the
    top level (at the first step, and at the steps the workflow-level onFailure starts)
    and every branch."""
    pending: list[tuple[list[str], list[StepModel]]] = [
        ([definition.first_step_id, *definition.failure_entry_ids()], list(definition.steps))
    ]
    while pending:
        entries, steps = pending.pop()
        yield entries, steps
        for step in steps:
            for _, nested in step.branches():
                pending.append(([nested[0].id], nested))


def check_graph(definition: WorkflowDefinition) -> Iterable[Problem]:
    """Duplicate ids, references outside a step's scope, unreachable steps, endless loops."""
    seen: set[str] = set()
    for _, steps in _scopes(definition):
        for step in steps:
            if step.id in seen:
                yield Problem("duplicate step id", field="id", step_id=step.id)
            seen.add(step.id)
    if definition.start_at is not None and definition.start_at not in {
        s.id for s in definition.steps
    }:
        yield Problem(f"unknown step {definition.start_at!r}", field="startAt")
        return
    for entries, steps in _scopes(definition):
        yield from _check_scope(entries, steps, seen)


def _check_scope(
    entries: list[str], steps: list[StepModel], all_ids: set[str]
) -> Iterable[Problem]:
    by_id = {step.id: step for step in steps}
    edges: dict[str, list[str]] = {step.id: [] for step in steps}
    for step in steps:
        for target in step.successor_ids():
            if target in by_id:
                edges[step.id].append(target)
            elif target in all_ids:
                yield Problem(
                    f"refers to step {target!r} of another list or branch; steps lead only "
                    "to steps beside them",
                    field="next",
                    step_id=step.id,
                )
            else:
                yield Problem(f"refers to unknown step {target!r}", field="next", step_id=step.id)
    reachable: set[str] = set()
    frontier = list(entries)
    while frontier:
        current = frontier.pop()
        if current in reachable:
            continue
        reachable.add(current)
        frontier.extend(edges.get(current, []))
    for step in steps:
        if step.id not in reachable:
            yield Problem("unreachable: no step leads here", step_id=step.id)
    for cycle in cycles(edges):
        if not any(_breaks_loop(by_id[s]) for s in cycle):
            path = " → ".join([*cycle, cycle[0]])
            yield Problem(
                f"loop {path} neither waits nor decides: it would run forever",
                step_id=cycle[0],
            )


def _breaks_loop(step: StepModel) -> bool:
    conditional_next = isinstance(step.next, list) and any(
        t.condition is not None for t in step.next
    )
    return step.waits() or step.type == "condition" or conditional_next


def cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle (Tarjan), in a stable order.

    Iterative, so a definition of thousands of chained steps cannot exhaust the stack.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    order = {name: i for i, name in enumerate(edges)}

    for root in edges:
        if root in index:
            continue
        # Each frame: a node and how many of its edges have been followed.
        frames: list[tuple[str, int]] = [(root, 0)]
        while frames:
            node, followed = frames.pop()
            if followed == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            else:
                child = edges[node][followed - 1]
                low[node] = min(low[node], low[child])
            for position in range(followed, len(edges[node])):
                target = edges[node][position]
                if target not in index:
                    frames.append((node, position + 1))
                    frames.append((target, 0))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in edges[node]:
                        found.append(sorted(component, key=order.__getitem__))
    return found


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
