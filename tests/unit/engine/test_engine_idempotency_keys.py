"""Idempotency keys of external actions: one per step execution, the same on its retries."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import RunAction
from flowbus.engine.inputs import ActionResult, Command, TimerFired
from flowbus.engine.state import ErrorInfo

from .support import Instance, at, log_step, of_kind, webhook_step

DOWN = ErrorInfo(type="HttpError", message="500 Internal Server Error", code="500")
RETRIED = {"maxAttempts": 3, "delay": "PT1S"}

# `call` runs again while its answer says so: a loop back to the same step.
LOOP: dict[str, Any] = {
    "id": "loop",
    "steps": [
        webhook_step(
            "call",
            retryPolicy=RETRIED,
            next=[{"to": "call", "condition": "steps.call.again"}, {"to": "done"}],
        ),
        log_step("done"),
    ],
}


def run_action(instance: Instance) -> RunAction:
    [run] = of_kind(instance.effects, RunAction)
    return run


def keys_and_tries(instance: Instance) -> tuple[str, int]:
    run = run_action(instance)
    return run.idempotency_key, run.tries


def test_the_first_execution_of_a_step_is_keyed_by_instance_and_step() -> None:
    instance = Instance(LOOP)

    assert keys_and_tries(instance) == ("inst-1:call", 1)


def test_every_retry_of_an_execution_sends_the_same_key_and_the_next_try() -> None:
    instance = Instance(LOOP)
    seen = [keys_and_tries(instance)]
    for attempt in (1, 2):
        instance.apply(ActionResult("call", attempt, error=DOWN), at(attempt))
        instance.apply(TimerFired("retry", "call", attempt), at(attempt + 1))
        seen.append(keys_and_tries(instance))

    assert seen == [("inst-1:call", 1), ("inst-1:call", 2), ("inst-1:call", 3)]


def test_a_loop_back_to_a_step_is_a_new_execution_with_a_new_key() -> None:
    instance = Instance(LOOP)

    instance.apply(ActionResult("call", 1, output={"again": True}), at(1))
    second = keys_and_tries(instance)
    instance.apply(ActionResult("call", 2, output={"again": True}), at(2))
    third = keys_and_tries(instance)

    assert (second, third) == (("inst-1:call:2", 1), ("inst-1:call:3", 1))


def test_a_retry_inside_a_later_execution_keeps_that_executions_key() -> None:
    instance = Instance(LOOP)
    instance.apply(ActionResult("call", 1, output={"again": True}), at(1))

    instance.apply(ActionResult("call", 2, error=DOWN), at(2))
    instance.apply(TimerFired("retry", "call", 2), at(3))

    assert keys_and_tries(instance) == ("inst-1:call:2", 2)


def test_an_operator_retry_of_a_failed_instance_is_a_new_execution() -> None:
    instance = Instance({"id": "once", "steps": [webhook_step("call")]})
    instance.apply(ActionResult("call", 1, error=DOWN), at(1))

    instance.apply(Command("retry", by="ops"), at(2))

    assert keys_and_tries(instance) == ("inst-1:call:2", 1)


def test_the_key_is_the_same_whenever_the_same_inputs_are_replayed() -> None:
    first, second = Instance(LOOP), Instance(LOOP)
    for instance in (first, second):
        instance.apply(ActionResult("call", 1, output={"again": True}), at(1))

    assert run_action(first) == run_action(second)
