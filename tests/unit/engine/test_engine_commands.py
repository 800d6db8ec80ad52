"""Operator commands: pause, resume, cancel and retry; inputs after the end."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.engine.effects import RunAction
from flowbus.engine.inputs import ActionResult, Command, EventReceived, TimerFired
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepStatus

from .support import Instance, at, event_types, events_of, log_step, of_kind, webhook_step

DOWN = ErrorInfo(type="ConnectionError", message="refused")
# As the shell's action runner reports it: the error names the step it happened in.
FIRST_DOWN = ErrorInfo(type="ConnectionError", message="refused", step_id="first")

TWO_CALLS: dict[str, Any] = {
    "id": "commands",
    "steps": [
        log_step(
            "reserve",
            next="first",
            compensate={"action": "send_event", "config": {"topic": "stock", "type": "release"}},
        ),
        webhook_step("first", next="second"),
        webhook_step("second"),
    ],
}


PLAIN: dict[str, Any] = {
    "id": "commands",
    "steps": [webhook_step("first", next="second"), webhook_step("second")],
}


def paused() -> Instance:
    instance = Instance(TWO_CALLS)
    instance.apply(Command("pause", by="ops"), at(1))
    return instance


def failed_at_first(error: ErrorInfo = FIRST_DOWN) -> Instance:
    instance = Instance(PLAIN)
    instance.apply(ActionResult("first", 1, error=error), at(1))
    return instance


def test_pause_marks_the_instance_paused() -> None:
    instance = paused()

    assert instance.state.status is InstanceStatus.PAUSED
    [event] = events_of(instance.effects, "flowbus.instance.paused")
    assert (event.data["status"], event.data["by"]) == ("paused", "ops")


def test_step_completing_while_paused_defers_the_next_step() -> None:
    instance = paused()

    instance.apply(ActionResult("first", 1, output={}), at(2))

    assert instance.state.steps["first"].status is StepStatus.COMPLETED
    assert instance.state.steps["second"].status is StepStatus.PENDING
    assert instance.state.deferred == ["second"]
    assert of_kind(instance.effects, RunAction) == []
    assert instance.state.status is InstanceStatus.PAUSED


def test_resume_starts_the_deferred_steps() -> None:
    instance = paused()
    instance.apply(ActionResult("first", 1, output={}), at(2))

    instance.apply(Command("resume", by="ops"), at(3))

    assert [a.step_id for a in of_kind(instance.effects, RunAction)] == ["second"]
    assert instance.state.deferred == []
    assert event_types(instance.effects)[:2] == ["flowbus.instance.resumed", "flowbus.step.started"]


def test_resumed_instance_is_running_again() -> None:
    instance = paused()

    instance.apply(Command("resume"), at(3))

    assert instance.state.status is InstanceStatus.RUNNING


def test_resume_of_an_instance_that_is_not_paused_changes_nothing() -> None:
    instance = Instance(TWO_CALLS)

    assert instance.apply(Command("resume"), at(1)) == []


def test_pause_of_a_paused_instance_changes_nothing() -> None:
    instance = paused()

    assert instance.apply(Command("pause"), at(2)) == []


def test_cancel_with_compensation_ends_compensated_with_the_reason() -> None:
    instance = Instance(TWO_CALLS)

    instance.apply(Command("cancel", reason="customer asked"), at(1))

    assert instance.state.status is InstanceStatus.COMPENSATED
    assert instance.state.error == ErrorInfo(type="Cancelled", message="customer asked")
    assert event_types(instance.effects) == [
        "flowbus.step.cancelled",
        "flowbus.instance.compensating",
        "flowbus.step.compensated",
        "flowbus.instance.compensated",
    ]


def test_cancel_without_compensation_ends_cancelled_and_undoes_nothing() -> None:
    instance = Instance(TWO_CALLS)

    instance.apply(Command("cancel", compensate=False, reason="duplicate"), at(1))

    assert instance.state.status is InstanceStatus.CANCELLED
    assert instance.state.error == ErrorInfo(type="Cancelled", message="duplicate")
    assert event_types(instance.effects) == [
        "flowbus.step.cancelled",
        "flowbus.instance.cancelled",
    ]


def test_cancel_without_a_reason_says_it_was_cancelled_by_command() -> None:
    instance = Instance(TWO_CALLS)

    instance.apply(Command("cancel", compensate=False), at(1))

    assert instance.state.error is not None
    assert instance.state.error.message == "cancelled by command"


def test_cancel_with_nothing_to_compensate_ends_cancelled() -> None:
    instance = Instance({"id": "commands", "steps": [webhook_step("first")]})

    instance.apply(Command("cancel"), at(1))

    assert instance.state.status is InstanceStatus.CANCELLED


def test_cancel_of_a_paused_instance_drops_its_deferred_steps() -> None:
    instance = paused()
    instance.apply(ActionResult("first", 1, output={}), at(2))

    instance.apply(Command("cancel", compensate=False), at(3))

    assert instance.state.status is InstanceStatus.CANCELLED
    assert instance.state.deferred == []


def test_retry_runs_a_failed_instance_again_from_the_failed_step() -> None:
    instance = failed_at_first()

    instance.apply(Command("retry", by="ops"), at(2))

    assert instance.state.status is InstanceStatus.RUNNING
    assert instance.state.error is None
    assert of_kind(instance.effects, RunAction) == [
        RunAction(
            step_id="first",
            attempt=2,
            action="webhook",
            config={"url": "https://example.test/first"},
            idempotency_key="inst-1:first:2",
        )
    ]


def test_retry_emits_instance_retried_naming_the_step() -> None:
    instance = failed_at_first()

    instance.apply(Command("retry", by="ops"), at(2))

    [retried] = events_of(instance.effects, "flowbus.instance.retried")
    assert (retried.data["status"], retried.data["stepId"], retried.data["by"]) == (
        "running",
        "first",
        "ops",
    )


def test_retried_instance_continues_to_completion() -> None:
    instance = failed_at_first()
    instance.apply(Command("retry"), at(2))
    instance.apply(ActionResult("first", 2, output={}), at(3))

    instance.apply(ActionResult("second", 1, output={}), at(4))

    assert instance.state.status is InstanceStatus.COMPLETED


def test_retry_runs_again_a_failed_action_whose_error_does_not_name_the_step() -> None:
    instance = failed_at_first(DOWN)

    instance.apply(Command("retry"), at(2))

    assert [a.step_id for a in of_kind(instance.effects, RunAction)] == ["first"]


@pytest.mark.parametrize("command", ["retry", "pause", "resume", "cancel"])
def test_command_for_a_compensated_instance_changes_nothing(command: Any) -> None:
    instance = Instance(TWO_CALLS)
    instance.apply(ActionResult("first", 1, error=DOWN), at(1))

    effects = instance.apply(Command(command), at(2))

    assert instance.state.status is InstanceStatus.COMPENSATED
    assert effects == []


def test_retry_of_an_instance_that_has_not_failed_changes_nothing() -> None:
    instance = Instance(TWO_CALLS)

    assert instance.apply(Command("retry"), at(1)) == []


def test_retry_of_an_instance_whose_compensation_failed_changes_nothing() -> None:
    raw = {
        "id": "commands",
        "steps": [
            log_step(
                "reserve",
                next="first",
                compensate={"action": "webhook", "config": {"url": "https://example.test/undo"}},
            ),
            webhook_step("first"),
        ],
    }
    instance = Instance(raw)
    instance.apply(ActionResult("first", 1, error=DOWN), at(1))
    instance.apply(ActionResult("reserve", 1, error=DOWN, purpose="compensate"), at(2))

    effects = instance.apply(Command("retry"), at(3))

    assert instance.state.error is not None
    assert instance.state.error.type == "CompensationFailed"
    assert effects == []


@pytest.mark.parametrize(
    "event",
    [
        ActionResult("first", 1, output={}),
        TimerFired("workflow_timeout"),
        EventReceived(None, {"data": {}}),
        Command("cancel"),
        Command("pause"),
    ],
    ids=["action-result", "timer", "event", "cancel", "pause"],
)
def test_inputs_for_a_final_instance_produce_no_effects(event: Any) -> None:
    instance = failed_at_first()
    before = instance.state.model_copy(deep=True)

    effects = instance.apply(event, at(2))

    assert effects == []
    assert instance.state == before
