"""Payload limits: a step whose output, variables or published event would pass a bound
fails with `PayloadTooLarge`, so no outcome event the broker would refuse is asked for."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowbus.engine.core import apply, start
from flowbus.engine.effects import Effect, PublishEvent, SetTimer
from flowbus.engine.inputs import ActionResult, EngineInput
from flowbus.engine.limits import Limits
from flowbus.engine.state import InstanceState, InstanceStatus, StepStatus

from .support import NOW, at, define, events_of, log_step, of_kind, webhook_step

LIMITS = Limits(max_step_output_bytes=1024, max_variables_bytes=2048, max_event_bytes=8192)
BLOB = "x" * 700  # one copy fits every bound, two pass the step output bound


class Limited:
    """An instance driven through the engine under `LIMITS`."""

    def __init__(self, raw: dict[str, Any], *, input: Any = None) -> None:
        self.definition = define(raw)
        transition = start(
            self.definition, instance_id="inst-1", input=input, now=NOW, limits=LIMITS
        )
        self.state: InstanceState = transition.state
        self.effects: list[Effect] = transition.effects

    def apply(self, event: EngineInput, now: datetime = NOW) -> None:
        transition = apply(self.definition, self.state, event, now, LIMITS)
        self.state, self.effects = transition.state, transition.effects


def set_variables(step_id: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": "set_variables", "config": config, **extra}


def copying_twice(**extra: Any) -> Limited:
    step = set_variables("copy", {"a": "{{ input.blob }}", "b": "{{ input.blob }}"}, **extra)
    return Limited({"id": "copy", "steps": [step]}, input={"blob": BLOB})


def test_step_output_over_the_limit_fails_the_step_with_payload_too_large() -> None:
    instance = copying_twice()

    error = instance.state.steps["copy"].error
    assert instance.state.steps["copy"].status is StepStatus.FAILED
    assert error is not None
    assert error.type == "PayloadTooLarge"
    assert error.step_id == "copy"


def test_payload_too_large_names_the_step_the_size_and_the_limit() -> None:
    instance = copying_twice()

    error = instance.state.steps["copy"].error
    assert error is not None
    assert "step 'copy'" in error.message
    assert "over the limit of 1024 (limits.max_step_output_bytes)" in error.message
    assert error.details["limit"] == 1024
    assert error.details["bytes"] > 1024


def test_too_large_step_output_is_never_emitted_in_a_completed_event() -> None:
    instance = copying_twice()

    assert events_of(instance.effects, "flowbus.step.completed") == []
    [failed] = events_of(instance.effects, "flowbus.step.failed")
    assert failed.data["error"]["type"] == "PayloadTooLarge"


def test_step_failing_with_payload_too_large_leaves_the_variables_unchanged() -> None:
    instance = copying_twice()

    assert instance.state.variables == {}


def test_payload_too_large_without_a_handler_fails_the_instance() -> None:
    instance = copying_twice()

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.error is not None
    assert instance.state.error.type == "PayloadTooLarge"


def test_on_failure_routes_payload_too_large_by_its_type() -> None:
    route = {"conditions": [{"errorType": "PayloadTooLarge", "nextStepId": "too-large"}]}
    copies = {"a": "{{ input.blob }}", "b": "{{ input.blob }}"}
    step = set_variables("copy", copies, onFailure={"errorHandler": route})
    instance = Limited({"id": "copy", "steps": [step, log_step("too-large")]}, input={"blob": BLOB})

    assert instance.state.completed == ["too-large"]
    assert instance.state.status is InstanceStatus.COMPLETED


def test_payload_too_large_is_not_retried_by_a_retry_policy_that_does_not_name_it() -> None:
    instance = copying_twice(retryPolicy={"maxAttempts": 3, "delay": "PT1S"})

    assert events_of(instance.effects, "flowbus.step.retrying") == []
    assert of_kind(instance.effects, SetTimer) == []
    assert instance.state.status is InstanceStatus.FAILED


def test_payload_too_large_is_retried_when_the_retry_policy_names_it() -> None:
    policy = {"maxAttempts": 3, "delay": "PT1S", "retryOn": ["PayloadTooLarge"]}
    instance = copying_twice(retryPolicy=policy)

    assert len(events_of(instance.effects, "flowbus.step.retrying")) == 1
    assert instance.state.steps["copy"].status is StepStatus.RETRYING


def test_variables_growing_over_their_limit_fail_the_step_that_grows_them() -> None:
    steps = [
        set_variables("first", {"a": "{{ input.blob }}"}, next="second"),
        set_variables("second", {"b": "{{ input.blob }}"}, next="third"),
        set_variables("third", {"c": "{{ input.blob }}"}),
    ]
    instance = Limited({"id": "grow", "steps": steps}, input={"blob": BLOB})

    assert instance.state.completed == ["first", "second"]
    error = instance.state.steps["third"].error
    assert error is not None
    assert error.type == "PayloadTooLarge"
    assert "limits.max_variables_bytes" in error.message
    assert set(instance.state.variables) == {"a", "b"}


def test_send_event_over_the_event_limit_fails_the_step_and_publishes_nothing() -> None:
    step = {
        "id": "announce",
        "type": "action",
        "action": "send_event",
        "config": {"topic": "news", "type": "big.news", "data": {"text": "{{ input.text }}"}},
    }
    instance = Limited({"id": "announce", "steps": [step]}, input={"text": "y" * 5000})

    assert of_kind(instance.effects, PublishEvent) == []
    error = instance.state.steps["announce"].error
    assert error is not None
    assert error.type == "PayloadTooLarge"
    assert "the big.news event" in error.message


def test_external_action_result_over_the_limit_fails_the_step() -> None:
    instance = Limited({"id": "call", "steps": [webhook_step("call")]})

    instance.apply(ActionResult("call", 1, output={"body": "z" * 2000}), at(1))

    error = instance.state.steps["call"].error
    assert error is not None
    assert error.type == "PayloadTooLarge"
    assert instance.state.steps["call"].output is None


def test_workflow_output_over_the_event_limit_fails_the_instance() -> None:
    raw = {
        "id": "big-output",
        "steps": [log_step("only")],
        "output": {"a": "{{ input.blob }}", "b": "{{ input.blob }}"},
    }
    instance = Limited(raw, input={"blob": "w" * 3000})

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.error is not None
    assert instance.state.error.type == "PayloadTooLarge"
    assert "flowbus.instance.completed" in instance.state.error.message
    assert events_of(instance.effects, "flowbus.instance.completed") == []


def test_context_variables_over_their_limit_fail_the_instance_at_start() -> None:
    raw = {"id": "ctx", "context": {"blob": "input.blob"}, "steps": [log_step("only")]}
    instance = Limited(raw, input={"blob": "v" * 3000})

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.error is not None
    assert instance.state.error.type == "PayloadTooLarge"
    assert instance.state.completed == []


def test_outputs_within_the_limits_complete_as_before() -> None:
    step = set_variables("copy", {"a": "{{ input.blob }}"})
    instance = Limited({"id": "copy", "steps": [step]}, input={"blob": BLOB})

    assert instance.state.status is InstanceStatus.COMPLETED
    assert instance.state.variables == {"a": BLOB}
