"""`task` actions: a step handed to a task worker, bounded by a heartbeat and a timeout."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.definitions.loader import DefinitionError
from flowbus.engine.effects import CancelTimers, RunAction, SetTimer
from flowbus.engine.inputs import ActionResult, TimerFired
from flowbus.engine.state import InstanceStatus, StepStatus

from .support import NOW, Instance, at, define, events_of, of_kind


def task_step(**extra: Any) -> dict[str, Any]:
    return {
        "id": "charge",
        "type": "action",
        "action": "task",
        "config": {
            "taskType": "charge-card",
            "input": {"amount": "{{ input.amount }}"},
            "heartbeat": "PT10S",
        },
        **extra,
    }


def charging(**extra: Any) -> Instance:
    return Instance({"id": "orders", "steps": [task_step(**extra)]}, input={"amount": 42})


def test_a_task_step_asks_the_shell_to_dispatch_its_rendered_config() -> None:
    instance = charging()

    [run] = of_kind(instance.effects, RunAction)
    assert run.action == "task"
    assert run.config == {
        "taskType": "charge-card",
        "input": {"amount": 42},
        "heartbeat": "PT10S",
    }
    assert run.idempotency_key == "inst-1:charge"


def test_a_task_step_sets_a_heartbeat_timer_for_its_attempt() -> None:
    instance = charging()

    assert SetTimer("heartbeat", at(10), "charge", 1) in of_kind(instance.effects, SetTimer)
    assert instance.state.steps["charge"].data["heartbeat"] == 10.0


def test_the_task_result_is_the_step_output() -> None:
    instance = charging()

    instance.apply(ActionResult("charge", 1, output={"charged": 42}), at(1))

    assert instance.state.status is InstanceStatus.COMPLETED
    assert instance.state.steps["charge"].output == {"charged": 42}
    assert CancelTimers("charge") in instance.effects


def test_a_missed_heartbeat_fails_the_attempt_with_a_timeout_error() -> None:
    instance = charging()

    instance.apply(TimerFired("heartbeat", "charge", 1), at(10))

    [failed] = events_of(instance.effects, "flowbus.step.failed")
    assert failed.data["error"]["type"] == "TimeoutError"
    assert "heartbeat" in failed.data["error"]["message"]
    assert instance.state.status is InstanceStatus.FAILED


def test_a_missed_heartbeat_is_retried_with_the_same_idempotency_key() -> None:
    instance = charging(retryPolicy={"maxAttempts": 2, "delay": "PT1S"})

    instance.apply(TimerFired("heartbeat", "charge", 1), at(10))
    instance.apply(TimerFired("retry", "charge", 1), at(11))

    [rerun] = of_kind(instance.effects, RunAction)
    assert (rerun.attempt, rerun.tries, rerun.idempotency_key) == (2, 2, "inst-1:charge")
    assert SetTimer("heartbeat", at(21), "charge", 2) in of_kind(instance.effects, SetTimer)


def test_the_heartbeat_timer_of_an_earlier_attempt_changes_nothing() -> None:
    instance = charging(retryPolicy={"maxAttempts": 2, "delay": "PT1S"})
    instance.apply(TimerFired("heartbeat", "charge", 1), at(10))
    instance.apply(TimerFired("retry", "charge", 1), at(11))

    assert instance.apply(TimerFired("heartbeat", "charge", 1), at(12)) == []
    assert instance.state.steps["charge"].status is StepStatus.RUNNING


def test_the_result_of_an_earlier_attempt_changes_nothing() -> None:
    instance = charging(retryPolicy={"maxAttempts": 2, "delay": "PT1S"})
    instance.apply(TimerFired("heartbeat", "charge", 1), at(10))
    instance.apply(TimerFired("retry", "charge", 1), at(11))

    assert instance.apply(ActionResult("charge", 1, output={"late": True}), at(12)) == []
    assert instance.state.steps["charge"].status is StepStatus.RUNNING


def test_the_step_timeout_bounds_the_whole_task() -> None:
    instance = charging(timeout="PT1M")

    instance.apply(TimerFired("step_timeout", "charge", 1), at(60))

    [failed] = events_of(instance.effects, "flowbus.step.failed")
    assert failed.data["error"]["type"] == "TimeoutError"


def test_a_task_without_heartbeat_sets_no_heartbeat_timer() -> None:
    raw = task_step()
    del raw["config"]["heartbeat"]
    instance = Instance({"id": "orders", "steps": [raw]}, input={"amount": 1}, now=NOW)

    assert [t for t in of_kind(instance.effects, SetTimer) if t.kind == "heartbeat"] == []


def test_a_task_step_without_task_type_is_refused_naming_the_field() -> None:
    raw = task_step()
    del raw["config"]["taskType"]

    with pytest.raises(DefinitionError, match="taskType"):
        define({"id": "orders", "steps": [raw]})
