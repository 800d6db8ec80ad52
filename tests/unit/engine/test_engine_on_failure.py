"""`onFailure`: where a step that has failed for good goes."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.engine.inputs import ActionResult, TimerFired
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepStatus

from .support import Instance, at, events_of, log_step, webhook_step


def http_error(code: str) -> ErrorInfo:
    return ErrorInfo(type="HttpError", message=f"status {code}", code=code)


def failing_call(on_failure: dict[str, Any], *others: dict[str, Any], **extra: Any) -> Instance:
    raw = {"id": "handled", "steps": [webhook_step("call", onFailure=on_failure, **extra), *others]}
    return Instance(raw)


def fail(instance: Instance, error: ErrorInfo, attempt: int = 1) -> None:
    instance.apply(ActionResult("call", attempt, error=error), at(attempt))


ROUTES_BY_CODE = {
    "errorHandler": {
        "conditions": [
            {"errorType": "HttpError", "errorCode": "503", "nextStepId": "busy"},
            {"errorType": "HttpError", "nextStepId": "broken"},
            {"errorType": "TimeoutError", "nextStepId": "slow"},
        ]
    }
}


def routed_by_code() -> Instance:
    return failing_call(ROUTES_BY_CODE, log_step("busy"), log_step("broken"), log_step("slow"))


def test_error_handler_routes_a_failure_by_its_error_type() -> None:
    instance = routed_by_code()

    fail(instance, ErrorInfo(type="TimeoutError", message="too slow"))

    assert instance.state.completed == ["slow"]
    assert instance.state.status is InstanceStatus.COMPLETED


def test_error_handler_routes_a_failure_by_error_type_and_code() -> None:
    instance = routed_by_code()

    fail(instance, http_error("503"))

    assert instance.state.completed == ["busy"]


def test_error_handler_condition_with_a_code_skips_errors_with_other_codes() -> None:
    instance = routed_by_code()

    fail(instance, http_error("404"))

    assert instance.state.completed == ["broken"]


def test_first_matching_error_handler_condition_wins() -> None:
    on_failure = {
        "errorHandler": {
            "conditions": [
                {"errorType": "HttpError", "nextStepId": "first"},
                {"errorType": "HttpError", "errorCode": "503", "nextStepId": "second"},
            ]
        }
    }
    instance = failing_call(on_failure, log_step("first"), log_step("second"))

    fail(instance, http_error("503"))

    assert instance.state.completed == ["first"]


def test_routed_failure_keeps_the_step_failed_and_emits_step_failed() -> None:
    instance = routed_by_code()

    fail(instance, http_error("503"))

    assert instance.state.steps["call"].status is StepStatus.FAILED
    [failed] = events_of(instance.effects, "flowbus.step.failed")
    assert failed.data["error"]["code"] == "503"


def test_failure_no_error_handler_condition_matches_falls_back_to_the_action() -> None:
    instance = routed_by_code()

    fail(instance, ErrorInfo(type="ConnectionError", message="refused"))

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.completed == []


def test_continue_goes_on_at_next_step_id() -> None:
    instance = failing_call(
        {"action": "continue", "nextStepId": "recover"},
        log_step("after"),
        log_step("recover"),
        next="after",
    )

    fail(instance, http_error("500"))

    assert instance.state.completed == ["recover"]
    assert instance.state.status is InstanceStatus.COMPLETED


def test_continue_without_next_step_id_follows_the_steps_own_next() -> None:
    instance = failing_call({"action": "continue"}, log_step("after"), next="after")

    fail(instance, http_error("500"))

    assert instance.state.completed == ["after"]
    assert instance.state.status is InstanceStatus.COMPLETED


def test_continue_from_a_last_step_completes_the_instance() -> None:
    instance = failing_call({"action": "continue"})

    fail(instance, http_error("500"))

    assert instance.state.status is InstanceStatus.COMPLETED


def test_stop_fails_the_instance_with_the_step_error() -> None:
    instance = failing_call({"action": "stop"}, log_step("after"), next="after")

    fail(instance, http_error("500"))

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.error == http_error("500").model_copy(update={"step_id": "call"})
    assert events_of(instance.effects, "flowbus.instance.failed") != []


def test_retry_without_a_policy_retries_three_tries_exponentially_from_one_second() -> None:
    instance = failing_call({"action": "retry"})
    delays = []

    for attempt in (1, 2):
        fail(instance, http_error("500"), attempt)
        [retrying] = events_of(instance.effects, "flowbus.step.retrying")
        delays.append((retrying.data["maxAttempts"], retrying.data["delaySeconds"]))
        instance.apply(TimerFired("retry", "call", attempt), at(attempt))

    assert delays == [(3, 1.0), (3, 2.0)]


def test_retry_without_a_policy_stops_after_the_third_try() -> None:
    instance = failing_call({"action": "retry"})
    for attempt in (1, 2):
        fail(instance, http_error("500"), attempt)
        instance.apply(TimerFired("retry", "call", attempt), at(attempt))

    fail(instance, http_error("500"), 3)

    assert instance.state.status is InstanceStatus.FAILED


@pytest.mark.parametrize("action", ["continue", "stop"])
def test_on_failure_other_than_retry_does_not_retry(action: str) -> None:
    instance = failing_call({"action": action})

    fail(instance, http_error("500"))

    assert events_of(instance.effects, "flowbus.step.retrying") == []


def test_error_handler_applies_after_the_retries_are_spent() -> None:
    instance = failing_call(
        {"errorHandler": {"conditions": [{"errorType": "HttpError", "nextStepId": "fallback"}]}},
        log_step("fallback"),
        retryPolicy={"maxAttempts": 2, "delay": "PT1S"},
    )
    fail(instance, http_error("500"), 1)
    instance.apply(TimerFired("retry", "call", 1), at(2))

    fail(instance, http_error("500"), 2)

    assert instance.state.completed == ["fallback"]
