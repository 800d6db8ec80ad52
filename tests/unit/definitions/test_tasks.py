"""Reusable tasks: what a task document may say, and how steps that reference one by
`taskId` become action steps (the task's action and config, the step's overrides on top)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import validate_definition
from flowbus.definitions.tasks import (
    TaskDefinition,
    TaskUse,
    referenced_task_ids,
    resolve_task_steps,
    resolve_tasks,
    validate_task,
)
from flowbus.steps.action import ActionStepModel


def task(**fields: Any) -> TaskDefinition:
    document = {
        "id": "notify",
        "version": 1,
        "name": "Notify the customer",
        "action": "webhook",
        "config": {"url": "https://hooks.example/notify", "body": {"channel": "email"}},
        "retryPolicy": {"maxAttempts": 5, "delay": "PT10S", "strategy": "exponential"},
        "timeout": "PT30S",
        **fields,
    }
    return validate_task(document)


def library(*tasks: TaskDefinition) -> dict[str, dict[int, TaskDefinition]]:
    found: dict[str, dict[int, TaskDefinition]] = {}
    for t in tasks:
        assert t.version is not None
        found.setdefault(t.id, {})[t.version] = t
    return found


def workflow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "welcome", "steps": list(steps)}


TASKS = library(task(), task(version=2, config={"url": "https://hooks.example/v2"}))


def test_a_step_with_a_task_id_becomes_an_action_step_of_the_latest_version() -> None:
    resolved = resolve_task_steps(workflow({"id": "tell", "taskId": "notify"}), TASKS)

    step = resolved["steps"][0]
    assert step["type"] == "action"
    assert step["action"] == "webhook"
    assert step["config"] == {"url": "https://hooks.example/v2"}
    assert "taskId" not in step


def test_task_version_picks_that_version() -> None:
    resolved = resolve_tasks(workflow({"id": "tell", "taskId": "notify", "taskVersion": 1}), TASKS)

    assert resolved.document["steps"][0]["config"]["body"] == {"channel": "email"}
    assert resolved.uses == (TaskUse("tell", "notify", 1),)


def test_step_config_keys_replace_the_tasks_one_by_one() -> None:
    step = {"id": "tell", "taskId": "notify", "taskVersion": 1, "config": {"body": {"x": 1}}}

    resolved = resolve_task_steps(workflow(step), TASKS)

    assert resolved["steps"][0]["config"] == {
        "url": "https://hooks.example/notify",
        "body": {"x": 1},
    }


def test_the_step_takes_the_tasks_retry_timeout_and_name_unless_it_gives_its_own() -> None:
    plain = {"id": "a", "taskId": "notify", "taskVersion": 1, "next": "b"}
    own = {
        "id": "b",
        "taskId": "notify",
        "taskVersion": 1,
        "name": "Tell them again",
        "retryPolicy": {"maxAttempts": 2},
        "timeout": "PT5S",
    }

    definition = validate_definition(resolve_task_steps(workflow(plain, own), TASKS))

    first, second = definition.steps
    assert isinstance(first, ActionStepModel)
    assert isinstance(second, ActionStepModel)
    assert first.name == "Notify the customer"
    assert first.timeout == timedelta(seconds=30)
    assert first.retry_policy is not None
    assert first.retry_policy.max_attempts == 5
    assert second.name == "Tell them again"
    assert second.timeout == timedelta(seconds=5)
    assert second.retry_policy is not None
    assert (second.retry_policy.max_attempts, second.retry_policy.delay) == (
        2,
        timedelta(seconds=10),
    )


def test_steps_inside_parallel_branches_are_resolved_too() -> None:
    parallel = {
        "id": "fan",
        "type": "parallel",
        "branches": [{"id": "left", "steps": [{"id": "inner", "taskId": "notify"}]}],
    }

    resolved = resolve_tasks(workflow(parallel), TASKS)

    inner = resolved.document["steps"][0]["branches"][0]["steps"][0]
    assert inner["action"] == "webhook"
    assert resolved.uses == (TaskUse("inner", "notify", 2),)
    assert referenced_task_ids(workflow(parallel)) == {"notify"}


def test_a_step_with_branches_keeps_its_task_id_for_validation_to_refuse() -> None:
    inner = {"stepId": "inner", "taskId": "notify"}
    step = {
        "stepId": "fan",
        "taskId": "notify",
        "parallelBranches": [{"branchId": "left", "steps": [inner]}],
    }

    resolved = resolve_tasks(workflow(step), TASKS)

    outer = resolved.document["steps"][0]
    assert outer["taskId"] == "notify"
    assert outer["parallelBranches"][0]["steps"][0]["action"] == "webhook"
    assert resolved.uses == (TaskUse("inner", "notify", 2),)


def test_a_document_in_seed_004_words_validates_once_its_tasks_are_resolved() -> None:
    document = {
        "workflowId": "onboarding",
        "version": "1.2.0",
        "triggers": [{"eventPattern": "user.created"}],
        "steps": [
            {
                "stepId": "welcome",
                "taskId": "notify",
                "next": [{"nextStepId": "audit"}],
                "retryPolicy": {"maxAttempts": 2, "delay": "PT5M", "strategy": "fixed"},
                "timeout": "PT1H",
            },
            {"stepId": "audit", "taskId": "notify", "taskVersion": 1},
        ],
    }

    definition = validate_definition(resolve_task_steps(document, TASKS))

    welcome, audit = definition.steps
    assert isinstance(welcome, ActionStepModel)
    assert isinstance(audit, ActionStepModel)
    assert welcome.config.source == {"url": "https://hooks.example/v2"}
    assert welcome.retry_policy is not None
    assert welcome.retry_policy.delay == timedelta(minutes=5)
    assert audit.timeout == timedelta(seconds=30)


def test_the_document_given_is_not_changed() -> None:
    document = workflow({"id": "tell", "taskId": "notify"})

    resolve_task_steps(document, TASKS)

    assert document == workflow({"id": "tell", "taskId": "notify"})


def test_a_document_without_references_comes_back_as_it_was() -> None:
    document = workflow({"id": "x", "type": "action", "action": "log", "config": {"message": "m"}})

    assert resolve_tasks(document, {}) == resolve_tasks(document, TASKS)
    assert resolve_task_steps(document, {}) == document


def problems_of(document: dict[str, Any]) -> list[tuple[str | None, str | None, str]]:
    with pytest.raises(DefinitionError) as refused:
        resolve_tasks(document, TASKS)
    return [(p.step_id, p.field, p.message) for p in refused.value.problems]


def test_an_unknown_task_is_refused_naming_the_step_and_field() -> None:
    assert problems_of(workflow({"id": "tell", "taskId": "nobody"})) == [
        ("tell", "taskId", "unknown task 'nobody': store it first")
    ]


def test_an_unknown_task_version_is_refused_listing_the_stored_ones() -> None:
    assert problems_of(workflow({"id": "tell", "taskId": "notify", "taskVersion": 7})) == [
        ("tell", "taskVersion", "task 'notify' has no version 7 (stored: 1, 2)")
    ]


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"id": "s", "taskId": 3}, "taskId"),
        ({"id": "s", "taskVersion": 1}, "taskId"),
        ({"id": "s", "taskId": "notify", "taskVersion": "1"}, "taskVersion"),
        ({"id": "s", "taskId": "notify", "type": "wait"}, "type"),
        ({"id": "s", "taskId": "notify", "action": "log"}, "action"),
        ({"id": "s", "taskId": "notify", "config": ["x"]}, "config"),
    ],
)
def test_a_reference_that_cannot_be_resolved_names_its_field(
    step: dict[str, Any], field: str
) -> None:
    assert [(s, f) for s, f, _ in problems_of(workflow(step))] == [("s", field)]


def test_every_unresolvable_step_is_reported_at_once() -> None:
    document = workflow({"stepId": "a", "taskId": "x"}, {"id": "b", "taskId": "y"})

    assert [(s, f) for s, f, _ in problems_of(document)] == [("a", "taskId"), ("b", "taskId")]


def test_the_merged_config_must_satisfy_the_tasks_input_schema() -> None:
    strict = task(
        id="strict",
        action="set_variables",
        config={"amount": 1},
        inputSchema={"type": "object", "properties": {"amount": {"type": "integer"}}},
    )
    tasks = library(strict)
    bad = workflow({"id": "s", "taskId": "strict", "config": {"amount": "lots"}})
    templated = workflow({"id": "s", "taskId": "strict", "config": {"amount": "{{ input.n }}"}})

    with pytest.raises(DefinitionError) as refused:
        resolve_tasks(bad, tasks)
    resolve_tasks(templated, tasks)

    (problem,) = refused.value.problems
    assert (problem.step_id, problem.field) == ("s", "config.amount")
    assert "inputSchema" in problem.message


def test_a_task_may_leave_out_config_fields_its_steps_give() -> None:
    partial = task(id="partial", version=1, config={"body": {"a": 1}})
    step = {"id": "s", "taskId": "partial", "config": {"url": "https://x.example"}}

    definition = validate_definition(resolve_task_steps(workflow(step), library(partial)))

    assert definition.steps[0].id == "s"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"action": "teleport"}, "action"),
        ({"config": {"url": 3}}, "config.url"),
        ({"config": {"url": "{{ unclosed"}}, "config"),
        ({"inputSchema": {"type": "nothing"}}, "inputSchema"),
        ({"timeout": "soon"}, "timeout"),
        ({"version": 0}, "version"),
        ({"kind": "declarative"}, "kind"),
        ({"id": "has space"}, "id"),
    ],
)
def test_an_invalid_task_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        task(**fields)

    assert field in [p.field for p in refused.value.problems]


def test_a_task_document_may_say_task_id_and_kind() -> None:
    parsed = validate_task({"kind": "task", "taskId": "t", "action": "log"})

    assert (parsed.id, parsed.config, parsed.version) == ("t", {}, None)
