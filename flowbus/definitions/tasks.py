"""Reusable tasks: an action with its config, retry policy and timeout, defined once,
stored and versioned like workflow definitions, and referenced from steps by `taskId`.

A step that says `taskId` (and optionally `taskVersion`; the latest stored version
otherwise) becomes an `action` step when its definition is stored: the task's action and
config, with the step's own `config` keys, `retryPolicy` keys, `timeout` and `compensate`
on top. The stored workflow version holds the result, so a later version of the task
changes no stored workflow version; storing the workflow again makes a new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import AliasChoices, Field, ValidationError
from referencing.exceptions import Unresolvable

from flowbus.actions.registry import ACTIONS, check_action
from flowbus.definitions.errors import DefinitionError, Problem
from flowbus.definitions.step import Compensation, RetryPolicy
from flowbus.definitions.types import ID_PATTERN, DefinitionModel, Duration
from flowbus.expressions import Template, TemplateError
from flowbus.storable import nul_path

TASK_KIND = "task"
"""The `kind` of a task document (how a file among workflow definitions says it is one)."""

_REFERENCE_KEYS = ("taskId", "taskVersion")
_TAKEN_FROM_TASK = ("timeout", "compensate")
_BRANCH_LISTS = ("branches", "parallelBranches")


class TaskDefinition(DefinitionModel):
    """A reusable task: what a step referencing it runs, unless the step says otherwise."""

    kind: Literal["task"] = "task"
    id: str = Field(validation_alias=AliasChoices("id", "taskId"), pattern=ID_PATTERN)
    name: str | None = Field(None, description="The name of steps that give none.")
    description: str | None = None
    version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Assigned by the store when omitted: one more than the latest.",
    )
    action: str = Field(description="Name of the action in the action registry.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The action's settings; a step's `config` keys replace these one by one.",
    )
    input_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema the config of every step using the task must satisfy "
        "(values that are still {{ templates }} are left to run time).",
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema of what the task returns (documentation)."
    )
    retry_policy: RetryPolicy | None = None
    timeout: Duration | None = None
    compensate: Compensation | None = None


TaskLibrary = Mapping[str, Mapping[int, TaskDefinition]]
"""Stored tasks: task id -> version -> task."""


@dataclass(frozen=True, slots=True)
class TaskUse:
    """A step of a definition that was made from a task version."""

    step_id: str
    task_id: str
    task_version: int


@dataclass(frozen=True, slots=True)
class ResolvedDocument:
    """A definition document whose task references are replaced, and what they used."""

    document: Any
    uses: tuple[TaskUse, ...] = ()


def canonical_task(task: TaskDefinition) -> dict[str, Any]:
    """The task as stored: camelCase JSON without its version."""
    return task.model_dump(mode="json", by_alias=True, exclude={"version"}, exclude_none=True)


def is_task_document(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("kind") == TASK_KIND


def validate_task(raw: Any, source: str | None = None) -> TaskDefinition:
    """Validate a raw task document, or raise `DefinitionError` listing every problem."""
    if not isinstance(raw, dict):
        raise DefinitionError(None, [Problem("a task must be an object")], source)
    named = raw.get("id", raw.get("taskId"))
    task_id = named if isinstance(named, str) else None
    unstorable = nul_path(raw)
    if unstorable is not None:
        problem = Problem("contains a NUL character (\\u0000), which cannot be stored", unstorable)
        raise DefinitionError(task_id, [problem], source)
    try:
        task = TaskDefinition.model_validate(raw)
    except ValidationError as exc:
        problems = [
            Problem(
                str(err["msg"]).removeprefix("Value error, "),
                field=".".join(str(p) for p in err["loc"]) or None,
            )
            for err in exc.errors()
        ]
        raise DefinitionError(task_id, problems, source) from None
    problems = list(_task_problems(task))
    if problems:
        raise DefinitionError(task.id, problems, source)
    return task


def _task_problems(task: TaskDefinition) -> Iterator[Problem]:
    for field, schema in (("inputSchema", task.input_schema), ("outputSchema", task.output_schema)):
        if schema is None:
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            yield Problem(f"not a valid JSON Schema: {exc.message}", field=field)
    try:
        Template(task.config)
    except TemplateError as exc:
        yield Problem(str(exc), field="config")
    try:
        check_action(task.action)
    except ValueError as exc:
        yield Problem(str(exc).removeprefix("action: "), field="action")
        return
    try:
        ACTIONS[task.action].config_model.model_validate(task.config)
    except ValidationError as exc:
        # A field the task leaves out may come from each step's config.
        for err in exc.errors():
            if err["type"] == "missing" or _templated(task.config, err["loc"]):
                continue
            where = ".".join(str(p) for p in ("config", *err["loc"]))
            yield Problem(str(err["msg"]).removeprefix("Value error, "), field=where)


def _templated(value: Any, loc: Iterable[Any]) -> bool:
    for part in loc:
        in_dict = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
        if not (in_dict or in_list):
            return False
        value = value[part]
        if isinstance(value, str) and "{{" in value:
            return True
    return False


def referenced_task_ids(document: Any) -> set[str]:
    """The task ids the steps of a raw definition document reference (nested ones too)."""
    found: set[str] = set()
    if isinstance(document, dict):
        for step in _all_steps(document.get("steps")):
            if isinstance(step.get("taskId"), str):
                found.add(step["taskId"])
    return found


def _all_steps(steps: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(steps, list):
        return
    for step in steps:
        if not isinstance(step, dict):
            continue
        yield step
        for key in _BRANCH_LISTS:
            branches = step.get(key)
            for branch in branches if isinstance(branches, list) else []:
                if isinstance(branch, dict):
                    yield from _all_steps(branch.get("steps"))


def resolve_task_steps(document: dict[str, Any], tasks: TaskLibrary) -> dict[str, Any]:
    """`document` with every step that references a task made an `action` step from it."""
    resolved = resolve_tasks(document, tasks).document
    assert isinstance(resolved, dict)
    return resolved


def resolve_tasks(document: Any, tasks: TaskLibrary) -> ResolvedDocument:
    """Replace task references in a raw definition document (not changed in place), or raise
    `DefinitionError` naming each step and field whose reference cannot be resolved.

    Anything that is not a document with steps comes back as it is, for validation to refuse.
    """
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        return ResolvedDocument(document)
    resolver = _Resolver(tasks)
    steps = resolver.steps(document["steps"])
    if resolver.problems:
        named = document.get("id", document.get("workflowId"))
        raise DefinitionError(named if isinstance(named, str) else None, resolver.problems)
    return ResolvedDocument({**document, "steps": steps}, tuple(resolver.uses))


class _Resolver:
    def __init__(self, tasks: TaskLibrary) -> None:
        self.tasks = tasks
        self.uses: list[TaskUse] = []
        self.problems: list[Problem] = []

    def steps(self, steps: list[Any]) -> list[Any]:
        return [self.step(step, index) for index, step in enumerate(steps)]

    def step(self, step: Any, index: int) -> Any:
        if not isinstance(step, dict):
            return step
        step = {**step}
        nests = False
        for key in _BRANCH_LISTS:
            if isinstance(step.get(key), list):
                step[key] = [self.branch(branch) for branch in step[key]]
                nests = True
        if nests or ("taskId" not in step and "taskVersion" not in step):
            # A step with branches runs only them: validation refuses a taskId there.
            return step
        named = step.get("id", step.get("stepId"))
        step_id = named if isinstance(named, str) else f"steps[{index}]"
        task = self.task(step, step_id)
        if task is None:
            return step
        self.uses.append(TaskUse(step_id, task.id, task.version or 1))
        return self.from_task(step, step_id, task)

    def branch(self, branch: Any) -> Any:
        if isinstance(branch, dict) and isinstance(branch.get("steps"), list):
            return {**branch, "steps": self.steps(branch["steps"])}
        return branch

    def problem(self, message: str, field: str, step_id: str) -> None:
        self.problems.append(Problem(message, field=field, step_id=step_id))

    def task(self, step: dict[str, Any], step_id: str) -> TaskDefinition | None:
        task_id, version = step.get("taskId"), step.get("taskVersion")
        if not isinstance(task_id, str):
            self.problem("must be a task id (a string)", "taskId", step_id)
            return None
        versions = self.tasks.get(task_id)
        if not versions:
            self.problem(f"unknown task {task_id!r}: store it first", "taskId", step_id)
            return None
        if version is None:
            return versions[max(versions)]
        if isinstance(version, bool) or not isinstance(version, int):
            self.problem("must be a stored version number", "taskVersion", step_id)
            return None
        if version not in versions:
            stored = ", ".join(str(v) for v in sorted(versions))
            message = f"task {task_id!r} has no version {version} (stored: {stored})"
            self.problem(message, "taskVersion", step_id)
            return None
        return versions[version]

    def from_task(self, step: dict[str, Any], step_id: str, task: TaskDefinition) -> Any:
        if step.get("type", "action") != "action" or "action" in step:
            self.problem(
                "a step with a taskId runs the task's action: leave out type and action",
                "type" if "type" in step else "action",
                step_id,
            )
            return step
        overrides = step.get("config", {})
        if not isinstance(overrides, dict):
            self.problem("must be an object (keys that replace the task's)", "config", step_id)
            return step
        stored = canonical_task(task)
        resolved = {k: v for k, v in step.items() if k not in _REFERENCE_KEYS}
        resolved["type"] = "action"
        resolved["action"] = task.action
        resolved["config"] = {**task.config, **overrides}
        if "name" not in step and task.name is not None:
            resolved["name"] = task.name
        retry = step.get("retryPolicy")
        if "retryPolicy" in stored and (retry is None or isinstance(retry, dict)):
            resolved["retryPolicy"] = {**stored["retryPolicy"], **(retry or {})}
        for key in _TAKEN_FROM_TASK:
            if key not in step and key in stored:
                resolved[key] = stored[key]
        self.check_input(task, resolved["config"], step_id)
        return resolved

    def check_input(self, task: TaskDefinition, config: dict[str, Any], step_id: str) -> None:
        if task.input_schema is None:
            return
        try:
            errors = list(Draft202012Validator(task.input_schema).iter_errors(config))
        except Unresolvable as exc:
            self.problem(
                f"task {task.id!r} inputSchema cannot be applied: {exc}", "config", step_id
            )
            return
        for error in errors:
            if _templated(config, error.absolute_path):
                continue
            where = ".".join(str(p) for p in ("config", *error.absolute_path))
            self.problem(f"{error.message} (task {task.id!r} inputSchema)", where, step_id)
