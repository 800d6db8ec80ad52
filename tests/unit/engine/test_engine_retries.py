"""Retry policies: a failed try runs again after a durable timer, with backoff."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.engine.effects import RunAction, SetTimer
from flowbus.engine.inputs import ActionResult, TimerFired
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepStatus

from .support import NOW, Instance, at, events_of, of_kind, webhook_step

HTTP_503 = ErrorInfo(type="HttpError", message="503 Service Unavailable", code="503")


def retrying(policy: dict[str, Any], instance_id: str = "inst-1") -> Instance:
    raw = {"id": "retries", "steps": [webhook_step("call", retryPolicy=policy)]}
    return Instance(raw, instance_id=instance_id)


def fail_try(instance: Instance, attempt: int, error: ErrorInfo = HTTP_503) -> None:
    instance.apply(ActionResult("call", attempt, error=error), at(attempt))


def retry_delays(instance: Instance, failures: int) -> list[float]:
    """Fail `failures` tries in a row, firing each retry timer; the delays announced."""
    delays: list[float] = []
    for attempt in range(1, failures + 1):
        fail_try(instance, attempt)
        [retrying_event] = events_of(instance.effects, "flowbus.step.retrying")
        delays.append(retrying_event.data["delaySeconds"])
        instance.apply(TimerFired("retry", "call", attempt), at(attempt))
    return delays


def test_failed_try_announces_the_retry_with_next_try_and_delay() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT5S"})

    fail_try(instance, 1)

    [event] = events_of(instance.effects, "flowbus.step.retrying")
    assert event.data["nextTry"] == 2
    assert event.data["maxAttempts"] == 3
    assert event.data["delaySeconds"] == 5.0
    assert event.data["error"]["type"] == "HttpError"


def test_failed_try_sets_a_retry_timer_due_after_the_delay() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT5S"})

    instance.apply(ActionResult("call", 1, error=HTTP_503), at(10))

    assert of_kind(instance.effects, SetTimer) == [
        SetTimer(kind="retry", due_at=at(15), step_id="call", attempt=1)
    ]


def test_step_waiting_for_its_retry_is_retrying_and_the_instance_waits() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT5S"})

    fail_try(instance, 1)

    assert instance.state.steps["call"].status is StepStatus.RETRYING
    assert instance.state.active == ["call"]
    assert instance.state.status is InstanceStatus.WAITING


def test_fixed_backoff_waits_the_same_delay_before_every_retry() -> None:
    instance = retrying({"maxAttempts": 4, "delay": "PT5S", "strategy": "fixed"})

    assert retry_delays(instance, 3) == [5.0, 5.0, 5.0]


def test_exponential_backoff_multiplies_the_delay_per_retry() -> None:
    instance = retrying(
        {"maxAttempts": 4, "delay": "PT2S", "strategy": "exponential", "multiplier": 3}
    )

    assert retry_delays(instance, 3) == [2.0, 6.0, 18.0]


def test_max_delay_caps_the_exponential_backoff() -> None:
    instance = retrying(
        {
            "maxAttempts": 4,
            "delay": "PT10S",
            "strategy": "exponential",
            "multiplier": 10,
            "maxDelay": "PT30S",
        }
    )

    assert retry_delays(instance, 3) == [10.0, 30.0, 30.0]


def test_jitter_gives_the_same_delay_for_the_same_instance_and_attempt() -> None:
    policy = {"maxAttempts": 3, "delay": "PT10S", "jitter": 0.5}
    first, second = retrying(policy), retrying(policy)

    fail_try(first, 1)
    fail_try(second, 1)

    assert of_kind(first.effects, SetTimer) == of_kind(second.effects, SetTimer)


@pytest.mark.parametrize("instance_id", [f"inst-{n}" for n in range(10)])
def test_jitter_keeps_the_delay_within_the_spread(instance_id: str) -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT10S", "jitter": 0.5}, instance_id)

    fail_try(instance, 1)

    [event] = events_of(instance.effects, "flowbus.step.retrying")
    assert 5.0 <= event.data["delaySeconds"] <= 15.0


def test_jitter_spreads_the_delays_of_different_instances() -> None:
    delays = set()
    for n in range(10):
        instance = retrying({"maxAttempts": 3, "delay": "PT10S", "jitter": 0.5}, f"inst-{n}")
        fail_try(instance, 1)
        delays.update(
            e.data["delaySeconds"] for e in events_of(instance.effects, "flowbus.step.retrying")
        )

    assert len(delays) > 1


def test_retry_timer_runs_the_step_again_as_a_new_attempt_with_the_same_idempotency_key() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT5S"})
    fail_try(instance, 1)

    instance.apply(TimerFired("retry", "call", 1), at(6))

    assert of_kind(instance.effects, RunAction) == [
        RunAction(
            step_id="call",
            attempt=2,
            action="webhook",
            config={"url": "https://example.test/call"},
            idempotency_key="inst-1:call",
            tries=2,
        )
    ]
    [started] = events_of(instance.effects, "flowbus.step.started")
    assert started.data["attempt"] == 2


def test_retry_timer_of_another_attempt_changes_nothing() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT5S"})
    fail_try(instance, 1)
    before = instance.state.model_copy(deep=True)

    effects = instance.apply(TimerFired("retry", "call", 7), at(6))

    assert effects == []
    assert instance.state == before


def test_retry_timer_for_a_step_that_is_not_retrying_changes_nothing() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT5S"})

    effects = instance.apply(TimerFired("retry", "call", 1), at(6))

    assert effects == []


def test_last_allowed_try_failing_fails_the_instance_with_its_error() -> None:
    instance = retrying({"maxAttempts": 2, "delay": "PT1S"})
    fail_try(instance, 1)
    instance.apply(TimerFired("retry", "call", 1), at(2))

    fail_try(instance, 2)

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.error == HTTP_503.model_copy(update={"step_id": "call"})
    assert events_of(instance.effects, "flowbus.step.retrying") == []


def test_error_type_outside_retry_on_is_not_retried() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT1S", "retryOn": ["HttpError"]})

    fail_try(instance, 1, ErrorInfo(type="ConnectionError", message="refused"))

    assert instance.state.status is InstanceStatus.FAILED
    assert of_kind(instance.effects, SetTimer) == []


def test_error_type_named_in_retry_on_is_retried() -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT1S", "retryOn": ["ConnectionError"]})

    fail_try(instance, 1, ErrorInfo(type="ConnectionError", message="refused"))

    assert instance.state.steps["call"].status is StepStatus.RETRYING


@pytest.mark.parametrize("error_type", ["ExpressionError", "ActionConfigError"])
def test_definition_errors_are_never_retried_even_when_retry_on_names_them(
    error_type: str,
) -> None:
    instance = retrying({"maxAttempts": 3, "delay": "PT1S", "retryOn": [error_type]})

    fail_try(instance, 1, ErrorInfo(type=error_type, message="the definition is wrong"))

    assert instance.state.status is InstanceStatus.FAILED
    assert events_of(instance.effects, "flowbus.step.retrying") == []


def test_config_that_does_not_render_valid_fails_once_without_retrying() -> None:
    raw = {
        "id": "retries",
        "steps": [
            {
                "id": "call",
                "type": "action",
                "action": "webhook",
                "config": {"url": "{{ input.url }}"},
                "retryPolicy": {"maxAttempts": 3, "delay": "PT1S"},
            }
        ],
    }

    instance = Instance(raw, input={}, now=NOW)

    assert instance.state.error is not None
    assert instance.state.error.type == "ActionConfigError"
    assert instance.state.status is InstanceStatus.FAILED
    assert of_kind(instance.effects, RunAction) == []
