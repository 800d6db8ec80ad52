"""Seed 002's step documents: `config.action`, `next_steps`, `conditions` with `match`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flowbus.definitions.compat import convert_document
from flowbus.definitions.errors import DefinitionError, Problem
from flowbus.definitions.loader import validate_definition
from flowbus.engine.core import start
from flowbus.engine.effects import LogLine
from flowbus.steps.condition import ConditionStepModel
from tests.unit.engine.support import NOW, define

# The workflow schema example of seed 002, as printed (templates there carry no `id`; the
# API's PUT /v1/definitions/{id} gives it one).
SEED_002_STEPS: list[dict[str, Any]] = [
    {
        "id": "validate_input",
        "name": "Validate Input Data",
        "type": "condition",
        "conditions": [{"field": "email", "operator": "contains", "value": "@"}],
        "next_steps": ["send_welcome", "send_error"],
    },
    {
        "id": "send_welcome",
        "name": "Send Welcome Email",
        "type": "action",
        "config": {
            "action": "send_email",
            "to": "{{variables.email}}",
            "subject": "Welcome!",
            "body": "Welcome to our platform!",
        },
        "next_steps": ["log_success"],
    },
    {
        "id": "send_error",
        "name": "Log Invalid Email",
        "type": "action",
        "config": {
            "action": "log_message",
            "message": "Invalid email provided: {{variables.email}}",
            "level": "error",
        },
    },
    {
        "id": "log_success",
        "name": "Log Success",
        "type": "action",
        "config": {
            "action": "log_message",
            "message": "Welcome email sent successfully",
            "level": "info",
        },
    },
]


def seed_document() -> dict[str, Any]:
    return {"id": "welcome", "steps": copy.deepcopy(SEED_002_STEPS)}


def converted(document: dict[str, Any]) -> dict[str, Any]:
    result, problems = convert_document(document)
    assert problems == []
    return result


def test_the_printed_workflow_converts_to_flowbus_steps() -> None:
    document = converted(seed_document())

    assert document["context"] == {"email": "input.email"}
    assert document["steps"][0] == {
        "id": "validate_input",
        "name": "Validate Input Data",
        "type": "condition",
        "rules": [{"field": "variables.email", "operator": "contains", "value": "@"}],
        "onTrue": "send_welcome",
        "onFalse": "send_error",
    }
    assert document["steps"][1] == {
        "id": "send_welcome",
        "name": "Send Welcome Email",
        "type": "action",
        "action": "send_email",
        "config": {
            "to": "{{variables.email}}",
            "subject": "Welcome!",
            "body": "Welcome to our platform!",
        },
        "next": "log_success",
    }
    assert document["steps"][2]["action"] == "log_message"
    assert "next" not in document["steps"][2]


def test_the_printed_workflow_validates() -> None:
    definition = validate_definition(seed_document())

    assert [s.id for s in definition.steps] == [
        "validate_input",
        "send_welcome",
        "send_error",
        "log_success",
    ]


def test_converting_a_converted_document_changes_nothing() -> None:
    once = converted(seed_document())

    assert converted(copy.deepcopy(once)) == once


def test_the_input_document_is_not_changed() -> None:
    document = seed_document()

    convert_document(document)

    assert document == seed_document()


def test_an_invalid_email_takes_the_false_successor_and_logs_it() -> None:
    definition = define(seed_document())

    transition = start(definition, instance_id="i-1", input={"email": "nobody"}, now=NOW)

    assert transition.state.steps["validate_input"].output == {"result": False}
    assert transition.state.completed == ["validate_input", "send_error"]
    assert [e for e in transition.effects if isinstance(e, LogLine)] == [
        LogLine(level="error", message="Invalid email provided: nobody", fields={})
    ]


def test_a_valid_email_goes_on_to_send_the_welcome_email() -> None:
    definition = define(seed_document())

    transition = start(definition, instance_id="i-1", input={"email": "ada@example.org"}, now=NOW)

    assert transition.state.steps["validate_input"].output == {"result": True}
    assert "send_welcome" in transition.state.active


def test_a_single_rule_given_as_config_is_a_condition() -> None:
    document = {
        "id": "status",
        "steps": [
            {
                "id": "check_status",
                "name": "Check User Status",
                "type": "condition",
                "config": {"field": "user_status", "operator": "equals", "value": "active"},
                "next_steps": ["active_user_flow", "inactive_user_flow"],
            },
            {
                "id": "active_user_flow",
                "type": "action",
                "config": {"action": "log", "message": "a"},
            },
            {
                "id": "inactive_user_flow",
                "type": "action",
                "config": {"action": "log", "message": "i"},
            },
        ],
    }

    step = converted(document)["steps"][0]

    assert step["rules"] == [
        {"field": "variables.user_status", "operator": "equals", "value": "active"}
    ]
    assert "config" not in step
    assert validate_definition(document).id == "status"


def test_fields_that_start_at_a_scope_are_kept() -> None:
    document = {
        "id": "scoped",
        "steps": [
            {
                "id": "check",
                "type": "condition",
                "conditions": [
                    {"field": "input.amount", "operator": "gt", "value": 5},
                    {"field": "steps.fetch.status", "operator": "exists", "value": True},
                ],
                "next_steps": ["done"],
            },
            {"id": "done", "type": "action", "config": {"action": "log", "message": "d"}},
        ],
    }

    step = converted(document)["steps"][0]

    assert [rule["field"] for rule in step["rules"]] == ["input.amount", "steps.fetch.status"]
    assert "context" not in converted(document)


def test_a_variable_name_that_is_no_identifier_is_quoted() -> None:
    document = seed_document()
    document["steps"][0]["conditions"] = [{"field": "user-mail", "operator": "exists"}]

    result = converted(document)

    assert result["steps"][0]["rules"][0]["field"] == 'variables."user-mail"'
    assert result["context"]["user-mail"] == 'input."user-mail"'


def test_a_mapping_the_document_gives_is_kept() -> None:
    document = seed_document()
    document["context"] = {"email": "input.contact.email"}

    assert converted(document)["context"] == {"email": "input.contact.email"}


def test_a_condition_with_three_successors_is_refused_naming_the_step() -> None:
    document = seed_document()
    document["steps"][0]["next_steps"] = ["send_welcome", "send_error", "log_success"]

    with pytest.raises(DefinitionError) as caught:
        validate_definition(document)

    [problem] = caught.value.problems
    assert (problem.step_id, problem.field) == ("validate_input", "next_steps")
    assert "two successors" in problem.message


def test_an_action_with_two_successors_is_refused_naming_the_step() -> None:
    document = seed_document()
    document["steps"][1]["next_steps"] = ["log_success", "send_error"]

    _, problems = convert_document(document)

    assert [(p.step_id, p.field) for p in problems] == [("send_welcome", "next_steps")]


def test_next_steps_beside_next_is_refused() -> None:
    document = seed_document()
    document["steps"][1]["next"] = "log_success"

    _, problems = convert_document(document)

    assert problems == [Problem("give next_steps or next, not both", "next_steps", "send_welcome")]


def test_a_flowbus_document_passes_unchanged() -> None:
    document = {
        "id": "native",
        "steps": [
            {"id": "a", "type": "action", "action": "log", "config": {"message": "x"}, "next": "b"},
            {"id": "b", "type": "condition", "condition": "input.n > 1", "onTrue": "a"},
        ],
    }

    assert converted(copy.deepcopy(document)) == document


# Each operator of seed 002's condition rules, decided by the engine on converted documents.


def decide(rule: dict[str, Any], variables: Any, match: str | None = None) -> bool:
    rules = rule if isinstance(rule, list) else [rule]
    step: dict[str, Any] = {
        "id": "check",
        "type": "condition",
        "conditions": rules,
        "next_steps": ["yes", "no"],
    }
    if match is not None:
        step["match"] = match
    document = {
        "id": "rules",
        "steps": [
            step,
            {"id": "yes", "type": "action", "config": {"action": "log", "message": "yes"}},
            {"id": "no", "type": "action", "config": {"action": "log", "message": "no"}},
        ],
    }
    transition = start(define(document), instance_id="i", input=variables, now=NOW)
    result = transition.state.steps["check"].output["result"]
    assert transition.state.completed == ["check", "yes" if result else "no"]
    return bool(result)


@pytest.mark.parametrize(
    ("rule", "variables", "expected"),
    [
        ({"field": "amount", "operator": "gt", "value": 100}, {"amount": 101}, True),
        ({"field": "amount", "operator": "gt", "value": 100}, {"amount": 100}, False),
        ({"field": "amount", "operator": "gt", "value": 100}, {"amount": "500"}, False),
        ({"field": "status", "operator": "equals", "value": "active"}, {"status": "active"}, True),
        ({"field": "status", "operator": "equals", "value": "active"}, {"status": "Active"}, False),
        ({"field": "count", "operator": "equals", "value": 3}, {"count": 3.0}, True),
        ({"field": "email", "operator": "contains", "value": "@"}, {"email": "a@b.c"}, True),
        ({"field": "email", "operator": "contains", "value": "@"}, {"email": "ab.c"}, False),
        ({"field": "tags", "operator": "contains", "value": "vip"}, {"tags": ["new", "vip"]}, True),
        ({"field": "tags", "operator": "contains", "value": "vip"}, {"tags": ["new"]}, False),
        ({"field": "country", "operator": "in", "value": ["DE", "FR"]}, {"country": "FR"}, True),
        ({"field": "country", "operator": "in", "value": ["DE", "FR"]}, {"country": "US"}, False),
        ({"field": "coupon", "operator": "exists"}, {"coupon": "X1"}, True),
        ({"field": "coupon", "operator": "exists"}, {}, False),
        ({"field": "coupon", "operator": "exists", "value": False}, {}, True),
        ({"field": "coupon", "operator": "exists", "value": False}, {"coupon": "X1"}, False),
        ({"field": "sku", "operator": "matches", "value": "^ord-[0-9]+$"}, {"sku": "ord-17"}, True),
        ({"field": "sku", "operator": "matches", "value": "^ord-[0-9]+$"}, {"sku": "ord-x"}, False),
        ({"field": "sku", "operator": "matches", "value": "^ord-"}, {"sku": 17}, False),
    ],
)
def test_each_operator_decides_the_branch(
    rule: dict[str, Any], variables: dict[str, Any], expected: bool
) -> None:
    assert decide(rule, variables) is expected


ANY_OF = [
    {"field": "amount", "operator": "gt", "value": 1000},
    {"field": "tier", "operator": "equals", "value": "gold"},
]


def test_match_all_needs_every_rule() -> None:
    assert decide(ANY_OF, {"amount": 5000, "tier": "basic"}, match="all") is False
    assert decide(ANY_OF, {"amount": 5000, "tier": "gold"}, match="all") is True


def test_match_all_is_the_default() -> None:
    assert decide(ANY_OF, {"amount": 5000, "tier": "basic"}) is False


def test_match_any_needs_one_rule() -> None:
    assert decide(ANY_OF, {"amount": 5, "tier": "gold"}, match="any") is True
    assert decide(ANY_OF, {"amount": 5000, "tier": "basic"}, match="any") is True
    assert decide(ANY_OF, {"amount": 5, "tier": "basic"}, match="any") is False


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"field": "amount", "operator": "gt", "value": "many"}, "gt needs a number"),
        ({"field": "country", "operator": "in", "value": "DE"}, "in needs a list"),
        ({"field": "sku", "operator": "matches", "value": "("}, "not a regular expression"),
        ({"field": "sku", "operator": "like", "value": "x"}, "Input should be"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_naming_the_step(
    rule: dict[str, Any], message: str
) -> None:
    document = seed_document()
    document["steps"][0]["conditions"] = [rule]

    with pytest.raises(DefinitionError) as caught:
        validate_definition(document)

    assert {p.step_id for p in caught.value.problems} == {"validate_input"}
    assert message in str(caught.value)


def test_converted_rules_are_the_condition_step_model() -> None:
    definition = validate_definition(seed_document())

    assert isinstance(definition.steps[0], ConditionStepModel)
    assert definition.steps[0].match == "all"
