"""The workflow-level `onFailure`: a failure path run after compensation, a failure caught
to go on elsewhere, and a failure workflow started with the failed instance's data."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.definitions.errors import DefinitionError
from flowbus.engine.effects import NotifyParent, RunAction, StartChild
from flowbus.engine.ids import failure_workflow_id
from flowbus.engine.inputs import ActionResult, ChildFinished, Command
from flowbus.engine.lifecycle import FAILURE_WORKFLOW_STEP
from flowbus.engine.state import ErrorInfo, InstanceStatus, ParentLink, StepStatus

from .support import Instance, at, define, event_types, events_of, log_step, of_kind, webhook_step

DECLINED = ErrorInfo(type="PaymentDeclined", message="card declined", code="402")


def undone(step_id: str, **extra: Any) -> dict[str, Any]:
    """A step undone by an inline compensation (a log line)."""
    return log_step(
        step_id, compensate={"action": "log", "config": {"message": f"undo {step_id}"}}, **extra
    )


def order(on_failure: dict[str, Any], *handlers: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "order",
        "onFailure": on_failure,
        "steps": [undone("reserve", next="pay"), webhook_step("pay"), *handlers],
    }


def failed_payment(raw: dict[str, Any]) -> Instance:
    instance = Instance(raw, input={"orderId": "o-1"})
    instance.apply(ActionResult(step_id="pay", attempt=1, error=DECLINED), at(1))
    return instance


def test_failure_path_runs_after_compensation() -> None:
    instance = failed_payment(order({"nextStepId": "notify"}, log_step("notify")))

    steps = [
        (e.type, e.data.get("stepId"))
        for e in events_of(instance.effects, "flowbus.step.compensated")
        + events_of(instance.effects, "flowbus.step.started")
    ]
    assert steps == [("flowbus.step.compensated", "reserve"), ("flowbus.step.started", "notify")]
    types = event_types(instance.effects)
    assert types.index("flowbus.step.compensated") < types.index("flowbus.step.started")
    assert instance.state.steps["notify"].status is StepStatus.COMPLETED


def test_instance_ends_as_the_failure_left_it_once_the_failure_path_ends() -> None:
    instance = failed_payment(order({"nextStepId": "notify"}, log_step("notify")))

    assert instance.state.status is InstanceStatus.COMPENSATED
    assert instance.state.error is not None
    assert instance.state.error.type == "PaymentDeclined"
    assert event_types(instance.effects)[-1] == "flowbus.instance.compensated"


def test_failure_without_compensation_ends_failed_after_the_path() -> None:
    raw = {
        "id": "plain",
        "onFailure": {"nextStepId": "notify"},
        "steps": [webhook_step("pay"), log_step("notify")],
    }
    instance = failed_payment(raw)

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.steps["notify"].status is StepStatus.COMPLETED


def test_error_handler_conditions_choose_the_failure_path_by_error_type() -> None:
    on_failure = {
        "action": "stop",
        "errorHandler": {
            "conditions": [
                {"errorType": "TimeoutError", "nextStepId": "timeoutHandler"},
                {"errorType": "PaymentDeclined", "nextStepId": "declinedHandler"},
            ]
        },
    }
    instance = failed_payment(
        order(on_failure, log_step("timeoutHandler"), log_step("declinedHandler"))
    )

    assert "timeoutHandler" not in instance.state.completed
    assert "declinedHandler" in instance.state.completed


def test_failure_path_that_fails_ends_the_instance_failed_without_a_second_path() -> None:
    instance = failed_payment(order({"nextStepId": "alert"}, webhook_step("alert")))
    alert_error = ErrorInfo(type="HttpError", message="503")
    instance.apply(ActionResult(step_id="alert", attempt=1, error=alert_error), at(2))

    assert instance.state.status is InstanceStatus.FAILED
    assert instance.state.error is not None
    assert instance.state.error.step_id == "alert"
    assert instance.state.failure_path is not None
    assert instance.state.failure_path.error.type == "PaymentDeclined"


def test_continue_catches_the_failure_and_the_instance_may_complete() -> None:
    raw = order({"action": "continue", "nextStepId": "fallback"}, log_step("fallback"))
    instance = failed_payment(raw)

    assert instance.state.status is InstanceStatus.COMPLETED
    assert "flowbus.step.compensated" not in event_types(instance.history)
    assert instance.state.steps["pay"].status is StepStatus.FAILED


def test_continue_without_a_matching_route_stops_as_usual() -> None:
    on_failure = {
        "action": "continue",
        "errorHandler": {"conditions": [{"errorType": "TimeoutError", "nextStepId": "later"}]},
    }
    instance = failed_payment(order(on_failure, log_step("later")))

    assert instance.state.status is InstanceStatus.COMPENSATED
    assert "later" not in instance.state.steps or (
        instance.state.steps["later"].status is not StepStatus.COMPLETED
    )


def test_failure_workflow_starts_with_the_failed_instance_data() -> None:
    instance = failed_payment(order({"workflow": "order-failed", "version": 3}))

    [start] = of_kind(instance.effects, StartChild)
    assert start.step_id == FAILURE_WORKFLOW_STEP
    assert start.workflow_id == "order-failed"
    assert start.version == 3
    assert start.input["instanceId"] == "inst-1"
    assert start.input["workflowId"] == "order"
    assert start.input["status"] == "compensated"
    assert start.input["error"]["type"] == "PaymentDeclined"
    assert start.input["input"] == {"orderId": "o-1"}
    assert instance.state.failure_workflow is not None
    assert instance.state.failure_workflow.instance_id == start.child_id


def test_failure_workflow_starts_once_the_instance_has_ended() -> None:
    instance = failed_payment(order({"failureWorkflow": "order-failed"}))

    types = event_types(instance.effects)
    assert types[-1] == "flowbus.instance.compensated"
    assert isinstance(instance.effects[-1], StartChild)


def test_failure_workflow_id_is_stable_when_the_transition_is_computed_again() -> None:
    first = failed_payment(order({"workflow": "order-failed"}))
    second = failed_payment(order({"workflow": "order-failed"}))

    [a] = of_kind(first.effects, StartChild)
    [b] = of_kind(second.effects, StartChild)
    assert a.child_id == b.child_id == failure_workflow_id("inst-1", first.state.seq)


def test_failure_workflow_starts_after_the_failure_path() -> None:
    instance = failed_payment(order({"nextStepId": "notify", "workflow": "wf"}, log_step("notify")))

    [start] = of_kind(instance.effects, StartChild)
    assert start.input["status"] == "compensated"
    assert instance.state.steps["notify"].status is StepStatus.COMPLETED


def test_cancelled_instance_starts_no_failure_workflow() -> None:
    instance = Instance(order({"workflow": "order-failed"}))
    instance.apply(Command(kind="cancel"), at(1))

    assert instance.state.status is InstanceStatus.COMPENSATED
    assert of_kind(instance.effects, StartChild) == []


def test_completed_instance_starts_no_failure_workflow() -> None:
    instance = Instance(order({"workflow": "order-failed"}))
    instance.apply(ActionResult(step_id="pay", attempt=1, output={}), at(1))

    assert instance.state.status is InstanceStatus.COMPLETED
    assert of_kind(instance.history, StartChild) == []


def test_failure_workflow_of_a_failure_workflow_is_not_started() -> None:
    link = ParentLink(instance_id="failed-one", step_id=FAILURE_WORKFLOW_STEP)
    raw = {
        "id": "order-failed",
        "onFailure": {"workflow": "order-failed"},
        "steps": [webhook_step("pay")],
    }
    instance = Instance(raw, parent=link)
    instance.apply(ActionResult(step_id="pay", attempt=1, error=DECLINED), at(1))

    assert instance.state.status is InstanceStatus.FAILED
    assert of_kind(instance.effects, StartChild) == []
    assert len(of_kind(instance.effects, NotifyParent)) == 1


def test_how_the_failure_workflow_ended_is_noted_on_the_failed_instance() -> None:
    instance = failed_payment(order({"workflow": "order-failed"}))
    [start] = of_kind(instance.effects, StartChild)
    missing = ErrorInfo(type="SubflowNotFound", message="no active version of workflow 'x'")
    finished = ChildFinished(
        step_id=FAILURE_WORKFLOW_STEP, child_id=start.child_id, status="failed", error=missing
    )

    assert instance.apply(finished, at(2)) == []
    assert instance.state.failure_workflow is not None
    assert instance.state.failure_workflow.status == "failed"
    assert instance.state.failure_workflow.error == missing
    assert instance.state.status is InstanceStatus.COMPENSATED


def test_retry_after_a_failure_path_runs_the_failed_step_again() -> None:
    raw = {
        "id": "plain",
        "onFailure": {"nextStepId": "notify"},
        "steps": [webhook_step("pay"), log_step("notify")],
    }
    instance = failed_payment(raw)
    instance.apply(Command(kind="retry"), at(5))

    assert instance.state.status is not InstanceStatus.FAILED
    assert instance.state.failure_path is None
    assert [e.step_id for e in of_kind(instance.effects, RunAction)] == ["pay"]


def test_failure_path_steps_need_no_next_to_be_reachable() -> None:
    definition = define(order({"nextStepId": "notify"}, log_step("notify")))

    assert definition.failure_entry_ids() == ["notify"]


@pytest.mark.parametrize(
    ("on_failure", "message"),
    [
        ({"nextStepId": "nowhere"}, "unknown top-level step 'nowhere'"),
        ({"action": "stop"}, "onFailure needs nextStepId, errorHandler or workflow"),
        ({"action": "retry", "nextStepId": "notify"}, "action"),
        ({"version": 2, "nextStepId": "notify"}, "version: applies to a failure workflow"),
        ({"action": "continue", "workflow": "wf"}, "action: continue needs nextStepId"),
    ],
)
def test_invalid_workflow_on_failure_is_refused_naming_the_field(
    on_failure: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError) as refused:
        define(order(on_failure, log_step("notify")))

    assert message in str(refused.value)
    assert "onFailure" in str(refused.value)


def test_code_first_workflow_has_no_workflow_level_on_failure() -> None:
    with pytest.raises(DefinitionError, match="code-first"):
        define({"id": "code", "kind": "code", "onFailure": {"workflow": "wf"}})


def test_seed_004_error_handler_example_works_at_workflow_level() -> None:
    # The example error handler of seed 004, as printed, as the workflow's own onFailure.
    seed_example = {
        "onFailure": {
            "action": "continue",
            "errorHandler": {
                "conditions": [
                    {"errorType": "ValidationError", "nextStepId": "validateRetry"},
                    {"errorType": "TimeoutError", "nextStepId": "timeoutHandler"},
                ]
            },
        }
    }
    raw = {
        "workflowId": "expense",
        **seed_example,
        "steps": [webhook_step("submit"), log_step("validateRetry"), log_step("timeoutHandler")],
    }
    instance = Instance(raw)
    timeout = ErrorInfo(type="TimeoutError", message="too slow")
    instance.apply(ActionResult(step_id="submit", attempt=1, error=timeout), at(1))

    assert instance.state.status is InstanceStatus.COMPLETED
    assert instance.state.completed == ["timeoutHandler"]
