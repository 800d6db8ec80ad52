"""Timeouts: of one step's try (`timeout`) and of the whole instance (`timeout` at the top)."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import CancelTimers, SetTimer
from flowbus.engine.inputs import ActionResult, TimerFired
from flowbus.engine.state import InstanceStatus, StepStatus

from .support import Instance, at, event_types, events_of, log_step, of_kind, webhook_step


def timed_call(**extra: Any) -> Instance:
    raw = {"id": "timed", "steps": [webhook_step("call", timeout="PT30S", **extra)]}
    return Instance(raw)


def test_step_with_a_timeout_sets_a_step_timeout_timer_when_it_starts() -> None:
    instance = timed_call()

    assert of_kind(instance.effects, SetTimer) == [
        SetTimer(kind="step_timeout", due_at=at(30), step_id="call", attempt=1)
    ]


def test_step_timeout_firing_fails_the_try_with_timeout_error() -> None:
    instance = timed_call()

    instance.apply(TimerFired("step_timeout", "call", 1), at(30))

    error = instance.state.steps["call"].error
    assert error is not None
    assert (error.type, error.step_id) == ("TimeoutError", "call")
    assert "exceeded its timeout" in error.message


def test_step_timeout_without_a_retry_fails_the_instance() -> None:
    instance = timed_call()

    instance.apply(TimerFired("step_timeout", "call", 1), at(30))

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.error is not None
    assert instance.state.error.type == "TimeoutError"


def test_step_timeout_is_retried_when_the_policy_allows() -> None:
    instance = timed_call(retryPolicy={"maxAttempts": 2, "delay": "PT1S"})

    instance.apply(TimerFired("step_timeout", "call", 1), at(30))

    assert instance.state.steps["call"].status is StepStatus.RETRYING
    [retrying] = events_of(instance.effects, "flowbus.step.retrying")
    assert retrying.data["error"]["type"] == "TimeoutError"


def test_retried_try_gets_its_own_step_timeout_timer() -> None:
    instance = timed_call(retryPolicy={"maxAttempts": 2, "delay": "PT1S"})
    instance.apply(TimerFired("step_timeout", "call", 1), at(30))

    instance.apply(TimerFired("retry", "call", 1), at(31))

    assert of_kind(instance.effects, SetTimer) == [
        SetTimer(kind="step_timeout", due_at=at(61), step_id="call", attempt=2)
    ]


def test_step_timeout_is_routed_by_the_error_handler() -> None:
    raw = {
        "id": "timed",
        "steps": [
            webhook_step(
                "call",
                timeout="PT30S",
                onFailure={
                    "errorHandler": {
                        "conditions": [{"errorType": "TimeoutError", "nextStepId": "slow"}]
                    }
                },
            ),
            log_step("slow"),
        ],
    }
    instance = Instance(raw)

    instance.apply(TimerFired("step_timeout", "call", 1), at(30))

    assert instance.state.completed == ["slow"]


def test_step_completing_before_its_timeout_cancels_its_timers() -> None:
    instance = timed_call()

    instance.apply(ActionResult("call", 1, output={"status": 200}), at(1))

    assert CancelTimers(step_id="call") in instance.effects


def test_late_step_timeout_after_the_step_completed_changes_nothing() -> None:
    raw = {"id": "timed", "steps": [webhook_step("call", timeout="PT30S", next="next")]}
    raw["steps"].append(webhook_step("next"))
    instance = Instance(raw)
    instance.apply(ActionResult("call", 1, output={}), at(1))
    before = instance.state.model_copy(deep=True)

    effects = instance.apply(TimerFired("step_timeout", "call", 1), at(30))

    assert effects == []
    assert instance.state == before


def test_result_arriving_after_the_step_timed_out_changes_nothing() -> None:
    instance = timed_call(retryPolicy={"maxAttempts": 2, "delay": "PT1S"})
    instance.apply(TimerFired("step_timeout", "call", 1), at(30))

    effects = instance.apply(ActionResult("call", 1, output={}), at(31))

    assert effects == []


# -- the whole instance ------------------------------------------------------------------

TIMED_WORKFLOW: dict[str, Any] = {
    "id": "timed-workflow",
    "timeout": "P1D",
    "steps": [
        log_step(
            "reserve",
            next="call",
            compensate={"action": "send_event", "config": {"topic": "stock", "type": "release"}},
        ),
        webhook_step("call"),
    ],
}


def test_workflow_timeout_timer_is_set_when_the_instance_starts() -> None:
    instance = Instance(TIMED_WORKFLOW)

    assert SetTimer(kind="workflow_timeout", due_at=at(86400)) in instance.effects


def test_workflow_timeout_cancels_the_active_steps() -> None:
    instance = Instance(TIMED_WORKFLOW)

    instance.apply(TimerFired("workflow_timeout"), at(86400))

    [cancelled] = events_of(instance.effects, "flowbus.step.cancelled")
    assert cancelled.data["stepId"] == "call"
    assert instance.state.steps["call"].status is StepStatus.CANCELLED


def test_workflow_timeout_compensates_then_ends_timed_out() -> None:
    instance = Instance(TIMED_WORKFLOW)

    instance.apply(TimerFired("workflow_timeout"), at(86400))

    assert event_types(instance.effects)[-3:] == [
        "flowbus.instance.compensating",
        "flowbus.step.compensated",
        "flowbus.instance.timed_out",
    ]
    assert instance.state.status is InstanceStatus.TIMED_OUT


def test_workflow_timeout_ends_with_a_timeout_error() -> None:
    instance = Instance(TIMED_WORKFLOW)

    instance.apply(TimerFired("workflow_timeout"), at(86400))

    assert instance.state.error is not None
    assert instance.state.error.type == "TimeoutError"
    [timed_out] = events_of(instance.effects, "flowbus.instance.timed_out")
    assert timed_out.data["error"]["type"] == "TimeoutError"


def test_workflow_timeout_without_anything_to_compensate_ends_timed_out_at_once() -> None:
    raw = {"id": "timed-workflow", "timeout": "PT1H", "steps": [webhook_step("call")]}
    instance = Instance(raw)

    instance.apply(TimerFired("workflow_timeout"), at(3600))

    assert instance.state.status is InstanceStatus.TIMED_OUT
    assert events_of(instance.effects, "flowbus.instance.compensating") == []


def test_workflow_timeout_drops_every_pending_timer_of_the_instance() -> None:
    instance = Instance(TIMED_WORKFLOW)

    instance.apply(TimerFired("workflow_timeout"), at(86400))

    assert CancelTimers(step_id=None) in instance.effects


def test_result_for_a_step_the_workflow_timeout_cancelled_changes_nothing() -> None:
    instance = Instance(TIMED_WORKFLOW)
    instance.apply(TimerFired("workflow_timeout"), at(86400))

    effects = instance.apply(ActionResult("call", 1, output={}), at(86401))

    assert effects == []
