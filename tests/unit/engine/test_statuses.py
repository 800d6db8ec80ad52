"""Statuses seed 001 names: an instance `created` and not started, and steps `pending`
(due, not started) and `skipped` (not taken)."""

from __future__ import annotations

from typing import Any

from flowbus.engine.core import apply, start
from flowbus.engine.effects import RunAction
from flowbus.engine.inputs import ActionResult, Command
from flowbus.engine.state import InstanceStatus, StepStatus

from .support import NOW, Instance, at, define, event_types, events_of, log_step, of_kind

TWO_STEPS: dict[str, Any] = {
    "id": "two",
    "steps": [log_step("first", next="second"), log_step("second")],
}

BRANCHING: dict[str, Any] = {
    "id": "by-amount",
    "steps": [
        {
            "id": "check",
            "type": "condition",
            "condition": "input.amount > 1000.0",
            "onTrue": "big",
            "onFalse": "small",
        },
        log_step("big", next="done"),
        log_step("small", next="done"),
        log_step("done"),
    ],
}


def created(raw: dict[str, Any], input: Any = None) -> Any:
    return start(define(raw), instance_id="inst-1", input=input, now=NOW, begin=False)


def test_created_instance_waits_to_be_started() -> None:
    transition = created(TWO_STEPS, {"a": 1})

    assert transition.state.status is InstanceStatus.CREATED
    assert event_types(transition.effects) == ["flowbus.instance.created"]
    assert transition.state.completed == []


def test_first_step_of_a_created_instance_is_pending() -> None:
    state = created(TWO_STEPS).state

    assert state.steps["first"].status is StepStatus.PENDING
    assert state.steps["first"].attempt == 0
    assert "second" not in state.steps


def test_start_command_runs_a_created_instance() -> None:
    definition = define(TWO_STEPS)
    transition = created(TWO_STEPS, {"a": 1})
    started = apply(definition, transition.state, Command(kind="start"), at(5))

    assert event_types(started.effects)[0] == "flowbus.instance.started"
    assert started.state.status is InstanceStatus.COMPLETED
    assert started.state.steps["first"].attempt == 1
    assert started.state.completed == ["first", "second"]


def test_start_command_changes_nothing_for_an_instance_already_started() -> None:
    definition = define(TWO_STEPS)
    transition = start(definition, instance_id="inst-1", input=None, now=NOW)

    assert apply(definition, transition.state, Command(kind="start"), at(1)).effects == []


def test_created_instance_takes_no_input_but_start_and_cancel() -> None:
    definition = define(TWO_STEPS)
    state = created(TWO_STEPS).state

    assert apply(definition, state, Command(kind="pause"), at(1)).effects == []
    assert apply(definition, state, ActionResult(step_id="first", attempt=0), at(1)).effects == []
    assert state.status is InstanceStatus.CREATED


def test_cancelling_a_created_instance_skips_its_pending_step() -> None:
    definition = define(TWO_STEPS)
    cancelled = apply(definition, created(TWO_STEPS).state, Command(kind="cancel"), at(1))

    assert cancelled.state.status is InstanceStatus.CANCELLED
    assert cancelled.state.steps["first"].status is StepStatus.SKIPPED
    assert event_types(cancelled.effects) == ["flowbus.step.skipped", "flowbus.instance.cancelled"]


def test_step_not_chosen_by_a_condition_is_skipped() -> None:
    instance = Instance(BRANCHING, input={"amount": 5000.0})

    assert instance.state.steps["small"].status is StepStatus.SKIPPED
    assert instance.state.steps["big"].status is StepStatus.COMPLETED
    [skipped] = events_of(instance.effects, "flowbus.step.skipped")
    assert skipped.data["stepId"] == "small"
    assert skipped.data["skippedBy"] == "check"
    assert skipped.data["attempt"] == 0


def test_only_the_alternatives_themselves_are_skipped() -> None:
    instance = Instance(BRANCHING, input={"amount": 1.0})

    assert [e.data["stepId"] for e in events_of(instance.history, "flowbus.step.skipped")] == [
        "big"
    ]
    assert instance.state.steps["done"].status is StepStatus.COMPLETED


def test_transitions_not_taken_are_skipped() -> None:
    raw = {
        "id": "by-size",
        "steps": [
            log_step(
                "route",
                next=[{"to": "large", "condition": "input.n > 10"}, {"to": "fallback"}],
            ),
            log_step("large"),
            log_step("fallback"),
        ],
    }
    instance = Instance(raw, input={"n": 1})

    assert instance.state.steps["large"].status is StepStatus.SKIPPED
    assert instance.state.steps["fallback"].status is StepStatus.COMPLETED


def test_alternative_the_chosen_path_leads_to_is_not_skipped() -> None:
    raw = {
        "id": "join",
        "steps": [
            {
                "id": "check",
                "type": "condition",
                "condition": "input.big",
                "onTrue": "flag",
                "onFalse": "done",
            },
            log_step("flag", next="done"),
            log_step("done"),
        ],
    }
    instance = Instance(raw, input={"big": True})

    assert events_of(instance.history, "flowbus.step.skipped") == []
    assert instance.state.completed == ["check", "flag", "done"]


def test_alternatives_in_a_loop_are_not_skipped(external_action: str) -> None:
    raw = {
        "id": "loop",
        "steps": [
            {
                "id": "check",
                "type": "condition",
                "rules": [{"field": "steps.work.ok", "operator": "exists", "value": False}],
                "onTrue": "work",
                "onFalse": "done",
            },
            {
                "id": "work",
                "type": "action",
                "action": "charge",
                "config": {"account": "a", "amount": 1},
                "next": "check",
            },
            log_step("done"),
        ],
    }
    instance = Instance(raw)
    instance.apply(ActionResult(step_id="work", attempt=1, output={"ok": True}), at(1))

    assert events_of(instance.history, "flowbus.step.skipped") == []
    assert instance.state.status is InstanceStatus.COMPLETED


def test_step_due_while_paused_is_pending_until_the_resume(external_action: str) -> None:
    raw = {
        "id": "paused",
        "steps": [
            {
                "id": "pay",
                "type": "action",
                "action": "charge",
                "config": {"account": "a", "amount": 1},
                "next": "ship",
            },
            log_step("ship"),
        ],
    }
    instance = Instance(raw)
    instance.apply(Command(kind="pause"), at(1))
    instance.apply(ActionResult(step_id="pay", attempt=1, output={}), at(2))
    assert instance.state.steps["ship"].status is StepStatus.PENDING

    instance.apply(Command(kind="resume"), at(3))
    assert instance.state.steps["ship"].status is StepStatus.COMPLETED
    assert instance.state.steps["ship"].attempt == 1
    assert of_kind(instance.history, RunAction)
