"""`fail` steps: end the workflow as failed, on purpose, with an error type."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import validate_definition
from flowbus.engine.state import InstanceStatus

from .support import Instance, event_types, log_step


def failing(fail: dict[str, Any], *before: dict[str, Any]) -> Instance:
    raw = {"id": "fails", "steps": [*before, {"id": "stop", "type": "fail", **fail}]}
    return Instance(raw, input={"orderId": "o-7"})


def test_fail_step_fails_the_instance_with_its_error_type_code_and_rendered_message() -> None:
    instance = failing(
        {"error": "PaymentTimeout", "code": "late", "message": "order {{ input.orderId }} unpaid"}
    )

    error = instance.state.error
    assert error is not None
    assert (error.type, error.code, error.message, error.step_id) == (
        "PaymentTimeout",
        "late",
        "order o-7 unpaid",
        "stop",
    )
    assert instance.state.status is InstanceStatus.FAILED


def test_fail_step_without_error_or_message_fails_with_workflow_failed() -> None:
    instance = failing({})

    error = instance.state.error
    assert error is not None
    assert (error.type, error.message) == ("WorkflowFailed", "step 'stop' failed the workflow")


def test_fail_step_compensates_the_completed_steps() -> None:
    instance = failing(
        {"error": "PaymentTimeout"},
        log_step(
            "reserve",
            next="stop",
            compensate={"action": "send_event", "config": {"topic": "stock", "type": "release"}},
        ),
    )

    assert event_types(instance.effects)[-4:] == [
        "flowbus.step.failed",
        "flowbus.instance.compensating",
        "flowbus.step.compensated",
        "flowbus.instance.compensated",
    ]
    assert instance.state.error is not None
    assert instance.state.error.type == "PaymentTimeout"


def test_a_fail_step_with_on_failure_or_retries_is_refused_at_load() -> None:
    for extra in (
        {"onFailure": {"action": "continue", "nextStepId": "after"}},
        {"retryPolicy": {"maxAttempts": 2}},
    ):
        step = {"id": "stop", "type": "fail", "error": "PaymentTimeout", **extra}
        with pytest.raises(DefinitionError) as refused:
            validate_definition({"id": "fails", "steps": [step, log_step("after")]})
        [problem] = [p for p in refused.value.problems if p.step_id == "stop"]
        assert "takes no retryPolicy or onFailure" in problem.message
