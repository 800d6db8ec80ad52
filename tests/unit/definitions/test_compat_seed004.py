"""Seed 004's definition format as that seed writes it: `eventPattern` triggers,
`parallelBranches`/`branchId`, semantic version strings, step-level `onFailure`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.compat import SemanticVersion, convert_document, label_conflict
from flowbus.definitions.errors import DefinitionError, Problem
from flowbus.definitions.loader import validate_definition
from flowbus.engine.core import start
from tests.unit.engine.support import NOW, define


def log(step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "stepId": step_id,
        "type": "action",
        "action": "log",
        "config": {"message": step_id},
        **extra,
    }


def expense(**extra: Any) -> dict[str, Any]:
    """A document in seed 004's words (its steps' tasks already resolved to actions)."""
    return {
        "workflowId": "expense-approval",
        "name": "Expense approval",
        "description": "Routes expenses by amount",
        "version": "1.2.0",
        "inputSchema": {"type": "object", "properties": {}, "required": []},
        "triggers": [
            {
                "eventPattern": "expense.submitted",
                "description": "An employee submits an expense",
                "transform": {"type": "jmespath", "expression": "data"},
            }
        ],
        "steps": [
            log(
                "classify",
                next=[
                    # The step transitions example of seed 004, as printed.
                    {"nextStepId": "approveRequest", "condition": "data.amount > 1000"},
                    {"nextStepId": "autoApprove", "condition": "data.amount <= 1000"},
                ],
            ),
            log("approveRequest", onFailure={"action": "stop"}),
            {
                "stepId": "autoApprove",
                "parallelBranches": [
                    {"branchId": "book", "steps": [log("book-it")]},
                    {"branchId": "notify", "steps": [log("tell-them")]},
                ],
            },
        ],
        **extra,
    }


def converted(document: dict[str, Any]) -> dict[str, Any]:
    result, problems = convert_document(document)
    assert problems == []
    return result


def problems_of(document: dict[str, Any]) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(document)
    return caught.value.problems


def test_the_document_validates_as_written() -> None:
    definition = validate_definition(expense())

    assert definition.id == "expense-approval"
    assert definition.version is None
    assert definition.version_label == "1.2.0"
    assert [s.id for s in definition.steps] == ["classify", "approveRequest", "autoApprove"]


def test_parallel_branches_make_a_parallel_step() -> None:
    definition = validate_definition(expense())

    parallel = definition.step_map()["autoApprove"]
    assert parallel.type == "parallel"
    assert [(b, [s.id for s in steps]) for b, steps in parallel.branches()] == [
        ("book", ["book-it"]),
        ("notify", ["tell-them"]),
    ]


def test_the_stored_document_is_flowbus_language() -> None:
    document = converted(expense())

    assert "version" not in document
    assert document["versionLabel"] == "1.2.0"
    assert document["triggers"][0] == {
        "type": "expense.submitted",
        "description": "An employee submits an expense",
        "transform": {"type": "jmespath", "expression": "data"},
    }
    assert document["steps"][2]["type"] == "parallel"
    assert document["steps"][2]["branches"][0]["id"] == "book"
    assert "parallelBranches" not in document["steps"][2]


def test_converting_a_converted_document_changes_nothing() -> None:
    once = converted(expense())

    assert converted(copy.deepcopy(once)) == once


def test_the_input_document_is_not_changed() -> None:
    document = expense()

    convert_document(document)

    assert document == expense()


def test_conditions_read_data_as_the_input() -> None:
    definition = define(expense())

    big = start(definition, instance_id="a", input={"amount": 5000}, now=NOW)
    small = start(definition, instance_id="b", input={"amount": 20}, now=NOW)

    assert big.state.completed == ["classify", "approveRequest"]
    assert small.state.completed[:1] == ["classify"]
    assert "autoApprove" in small.state.completed


def test_step_level_on_failure_stop_is_accepted() -> None:
    definition = validate_definition(expense())

    on_failure = definition.step_map()["approveRequest"].on_failure
    assert on_failure is not None
    assert on_failure.action == "stop"


def test_a_workflow_level_on_failure_passes_through_unchanged() -> None:
    handler = {
        "action": "continue",
        "errorHandler": {
            "conditions": [
                {"errorType": "ValidationError", "nextStepId": "validateRetry"},
                {"errorType": "TimeoutError", "nextStepId": "timeoutHandler"},
            ]
        },
    }

    assert converted(expense(onFailure=copy.deepcopy(handler)))["onFailure"] == handler


# eventPattern


def trigger_of(pattern: Any, **extra: Any) -> dict[str, Any]:
    document = converted(expense(triggers=[{"eventPattern": pattern, **extra}]))
    trigger: dict[str, Any] = document["triggers"][0]
    return trigger


def test_an_event_type_is_the_trigger_type() -> None:
    assert trigger_of("order.created") == {"type": "order.created"}


def test_a_type_with_wildcards_is_a_wildcard_pattern() -> None:
    assert trigger_of("order.*") == {"pattern": {"type": [{"wildcard": "order.*"}]}}


def test_a_json_object_is_an_eventbridge_pattern() -> None:
    written = '{"type": ["order.created"], "data": {"amount": [{"numeric": [">", 100]}]}}'

    assert trigger_of(written) == {
        "pattern": {"type": ["order.created"], "data": {"amount": [{"numeric": [">", 100]}]}}
    }


def test_a_pattern_object_is_taken_as_it_is() -> None:
    assert trigger_of({"source": ["shop"]}, topic="orders") == {
        "topic": "orders",
        "pattern": {"source": ["shop"]},
    }


@pytest.mark.parametrize(
    ("pattern", "extra", "message"),
    [
        ("", {}, "must be an event type or a pattern"),
        (7, {}, "must be an event type or a pattern"),
        ("{not json", {}, "not a JSON pattern"),
        ("order.created", {"type": "order.updated"}, "give eventPattern or type, not both"),
        ({"type": ["a"]}, {"pattern": {"type": ["b"]}}, "give eventPattern or pattern, not both"),
    ],
)
def test_an_unusable_event_pattern_is_refused_naming_the_trigger(
    pattern: Any, extra: dict[str, Any], message: str
) -> None:
    [problem] = problems_of(expense(triggers=[{"eventPattern": pattern, **extra}]))

    assert problem.field == "triggers.0.eventPattern"
    assert message in problem.message


def test_a_pattern_that_does_not_compile_is_refused_naming_the_trigger() -> None:
    written = '{"data": {"amount": [{"numeric": [">"]}]}}'

    [problem] = problems_of(expense(triggers=[{"eventPattern": written}]))

    assert problem.field == "triggers.0.pattern"


def test_a_trigger_without_topic_matches_on_every_topic() -> None:
    definition = define(expense())
    catalog = DefinitionCatalog([definition])

    for topic in ("orders", "expenses"):
        event = {"topic": topic, "type": "expense.submitted", "data": {"amount": 1}}
        assert [m.definition.id for m in catalog.match(event)] == ["expense-approval"]
    assert catalog.match({"topic": "orders", "type": "expense.paid", "data": {}}) == []


def test_a_trigger_without_topic_needs_something_to_match() -> None:
    [problem] = problems_of(expense(triggers=[{"description": "anything at all"}]))

    assert problem.field == "triggers.0"
    assert "needs a topic, a type, a pattern or a transition" in problem.message


# parallelBranches


def test_a_branch_without_branch_id_is_refused_naming_the_step() -> None:
    document = expense()
    del document["steps"][2]["parallelBranches"][1]["branchId"]

    assert problems_of(document) == [
        Problem("Field required", "parallelBranches.1.branchId", "autoApprove")
    ]


def test_parallel_branches_beside_a_task_are_refused_naming_the_step() -> None:
    document = expense()
    document["steps"][2]["taskId"] = "approve"

    [problem] = problems_of(document)

    assert (problem.step_id, problem.field) == ("autoApprove", "parallelBranches")
    assert "taskId" in problem.message


def test_branches_nest() -> None:
    document = expense()
    inner = {
        "stepId": "inner",
        "parallelBranches": [{"branchId": "deep", "steps": [log("deepest")]}],
    }
    document["steps"][2]["parallelBranches"][0]["steps"] = [inner]

    definition = validate_definition(document)

    assert definition.step_map()["inner"].type == "parallel"
    assert definition.layout().branch_of["deepest"] == ("inner", "deep")


# taskId


def test_a_step_whose_task_was_not_resolved_is_refused_naming_step_and_field() -> None:
    document = expense()
    document["steps"][1] = {"stepId": "approveRequest", "taskId": "request-approval"}
    document["steps"][2]["parallelBranches"][1]["steps"] = [
        {"stepId": "tell-them", "taskId": "notify", "config": {"channel": "mail"}}
    ]

    problems = problems_of(document)

    assert [(p.step_id, p.field) for p in problems] == [
        ("approveRequest", "taskId"),
        ("tell-them", "taskId"),
    ]
    assert "'request-approval' was not resolved" in problems[0].message


def test_task_references_and_their_overrides_are_kept_by_the_conversion() -> None:
    step = {
        "stepId": "tell-them",
        "taskId": "notify",
        "taskVersion": 2,
        "name": "Tell them",
        "config": {"channel": "mail"},
        "retryPolicy": {"maxAttempts": 5},
        "timeout": "PT1M",
    }
    document = expense()
    document["steps"][2]["parallelBranches"][1]["steps"] = [copy.deepcopy(step)]

    converted_document, _ = convert_document(document)

    assert converted_document["steps"][2]["branches"][1]["steps"] == [step]


# semantic versions


@pytest.mark.parametrize(
    "ordered",
    [
        ["1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0"],
        ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2"],
        ["1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"],
    ],
)
def test_semantic_versions_order_as_versions(ordered: list[str]) -> None:
    parsed = [SemanticVersion.parse(text) for text in ordered]

    assert sorted(reversed(parsed)) == parsed


def test_build_metadata_does_not_count() -> None:
    assert SemanticVersion.parse("1.2.0+build.7") == SemanticVersion.parse("1.2.0")


@pytest.mark.parametrize("text", ["1.2", "v1.2.0", "01.2.0", "1.2.0-", "one"])
def test_a_version_string_that_is_no_semantic_version_is_refused(text: str) -> None:
    [problem] = problems_of(expense(version=text))

    assert problem.field == "version"
    assert "not a semantic version" in problem.message


def test_an_integer_version_is_still_the_stored_version() -> None:
    definition = validate_definition(expense(version=4))

    assert (definition.version, definition.version_label) == (4, None)


def test_a_label_must_follow_the_highest_stored_label() -> None:
    stored = [(1, "1.0.0"), (2, "1.2.0"), (3, None)]

    assert label_conflict("1.3.0", stored) is None
    assert label_conflict("2.0.0-rc.1", stored) is None
    reason = label_conflict("1.1.9", stored)
    assert reason is not None
    assert "does not come after 1.2.0 (version 2)" in reason


def test_a_label_names_one_version() -> None:
    reason = label_conflict("1.2.0", [(1, "1.0.0"), (2, "1.2.0")])

    assert reason is not None
    assert "already stored as version 2" in reason


def test_the_first_label_may_be_any() -> None:
    assert label_conflict("0.1.0", [(1, None), (2, None)]) is None
