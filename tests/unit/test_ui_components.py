"""uiComponents (seed 004): chosen by condition, ordered by priority, filled from the
instance; bad components reported by name and field while the others still show."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.definitions.loader import validate_definition
from flowbus.definitions.ui_components import (
    InstanceView,
    StepView,
    compile_components,
    evaluate,
    view_of,
)
from flowbus.engine.state import InstanceState

SEED_004: list[dict[str, Any]] = [
    {
        "componentId": "workflow-progress",
        "condition": "status == 'running'",
        "priority": 1,
        "context": {"title": "Current Progress", "layout": "timeline"},
    },
    {
        "componentId": "workflow-summary",
        "condition": "status == 'completed'",
        "priority": 1,
        "context": {"title": "Workflow Summary", "layout": "card"},
    },
    {
        "componentId": "error-view",
        "condition": "status == 'failed'",
        "priority": 2,
        "context": {"title": "Error Details", "layout": "alert"},
    },
]

STEPS = (
    StepView("check", "completed", 1, "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:00.010Z"),
    StepView("charge", "running", 2, "2026-12-01T10:00:00.010Z"),
)


def view(status: str, **fields: Any) -> InstanceView:
    return InstanceView(
        instance_id="i-1",
        workflow_id="orders",
        workflow_version=3,
        status=status,
        **{"input": {"orderId": "o-7"}, "variables": {"paid": False}, "steps": STEPS, **fields},
    )


def shown(components: list[dict[str, Any]], instance: InstanceView) -> list[Any]:
    compiled, problems = compile_components(components)
    assert problems == []
    return evaluate(compiled, instance).components


def test_seed_004_shows_a_progress_timeline_while_the_instance_runs() -> None:
    [progress] = shown(SEED_004, view("running", active=["charge"]))

    assert (progress.component_id, progress.layout, progress.title) == (
        "workflow-progress",
        "timeline",
        "Current Progress",
    )
    assert [(s["stepId"], s["status"]) for s in progress.data["steps"]] == [
        ("check", "completed"),
        ("charge", "running"),
    ]
    assert progress.data["activeSteps"] == ["charge"]


def test_seed_004_running_covers_every_status_of_an_instance_in_flight() -> None:
    for status in ("created", "running", "waiting", "compensating"):
        assert [c.component_id for c in shown(SEED_004, view(status))] == ["workflow-progress"]


def test_conditions_can_still_tell_flowbus_statuses_apart() -> None:
    components = [{"componentId": "waiting", "condition": "instance.status == 'waiting'"}]

    assert [c.component_id for c in shown(components, view("waiting"))] == ["waiting"]
    assert shown(components, view("running")) == []


def test_seed_004_shows_a_summary_card_when_the_instance_completed() -> None:
    [summary] = shown(SEED_004, view("completed", output={"orderId": "o-7", "label": "L-1"}))

    assert (summary.component_id, summary.layout, summary.title) == (
        "workflow-summary",
        "card",
        "Workflow Summary",
    )
    assert summary.data == {"status": "completed", "output": {"orderId": "o-7", "label": "L-1"}}


def test_seed_004_shows_an_error_alert_when_the_instance_failed() -> None:
    error = {"type": "HttpError", "message": "503", "code": "503", "stepId": "charge"}

    [alert] = shown(SEED_004, view("failed", error=error))

    assert (alert.component_id, alert.layout, alert.title) == (
        "error-view",
        "alert",
        "Error Details",
    )
    assert alert.data == {"status": "failed", "error": error}


def test_seed_004_shows_nothing_for_a_status_it_does_not_name() -> None:
    assert shown(SEED_004, view("paused")) == []
    assert shown(SEED_004, view("cancelled")) == []


def test_a_definition_with_seed_004_ui_components_loads_and_keeps_them_as_given() -> None:
    definition = validate_definition(
        {
            "id": "seeded",
            "steps": [
                {"id": "only", "type": "action", "action": "log", "config": {"message": "x"}}
            ],
            "uiComponents": SEED_004,
        }
    )

    assert definition.ui_components == SEED_004


def test_components_are_ordered_by_priority_then_by_their_place_without_one_last() -> None:
    components = [
        {"componentId": "none-first"},
        {"componentId": "two", "priority": 2},
        {"componentId": "one-b", "priority": 1},
        {"componentId": "one-a", "priority": 1.0},
        {"componentId": "none-second"},
        {"componentId": "zero", "priority": 0},
    ]

    order = [c.component_id for c in shown(components, view("running"))]

    assert order == ["zero", "one-b", "one-a", "two", "none-first", "none-second"]


def test_conditions_see_variables_steps_step_status_and_the_user() -> None:
    components = [
        {"componentId": "unpaid", "condition": "variables.paid == false"},
        {"componentId": "charging", "condition": "stepStatus.charge == 'running'"},
        {"componentId": "admins", "condition": "'admin' in user.roles"},
        {"componentId": "of-order", "condition": "input.orderId == 'o-7'"},
    ]

    ids = [c.component_id for c in shown(components, view("running", user_roles=["viewer"]))]

    assert ids == ["unpaid", "charging", "of-order"]


def test_data_bindings_and_context_templates_are_rendered_from_the_instance() -> None:
    components = [
        {
            "componentId": "order",
            "context": {"title": "Order {{ input.orderId }}", "layout": "card"},
            "data": {"order": "{{ input.orderId }}", "paid": "{{ variables.paid }}"},
        }
    ]

    [card] = shown(components, view("running"))

    assert card.title == "Order o-7"
    assert card.data == {"order": "o-7", "paid": False}


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ({"condition": "true"}, "componentId"),
        ({"componentId": "x", "condition": "status =="}, "condition"),
        ({"componentId": "x", "priority": "high"}, "priority"),
        ({"componentId": "x", "priority": True}, "priority"),
        ({"componentId": "x", "context": "card"}, "context"),
        ({"componentId": "x", "context": {"layout": 3}}, "context.layout"),
        ({"componentId": "x", "data": "{{ input."}, "data"),
        ("not an object", "uiComponents"),
    ],
)
def test_a_bad_component_is_reported_by_its_field_and_the_others_still_show(
    component: Any, field: str
) -> None:
    compiled, problems = compile_components([component, {"componentId": "fine"}])

    assert [(p.index, p.field) for p in problems] == [(0, field)]
    assert [c.component_id for c in evaluate(compiled, view("running")).components] == ["fine"]


def test_a_condition_that_fails_or_is_not_boolean_is_a_problem_not_a_crash() -> None:
    compiled, _ = compile_components(
        [
            {"componentId": "missing", "condition": "steps.nowhere.amount > 1"},
            {"componentId": "text", "condition": "status"},
            {"componentId": "fine", "condition": "has(steps.check)"},
        ]
    )

    evaluation = evaluate(compiled, view("running"))

    assert [c.component_id for c in evaluation.components] == ["fine"]
    assert [(p.component_id, p.field) for p in evaluation.problems] == [
        ("missing", "condition"),
        ("text", "condition"),
    ]


def test_the_view_of_a_state_lists_steps_in_start_order_with_their_errors() -> None:
    state = InstanceState.model_validate(
        {
            "id": "i-2",
            "workflow_id": "orders",
            "version": 1,
            "status": "failed",
            "created_at": "2026-12-01T10:00:00.000Z",
            "updated_at": "2026-12-01T10:00:01.000Z",
            "steps": {
                "b": {
                    "status": "failed",
                    "started_at": "2026-12-01T10:00:00.500Z",
                    "error": {"type": "HttpError", "message": "boom", "code": "500"},
                },
                "a": {
                    "status": "completed",
                    "started_at": "2026-12-01T10:00:00.000Z",
                    "output": {"ok": True},
                },
            },
            "error": {"type": "HttpError", "message": "boom", "code": "500", "step_id": "b"},
        }
    )

    seen = view_of(state, "ada", ["viewer"])

    assert [(s.step_id, s.status) for s in seen.steps] == [("a", "completed"), ("b", "failed")]
    assert seen.error == {"type": "HttpError", "message": "boom", "code": "500", "stepId": "b"}
    assert seen.steps[1].error is not None
    assert seen.steps[1].error["code"] == "500"
    assert (seen.user_id, list(seen.user_roles)) == ("ada", ["viewer"])
