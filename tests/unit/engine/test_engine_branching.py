"""Which step runs next: condition steps with onTrue/onFalse, and `next` transitions."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.engine.core import Transition, start
from flowbus.engine.state import InstanceStatus

from .support import NOW, define, emitted, event_types, log_step

ON_TRUE_ON_FALSE: dict[str, Any] = {
    "id": "by-amount",
    "steps": [
        {
            "id": "check",
            "type": "condition",
            "condition": "input.amount > 1000.0",
            "onTrue": "big",
            "onFalse": "small",
        },
        log_step("big"),
        log_step("small"),
    ],
}

TRANSITIONS: dict[str, Any] = {
    "id": "by-size",
    "steps": [
        {
            "id": "route",
            "type": "condition",
            "next": [
                {"to": "large", "condition": "input.n > 10"},
                {"to": "medium", "condition": "input.n > 5"},
                {"to": "fallback"},
            ],
        },
        log_step("large"),
        log_step("medium"),
        log_step("fallback"),
    ],
}

NO_DEFAULT: dict[str, Any] = {
    "id": "no-default",
    "steps": [
        {
            "id": "route",
            "type": "condition",
            "next": [{"to": "large", "condition": "input.n > 10"}],
        },
        log_step("large"),
    ],
}


def run(raw: dict[str, Any], input: Any) -> Transition:
    return start(define(raw), instance_id="inst-1", input=input, now=NOW)


def test_condition_that_holds_continues_at_on_true() -> None:
    transition = run(ON_TRUE_ON_FALSE, {"amount": 1500.0})

    assert transition.state.completed == ["check", "big"]
    assert transition.state.status is InstanceStatus.COMPLETED


def test_condition_that_fails_continues_at_on_false() -> None:
    transition = run(ON_TRUE_ON_FALSE, {"amount": 10.0})

    assert transition.state.completed == ["check", "small"]
    assert transition.state.status is InstanceStatus.COMPLETED


def test_condition_step_output_records_the_outcome() -> None:
    transition = run(ON_TRUE_ON_FALSE, {"amount": 10.0})

    assert transition.state.steps["check"].output == {"result": False}


def test_condition_compares_an_int_input_with_a_double_literal() -> None:
    transition = run(ON_TRUE_ON_FALSE, {"amount": 1500})

    assert transition.state.completed == ["check", "big"]


def test_condition_without_a_branch_for_its_outcome_ends_the_instance() -> None:
    raw = {
        "id": "only-true",
        "steps": [
            {"id": "check", "type": "condition", "condition": "input.ok", "onTrue": "go"},
            log_step("go"),
        ],
    }

    transition = run(raw, {"ok": False})

    assert transition.state.completed == ["check"]
    assert transition.state.status is InstanceStatus.COMPLETED


def test_condition_that_is_not_boolean_fails_the_step() -> None:
    raw = {
        "id": "not-bool",
        "steps": [
            {"id": "check", "type": "condition", "condition": "input.n", "onTrue": "go"},
            log_step("go"),
        ],
    }

    transition = run(raw, {"n": 1})

    assert transition.state.status is InstanceStatus.FAILED
    assert transition.state.error is not None
    assert transition.state.error.type == "ExpressionError"
    assert "not a boolean" in transition.state.error.message


@pytest.mark.parametrize(
    ("n", "taken"),
    [(20, "large"), (7, "medium")],
    ids=["first-condition", "second-condition"],
)
def test_first_transition_whose_condition_holds_wins(n: int, taken: str) -> None:
    transition = run(TRANSITIONS, {"n": n})

    assert transition.state.completed == ["route", taken]


def test_transition_without_condition_is_taken_when_none_before_it_holds() -> None:
    transition = run(TRANSITIONS, {"n": 1})

    assert transition.state.completed == ["route", "fallback"]


def test_no_matching_transition_fails_the_step_with_expression_error() -> None:
    transition = run(NO_DEFAULT, {"n": 1})

    assert transition.state.steps["route"].error is not None
    assert transition.state.steps["route"].error.type == "ExpressionError"
    assert "no transition of step 'route' matched" in transition.state.steps["route"].error.message


def test_no_matching_transition_fails_the_instance() -> None:
    transition = run(NO_DEFAULT, {"n": 1})

    assert transition.state.status is InstanceStatus.FAILED
    assert event_types(transition.effects)[-2:] == [
        "flowbus.step.failed",
        "flowbus.instance.failed",
    ]


def test_action_step_follows_its_next_transitions() -> None:
    raw = {
        "id": "action-transitions",
        "steps": [
            log_step(
                "first", next=[{"to": "odd", "condition": "input.n % 2 == 1"}, {"to": "even"}]
            ),
            log_step("odd"),
            log_step("even"),
        ],
    }

    transition = run(raw, {"n": 3})

    assert transition.state.completed == ["first", "odd"]


def test_condition_sees_variables_set_by_earlier_steps() -> None:
    raw = {
        "id": "by-variable",
        "steps": [
            {
                "id": "set",
                "type": "action",
                "action": "set_variables",
                "config": {"flag": "{{ input.flag }}"},
                "next": "check",
            },
            {"id": "check", "type": "condition", "condition": "variables.flag", "onTrue": "yes"},
            log_step("yes"),
        ],
    }

    transition = run(raw, {"flag": True})

    assert transition.state.completed == ["set", "check", "yes"]


def test_condition_sees_earlier_step_outputs_by_step_id() -> None:
    raw = {
        "id": "by-output",
        "steps": [
            log_step("hello", next="check"),
            {
                "id": "check",
                "type": "condition",
                "condition": "steps.hello.logged == 'hello'",
                "onTrue": "yes",
            },
            log_step("yes"),
        ],
    }

    transition = run(raw, {})

    assert transition.state.completed == ["hello", "check", "yes"]


def test_taking_a_branch_emits_step_events_only_for_steps_that_ran() -> None:
    events = emitted(run(ON_TRUE_ON_FALSE, {"amount": 1.0}).effects)

    ran = {e.data["stepId"] for e in events if e.type.startswith("flowbus.step.")}
    skipped = {e.data["stepId"] for e in events if e.type == "flowbus.step.skipped"}
    assert (ran - skipped, skipped) == ({"check", "small"}, {"big"})
