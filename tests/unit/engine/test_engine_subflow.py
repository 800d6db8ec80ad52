"""`subflow` steps: a child instance of another workflow, and the child's side of it."""

from __future__ import annotations

import uuid
from typing import Any

from flowbus.engine.effects import CancelChild, NotifyParent, StartChild
from flowbus.engine.inputs import ActionResult, ChildFinished, Command
from flowbus.engine.state import ErrorInfo, InstanceStatus, ParentLink, StepStatus
from flowbus.steps.subflow import CHILD_NAMESPACE

from .support import Instance, at, emitted, log_step, of_kind, webhook_step


def parent(**subflow: Any) -> Instance:
    raw = {
        "id": "parent",
        "steps": [
            {
                "id": "reserve",
                "type": "subflow",
                "workflow": "stock-reservation",
                "input": {"orderId": "{{ input.orderId }}"},
                "next": "after",
                **subflow,
            },
            log_step("after"),
        ],
    }
    return Instance(raw, input={"orderId": "o-7"})


def child_of(instance: Instance) -> str:
    [start_child] = of_kind(instance.history, StartChild)
    return start_child.child_id


def test_subflow_starts_a_child_with_the_rendered_input() -> None:
    instance = parent(version=2)

    assert of_kind(instance.effects, StartChild) == [
        StartChild(
            step_id="reserve",
            attempt=1,
            child_id=str(uuid.uuid5(CHILD_NAMESPACE, "inst-1/reserve/1")),
            workflow_id="stock-reservation",
            version=2,
            input={"orderId": "o-7"},
        )
    ]


def test_child_id_is_the_same_when_the_start_is_computed_again() -> None:
    assert child_of(parent()) == child_of(parent())


def test_subflow_waits_for_its_child() -> None:
    instance = parent()

    assert instance.state.steps["reserve"].status is StepStatus.WAITING
    assert instance.state.status is InstanceStatus.WAITING


def test_completed_child_output_is_mapped_through_the_output_template() -> None:
    instance = parent(
        output={"reservation": "{{ child.output.id }}", "by": "{{ child.instanceId }}"}
    )
    child_id = child_of(instance)

    instance.apply(ChildFinished("reserve", child_id, "completed", output={"id": "r-1"}), at(1))

    assert instance.state.steps["reserve"].output == {"reservation": "r-1", "by": child_id}
    assert instance.state.completed == ["reserve", "after"]


def test_completed_child_output_is_the_step_output_without_a_template() -> None:
    instance = parent()

    instance.apply(
        ChildFinished("reserve", child_of(instance), "completed", output={"id": "r-1"}), at(1)
    )

    assert instance.state.steps["reserve"].output == {"id": "r-1"}


def test_failed_child_fails_the_step_with_subflow_failed() -> None:
    instance = parent()

    instance.apply(
        ChildFinished(
            "reserve",
            child_of(instance),
            "failed",
            error=ErrorInfo(type="HttpError", message="out of stock"),
        ),
        at(1),
    )

    error = instance.state.steps["reserve"].error
    assert error is not None
    assert (error.type, error.code) == ("SubflowFailed", "failed")
    assert error.message == "subflow stock-reservation ended failed: out of stock"
    assert instance.state.status is InstanceStatus.FAILED


def test_child_timed_out_fails_the_step_with_its_status_as_code() -> None:
    instance = parent()

    instance.apply(ChildFinished("reserve", child_of(instance), "timed_out"), at(1))

    error = instance.state.steps["reserve"].error
    assert error is not None
    assert (error.type, error.code) == ("SubflowFailed", "timed_out")


def test_finish_of_another_child_changes_nothing() -> None:
    instance = parent()

    effects = instance.apply(ChildFinished("reserve", "someone-else", "completed"), at(1))

    assert effects == []
    assert instance.state.steps["reserve"].status is StepStatus.WAITING


def test_cancelling_the_parent_cancels_the_child() -> None:
    instance = parent()

    instance.apply(Command("cancel"), at(1))

    assert of_kind(instance.effects, CancelChild) == [CancelChild(child_id=child_of(instance))]


# -- the child's side --------------------------------------------------------------------

LINK = ParentLink(instance_id="parent-1", step_id="reserve")


def child(*steps: dict[str, Any]) -> Instance:
    raw = {"id": "stock-reservation", "output": {"id": "r-1"}, "steps": list(steps)}
    return Instance(raw, instance_id="child-1", parent=LINK)


def test_child_started_event_names_its_parent() -> None:
    instance = child(webhook_step("hold"))

    assert emitted(instance.effects)[0].data["parentInstanceId"] == "parent-1"


def test_completed_child_notifies_its_parent_with_its_output() -> None:
    instance = child(log_step("hold"))

    assert of_kind(instance.effects, NotifyParent) == [
        NotifyParent(
            parent_id="parent-1",
            step_id="reserve",
            child_id="child-1",
            status="completed",
            output={"id": "r-1"},
            error=None,
        )
    ]


def test_failed_child_notifies_its_parent_with_its_error() -> None:
    instance = child(webhook_step("hold"))

    instance.apply(ActionResult("hold", 1, error=ErrorInfo(type="HttpError", message="no")), at(1))

    [notify] = of_kind(instance.effects, NotifyParent)
    assert (notify.parent_id, notify.child_id, notify.status) == ("parent-1", "child-1", "failed")
    assert notify.error is not None
    assert notify.error.type == "HttpError"


def test_instance_without_a_parent_notifies_nobody() -> None:
    raw = {"id": "stock-reservation", "steps": [log_step("hold")]}

    assert of_kind(Instance(raw).effects, NotifyParent) == []
