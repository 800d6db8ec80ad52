"""`wait` steps: for a duration, until a time, or for a correlated event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowbus.engine.effects import SetTimer, Subscribe, Unsubscribe
from flowbus.engine.inputs import EventReceived, TimerFired
from flowbus.engine.state import InstanceStatus, StepStatus
from flowbus.times import rfc3339

from .support import NOW_TEXT, Instance, at, log_step, of_kind


def waiting(wait: dict[str, Any], input: Any = None) -> Instance:
    raw = {
        "id": "waits",
        "steps": [{"id": "pause", "type": "wait", "next": "after", **wait}, log_step("after")],
    }
    if "onTimeout" in wait:
        raw["steps"].append(log_step(wait["onTimeout"]))
    return Instance(raw, input=input)


PAYMENT_EVENT = {
    "topic": "payments",
    "type": "payment.received",
    "match": "data.orderId",
    "key": "{{ input.orderId }}",
}
PAYMENT = {"type": "payment.received", "data": {"orderId": "o-7", "amount": 40}}


def test_duration_wait_sets_a_wait_timer_due_after_the_duration() -> None:
    instance = waiting({"duration": "PT5M"})

    assert of_kind(instance.effects, SetTimer) == [
        SetTimer(kind="wait", due_at=at(300), step_id="pause", attempt=1)
    ]


def test_duration_wait_leaves_the_step_and_the_instance_waiting() -> None:
    instance = waiting({"duration": "PT5M"})

    assert instance.state.steps["pause"].status is StepStatus.WAITING
    assert instance.state.status is InstanceStatus.WAITING


def test_wait_timer_firing_completes_the_wait_and_continues() -> None:
    instance = waiting({"duration": "PT5M"})

    instance.apply(TimerFired("wait", "pause", 1), at(300))

    assert instance.state.steps["pause"].output == {"waitedUntil": rfc3339(at(300))}
    assert instance.state.completed == ["pause", "after"]


def test_until_a_time_already_past_completes_at_once() -> None:
    instance = waiting({"until": "{{ input.dueAt }}"}, input={"dueAt": "2020-01-01T00:00:00Z"})

    assert instance.state.steps["pause"].output == {"waitedUntil": NOW_TEXT}
    assert instance.state.status is InstanceStatus.COMPLETED
    assert of_kind(instance.effects, SetTimer) == []


def test_until_a_future_time_sets_the_wait_timer_at_that_time() -> None:
    instance = waiting({"until": "{{ input.dueAt }}"}, input={"dueAt": "2030-01-02T03:04:05Z"})

    assert of_kind(instance.effects, SetTimer) == [
        SetTimer(
            kind="wait",
            due_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
            step_id="pause",
            attempt=1,
        )
    ]


def test_until_a_time_without_a_zone_fails_the_step_with_expression_error() -> None:
    instance = waiting({"until": "{{ input.dueAt }}"}, input={"dueAt": "2030-01-02T03:04:05"})

    error = instance.state.steps["pause"].error
    assert error is not None
    assert error.type == "ExpressionError"


def test_event_wait_subscribes_with_the_rendered_key() -> None:
    instance = waiting({"event": PAYMENT_EVENT}, input={"orderId": "o-7"})

    assert of_kind(instance.effects, Subscribe) == [
        Subscribe(
            step_id="pause",
            attempt=1,
            topic="payments",
            event_type="payment.received",
            match="data.orderId",
            key="o-7",
        )
    ]


def test_event_wait_with_a_key_that_renders_null_fails_with_expression_error() -> None:
    instance = waiting({"event": PAYMENT_EVENT}, input={})

    error = instance.state.steps["pause"].error
    assert error is not None
    assert error.type == "ExpressionError"
    assert of_kind(instance.effects, Subscribe) == []


def test_received_event_completes_the_wait_with_the_event_as_output() -> None:
    instance = waiting({"event": PAYMENT_EVENT}, input={"orderId": "o-7"})

    instance.apply(EventReceived("pause", PAYMENT), at(1))

    assert instance.state.steps["pause"].output == PAYMENT
    assert instance.state.completed == ["pause", "after"]


def test_received_event_ends_the_subscription() -> None:
    instance = waiting({"event": PAYMENT_EVENT}, input={"orderId": "o-7"})

    instance.apply(EventReceived("pause", PAYMENT), at(1))

    assert of_kind(instance.effects, Unsubscribe) == [Unsubscribe(step_id="pause")]


def test_event_without_a_step_goes_to_the_waiting_event_step() -> None:
    instance = waiting({"event": PAYMENT_EVENT}, input={"orderId": "o-7"})

    instance.apply(EventReceived(None, PAYMENT), at(1))

    assert instance.state.steps["pause"].output == PAYMENT


def test_event_for_a_duration_wait_changes_nothing() -> None:
    instance = waiting({"duration": "PT5M"})

    effects = instance.apply(EventReceived("pause", PAYMENT), at(1))

    assert effects == []


def test_elapsed_wait_with_on_timeout_goes_there_with_timed_out_output() -> None:
    instance = waiting(
        {"event": PAYMENT_EVENT, "timeout": "PT1H", "onTimeout": "overdue"},
        input={"orderId": "o-7"},
    )

    instance.apply(TimerFired("step_timeout", "pause", 1), at(3600))

    assert instance.state.steps["pause"].output == {"timedOut": True}
    assert instance.state.steps["pause"].status is StepStatus.COMPLETED
    assert instance.state.completed == ["pause", "overdue"]


def test_elapsed_event_wait_ends_the_subscription() -> None:
    instance = waiting(
        {"event": PAYMENT_EVENT, "timeout": "PT1H", "onTimeout": "overdue"},
        input={"orderId": "o-7"},
    )

    instance.apply(TimerFired("step_timeout", "pause", 1), at(3600))

    assert of_kind(instance.effects, Unsubscribe) == [Unsubscribe(step_id="pause")]


def test_elapsed_wait_without_on_timeout_fails_with_timeout_error() -> None:
    instance = waiting({"event": PAYMENT_EVENT, "timeout": "PT1H"}, input={"orderId": "o-7"})

    instance.apply(TimerFired("step_timeout", "pause", 1), at(3600))

    error = instance.state.steps["pause"].error
    assert error is not None
    assert error.type == "TimeoutError"
    assert instance.state.status is InstanceStatus.FAILED
    assert of_kind(instance.effects, Unsubscribe) == [Unsubscribe(step_id="pause")]


def test_event_after_the_wait_timed_out_changes_nothing() -> None:
    instance = waiting(
        {"event": PAYMENT_EVENT, "timeout": "PT1H", "onTimeout": "overdue"},
        input={"orderId": "o-7"},
    )
    instance.apply(TimerFired("step_timeout", "pause", 1), at(3600))

    effects = instance.apply(EventReceived("pause", PAYMENT), at(3601))

    assert effects == []
