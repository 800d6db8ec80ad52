"""How a step failure ends an instance, and how a runaway loop is stopped."""

from __future__ import annotations

from typing import Any

import pytest

import flowbus.engine.run
from flowbus.engine.core import Transition, start
from flowbus.engine.effects import RecordAttempt
from flowbus.engine.state import InstanceStatus

from .support import NOW, define, emitted, event_types, log_step

MISSING_FIELD: dict[str, Any] = {
    "id": "missing-field",
    "steps": [
        {
            "id": "check",
            "type": "condition",
            "condition": "input.amount > 1000.0",
            "onTrue": "big",
        },
        log_step("big"),
    ],
}

CYCLE: dict[str, Any] = {
    "id": "cycle",
    "steps": [
        {
            "id": "ping",
            "type": "action",
            "action": "set_variables",
            "config": {"last": "ping"},
            "next": "pong",
        },
        {
            "id": "pong",
            "type": "action",
            "action": "set_variables",
            "config": {"last": "pong"},
            "next": [{"to": "ping", "condition": "true"}],
        },
    ],
}


def run_missing_field() -> Transition:
    return start(define(MISSING_FIELD), instance_id="inst-1", input={}, now=NOW)


def test_cel_error_on_a_missing_field_fails_the_step_with_expression_error() -> None:
    error = run_missing_field().state.steps["check"].error

    assert error is not None
    assert (error.type, error.step_id) == ("ExpressionError", "check")
    assert "input.amount > 1000.0" in error.message


def test_failed_step_emits_step_failed_then_instance_failed() -> None:
    events = emitted(run_missing_field().effects)

    assert [e.type for e in events] == [
        "flowbus.instance.started",
        "flowbus.step.started",
        "flowbus.step.failed",
        "flowbus.instance.failed",
    ]
    assert events[2].data["error"]["type"] == "ExpressionError"
    assert events[3].data["error"] == events[2].data["error"]


def test_failed_step_fails_the_instance_with_the_step_error() -> None:
    state = run_missing_field().state

    assert state.status is InstanceStatus.FAILED
    assert state.error == state.steps["check"].error
    assert state.active == []


def test_failed_attempt_is_recorded_with_its_error() -> None:
    records = [e for e in run_missing_field().effects if isinstance(e, RecordAttempt)]

    assert [r.status for r in records] == ["running", "failed"]
    assert records[1].error is not None
    assert records[1].error.type == "ExpressionError"


def test_cycle_that_decides_loads_as_a_definition() -> None:
    assert [s.id for s in define(CYCLE).steps] == ["ping", "pong"]


def test_steps_looping_without_waiting_fail_the_instance_with_loop_limit_exceeded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flowbus.engine.run, "MAX_STEPS_PER_TRANSITION", 20)

    transition = start(define(CYCLE), instance_id="inst-1", input={}, now=NOW)

    assert transition.state.status is InstanceStatus.FAILED
    assert transition.state.error is not None
    assert transition.state.error.type == "LoopLimitExceeded"
    assert transition.state.error.message == "more than 20 steps ran without waiting"
    assert event_types(transition.effects)[-1] == "flowbus.instance.failed"


def test_loop_limit_stops_after_the_limit_of_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flowbus.engine.run, "MAX_STEPS_PER_TRANSITION", 20)

    transition = start(define(CYCLE), instance_id="inst-1", input={}, now=NOW)

    assert event_types(transition.effects).count("flowbus.step.started") == 20
    assert transition.state.steps["ping"].attempt == 10
    assert transition.state.steps["pong"].attempt == 10
