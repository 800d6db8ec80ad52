"""Compensation (sagas): when an instance fails, completed steps are undone newest first."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import PublishEvent, RunAction
from flowbus.engine.inputs import ActionResult
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepStatus

from .support import Instance, at, event_types, events_of, log_step, of_kind, webhook_step

PAYMENT_DECLINED = ErrorInfo(type="HttpError", message="402 Payment Required", code="402")


def releases(step_id: str, **extra: Any) -> dict[str, Any]:
    """A step undone by publishing `<step_id>.released` (an inline compensation)."""
    return log_step(
        step_id,
        compensate={
            "action": "send_event",
            "config": {
                "topic": "undo",
                "type": f"{step_id}.released",
                "data": {"logged": f"{{{{ steps.{step_id}.logged }}}}"},
            },
        },
        **extra,
    )


THREE_COMPENSABLE: dict[str, Any] = {
    "id": "saga",
    "steps": [
        releases("first", next="second"),
        releases("second", next="third"),
        releases("third", next="pay"),
        webhook_step("pay"),
    ],
}


def failed_payment(raw: dict[str, Any] = THREE_COMPENSABLE) -> Instance:
    instance = Instance(raw)
    instance.apply(ActionResult("pay", 1, error=PAYMENT_DECLINED), at(1))
    return instance


def test_unhandled_failure_compensates_completed_steps_newest_first() -> None:
    instance = failed_payment()

    assert event_types(instance.effects) == [
        "flowbus.step.failed",
        "flowbus.instance.compensating",
        "flowbus.step.compensated",
        "flowbus.step.compensated",
        "flowbus.step.compensated",
        "flowbus.instance.compensated",
    ]
    compensated = events_of(instance.effects, "flowbus.step.compensated")
    assert [e.data["stepId"] for e in compensated] == ["third", "second", "first"]


def test_compensating_event_names_the_cause_and_the_steps_to_undo() -> None:
    [compensating] = events_of(failed_payment().effects, "flowbus.instance.compensating")

    assert compensating.data["steps"] == ["third", "second", "first"]
    assert compensating.data["error"]["code"] == "402"


def test_compensated_instance_keeps_the_failure_that_caused_it() -> None:
    instance = failed_payment()

    assert instance.state.status is InstanceStatus.COMPENSATED
    assert instance.state.error is not None
    assert instance.state.error.model_copy(update={"step_id": None}) == PAYMENT_DECLINED
    [ended] = events_of(instance.effects, "flowbus.instance.compensated")
    assert ended.data["error"]["type"] == "HttpError"


def test_compensated_steps_end_compensated() -> None:
    steps = failed_payment().state.steps

    assert {s: steps[s].status for s in ("first", "second", "third")} == dict.fromkeys(
        ("first", "second", "third"), StepStatus.COMPENSATED
    )


def test_inline_compensation_publishes_its_event_rendered_with_the_step_output() -> None:
    published = of_kind(failed_payment().effects, PublishEvent)

    assert [(e.type, e.data) for e in published] == [
        ("third.released", {"logged": "third"}),
        ("second.released", {"logged": "second"}),
        ("first.released", {"logged": "first"}),
    ]


def test_steps_without_compensate_are_skipped() -> None:
    raw = {
        "id": "saga",
        "steps": [
            releases("first", next="plain"),
            log_step("plain", next="pay"),
            webhook_step("pay"),
        ],
    }

    instance = failed_payment(raw)

    [compensating] = events_of(instance.effects, "flowbus.instance.compensating")
    assert compensating.data["steps"] == ["first"]
    assert [e.data["stepId"] for e in events_of(instance.effects, "flowbus.step.compensated")] == [
        "first"
    ]
    assert instance.state.steps["plain"].status is StepStatus.COMPLETED


def test_failure_with_nothing_to_compensate_fails_the_instance_directly() -> None:
    raw = {"id": "saga", "steps": [log_step("plain", next="pay"), webhook_step("pay")]}

    instance = failed_payment(raw)

    assert instance.state.status is InstanceStatus.FAILED
    assert event_types(instance.effects) == ["flowbus.step.failed", "flowbus.instance.failed"]


# -- external compensations --------------------------------------------------------------

EXTERNAL: dict[str, Any] = {
    "id": "saga",
    "steps": [
        releases("first", next="book"),
        log_step(
            "book",
            next="pay",
            compensate={
                "action": "webhook",
                "config": {"url": "https://example.test/cancel/{{ steps.book.logged }}"},
            },
        ),
        webhook_step("pay"),
    ],
}


def test_external_compensation_asks_the_shell_to_run_it() -> None:
    instance = failed_payment(EXTERNAL)

    assert of_kind(instance.effects, RunAction) == [
        RunAction(
            step_id="book",
            attempt=1,
            action="webhook",
            config={"url": "https://example.test/cancel/book"},
            idempotency_key="inst-1:book:compensate:1",
            purpose="compensate",
        )
    ]


def test_instance_is_compensating_while_an_external_compensation_runs() -> None:
    instance = failed_payment(EXTERNAL)

    assert instance.state.status is InstanceStatus.COMPENSATING
    assert events_of(instance.effects, "flowbus.step.compensated") == []
    assert of_kind(instance.effects, PublishEvent) == []


def test_external_compensation_result_continues_with_the_older_steps() -> None:
    instance = failed_payment(EXTERNAL)

    instance.apply(ActionResult("book", 1, output={"status": 200}, purpose="compensate"), at(2))

    compensated = events_of(instance.effects, "flowbus.step.compensated")
    assert [e.data["stepId"] for e in compensated] == ["book", "first"]
    assert [e.type for e in of_kind(instance.effects, PublishEvent)] == ["first.released"]
    assert instance.state.status is InstanceStatus.COMPENSATED


def test_step_result_during_compensation_changes_nothing() -> None:
    instance = failed_payment(EXTERNAL)

    effects = instance.apply(ActionResult("book", 1, output={}), at(2))

    assert effects == []
    assert instance.state.status is InstanceStatus.COMPENSATING


def test_compensation_result_for_a_step_not_being_compensated_changes_nothing() -> None:
    instance = failed_payment(EXTERNAL)

    effects = instance.apply(ActionResult("first", 1, output={}, purpose="compensate"), at(2))

    assert effects == []


def test_failing_compensation_fails_the_instance_with_compensation_failed() -> None:
    instance = failed_payment(EXTERNAL)

    instance.apply(
        ActionResult(
            "book", 1, error=ErrorInfo(type="HttpError", message="500"), purpose="compensate"
        ),
        at(2),
    )

    assert instance.state.status is InstanceStatus.FAILED
    error = instance.state.error
    assert error is not None
    assert (error.type, error.step_id) == ("CompensationFailed", "book")
    assert "'book'" in error.message
    assert error.details["cause"]["code"] == "402"
    assert error.details["compensationError"]["message"] == "500"


def test_failing_compensation_leaves_older_steps_uncompensated() -> None:
    instance = failed_payment(EXTERNAL)

    instance.apply(
        ActionResult(
            "book", 1, error=ErrorInfo(type="HttpError", message="500"), purpose="compensate"
        ),
        at(2),
    )

    assert event_types(instance.effects) == ["flowbus.instance.failed"]
    assert instance.state.steps["first"].status is StepStatus.COMPLETED


def test_inline_compensation_that_fails_fails_the_instance_with_compensation_failed() -> None:
    raw = {
        "id": "saga",
        "steps": [
            log_step(
                "first",
                next="pay",
                compensate={
                    "action": "send_event",
                    "config": {"topic": "{{ input.missing }}", "type": "release"},
                },
            ),
            webhook_step("pay"),
        ],
    }

    instance = failed_payment(raw)

    assert instance.state.error is not None
    assert instance.state.error.type == "CompensationFailed"
    assert instance.state.error.details["compensationError"]["type"] == "ActionConfigError"
