"""`apply`: results of external actions advance an instance; inputs that no longer apply
change nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowbus.engine.core import Transition, apply, start
from flowbus.engine.effects import RecordAttempt, RunAction
from flowbus.engine.errors import EngineError
from flowbus.engine.inputs import ActionResult
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepStatus

from .support import NOW, define, emitted, event_types, log_step

LATER = NOW + timedelta(seconds=2)
LATER_TEXT = "2024-05-06T07:08:11.123Z"


def charge_workflow(action_name: str) -> dict[str, Any]:
    return {
        "id": "pay",
        "steps": [
            {
                "id": "charge",
                "type": "action",
                "action": action_name,
                "config": {"account": "{{ input.account }}", "amount": 40},
                "next": "receipt",
            },
            log_step("receipt"),
        ],
    }


def started(action_name: str) -> Transition:
    return start(
        define(charge_workflow(action_name)),
        instance_id="inst-1",
        input={"account": "acct-9"},
        now=NOW,
    )


def test_external_action_asks_the_shell_to_run_it_with_rendered_config(
    external_action: str,
) -> None:
    transition = started(external_action)

    assert [e for e in transition.effects if isinstance(e, RunAction)] == [
        RunAction(
            step_id="charge",
            attempt=1,
            action="charge",
            config={"account": "acct-9", "amount": 40},
            idempotency_key="inst-1:charge",
        )
    ]


def test_instance_waits_on_an_external_action_with_the_step_active(external_action: str) -> None:
    state = started(external_action).state

    assert state.status is InstanceStatus.RUNNING
    assert state.active == ["charge"]
    assert state.steps["charge"].status is StepStatus.RUNNING


def test_action_result_completes_the_step_with_its_output_and_continues(
    external_action: str,
) -> None:
    definition = define(charge_workflow(external_action))
    state = started(external_action).state

    transition = apply(
        definition, state, ActionResult("charge", attempt=1, output={"charged": 40}), LATER
    )

    assert transition.state.steps["charge"].output == {"charged": 40}
    assert transition.state.completed == ["charge", "receipt"]
    assert transition.state.status is InstanceStatus.COMPLETED


def test_action_result_continues_the_event_sequence(external_action: str) -> None:
    definition = define(charge_workflow(external_action))
    first = started(external_action)

    second = apply(definition, first.state, ActionResult("charge", attempt=1, output={}), LATER)

    assert [e.seq for e in emitted(first.effects)] == [1, 2]
    assert [e.seq for e in emitted(second.effects)] == [3, 4, 5, 6]


def test_action_result_updates_the_instance_time(external_action: str) -> None:
    definition = define(charge_workflow(external_action))

    transition = apply(
        definition, started(external_action).state, ActionResult("charge", attempt=1), LATER
    )

    assert transition.state.updated_at == LATER_TEXT
    assert transition.state.created_at != LATER_TEXT


def test_action_result_with_an_error_fails_the_step_and_the_instance(
    external_action: str,
) -> None:
    definition = define(charge_workflow(external_action))
    error = ErrorInfo(type="HttpError", message="402 Payment Required", code="402")

    transition = apply(
        definition, started(external_action).state, ActionResult("charge", 1, error=error), LATER
    )

    assert transition.state.status is InstanceStatus.FAILED
    assert transition.state.error == error.model_copy(update={"step_id": "charge"})
    assert event_types(transition.effects) == ["flowbus.step.failed", "flowbus.instance.failed"]
    assert [(r.step_id, r.status) for r in transition.effects if isinstance(r, RecordAttempt)] == [
        ("charge", "failed")
    ]


def test_result_for_another_attempt_changes_nothing(external_action: str) -> None:
    definition = define(charge_workflow(external_action))
    state = started(external_action).state
    before = state.model_copy(deep=True)

    transition = apply(definition, state, ActionResult("charge", attempt=2, output={}), LATER)

    assert transition.effects == []
    assert transition.state == before


def test_result_for_a_step_that_is_not_running_changes_nothing(external_action: str) -> None:
    definition = define(charge_workflow(external_action))
    state = started(external_action).state
    before = state.model_copy(deep=True)

    transition = apply(definition, state, ActionResult("receipt", attempt=1, output={}), LATER)

    assert transition.effects == []
    assert transition.state == before


def test_second_result_for_the_same_attempt_changes_nothing(external_action: str) -> None:
    definition = define(charge_workflow(external_action))
    state = started(external_action).state
    result = ActionResult("charge", attempt=1, output={"charged": 40})
    done = apply(definition, state, result, LATER).state
    before = done.model_copy(deep=True)

    transition = apply(definition, done, result, LATER)

    assert transition.effects == []
    assert transition.state == before


def test_apply_on_a_final_instance_returns_no_effects() -> None:
    definition = define({"id": "done", "steps": [log_step("only")]})
    finished = start(definition, instance_id="inst-1", input={}, now=NOW).state
    assert finished.status is InstanceStatus.COMPLETED

    transition = apply(definition, finished, ActionResult("only", attempt=1), LATER)

    assert transition.effects == []
    assert transition.state.updated_at != LATER_TEXT


def test_apply_refuses_a_definition_of_another_version(external_action: str) -> None:
    state = started(external_action).state
    other = define(charge_workflow(external_action)).model_copy(update={"version": 2})

    with pytest.raises(EngineError, match="runs pay v1, not pay v2"):
        apply(other, state, ActionResult("charge", attempt=1), LATER)
