"""`parallel` steps: branches that run at the same time, joined by all, any or n."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import RunAction
from flowbus.engine.inputs import ActionResult
from flowbus.engine.state import ErrorInfo, InstanceStatus, StepStatus

from .support import Instance, at, event_types, events_of, log_step, of_kind, webhook_step

DOWN = ErrorInfo(type="ConnectionError", message="refused", code="ECONNREFUSED")


def branch(branch_id: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": branch_id, "steps": list(steps)}


def fan_out(*branches: dict[str, Any], join: str | int = "all") -> Instance:
    raw = {
        "id": "fan-out",
        "steps": [
            {
                "id": "fork",
                "type": "parallel",
                "join": join,
                "branches": list(branches),
                "next": "after",
            },
            log_step("after"),
        ],
    }
    return Instance(raw)


def started_steps(instance: Instance) -> list[str]:
    return [e.data["stepId"] for e in events_of(instance.history, "flowbus.step.started")]


def test_parallel_starts_the_first_step_of_every_branch() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")))

    assert [e.step_id for e in of_kind(instance.effects, RunAction)] == ["a1", "b1"]
    assert instance.state.steps["fork"].status is StepStatus.WAITING


def test_join_all_waits_for_every_branch() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")))

    instance.apply(ActionResult("a1", 1, output={"n": 1}), at(1))

    assert instance.state.steps["fork"].status is StepStatus.WAITING
    assert "after" not in instance.state.steps


def test_join_all_completes_once_the_last_branch_ends() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")))
    instance.apply(ActionResult("a1", 1, output={"n": 1}), at(1))

    instance.apply(ActionResult("b1", 1, output={"n": 2}), at(2))

    assert instance.state.steps["fork"].status is StepStatus.COMPLETED
    assert instance.state.completed[-2:] == ["fork", "after"]
    assert instance.state.status is InstanceStatus.COMPLETED


def test_output_maps_each_completed_branch_to_its_step_outputs() -> None:
    instance = fan_out(
        branch("a", webhook_step("a1", next="a2"), log_step("a2")),
        branch("b", webhook_step("b1")),
    )
    instance.apply(ActionResult("a1", 1, output={"n": 1}), at(1))

    instance.apply(ActionResult("b1", 1, output={"n": 2}), at(2))

    assert instance.state.steps["fork"].output == {
        "a": {"a1": {"n": 1}, "a2": {"logged": "a2"}},
        "b": {"b1": {"n": 2}},
    }


def test_steps_inside_a_branch_continue_by_their_own_next() -> None:
    instance = fan_out(
        branch("a", webhook_step("a1", next="a2"), webhook_step("a2")),
        branch("b", webhook_step("b1")),
    )

    instance.apply(ActionResult("a1", 1, output={}), at(1))

    assert [e.step_id for e in of_kind(instance.effects, RunAction)] == ["a2"]
    assert instance.state.steps["fork"].status is StepStatus.WAITING


def test_join_any_completes_at_the_first_branch_to_end() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")), join="any")

    instance.apply(ActionResult("b1", 1, output={"n": 2}), at(1))

    assert instance.state.steps["fork"].output == {"b": {"b1": {"n": 2}}}
    assert instance.state.status is InstanceStatus.COMPLETED


def test_join_any_cancels_the_live_steps_of_the_other_branches() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")), join="any")

    instance.apply(ActionResult("b1", 1, output={}), at(1))

    [cancelled] = events_of(instance.effects, "flowbus.step.cancelled")
    assert cancelled.data["stepId"] == "a1"
    assert instance.state.steps["a1"].status is StepStatus.CANCELLED


def test_join_any_never_starts_the_queued_steps_of_the_other_branches() -> None:
    instance = fan_out(branch("a", log_step("a1")), branch("b", log_step("b1")), join="any")

    assert started_steps(instance) == ["fork", "a1", "after"]
    assert "b1" not in instance.state.steps


def test_result_for_a_cancelled_branch_step_changes_nothing() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")), join="any")
    instance.apply(ActionResult("b1", 1, output={}), at(1))

    effects = instance.apply(ActionResult("a1", 1, output={}), at(2))

    assert effects == []


def test_join_n_waits_while_fewer_than_n_branches_have_ended() -> None:
    instance = fan_out(
        branch("slow", webhook_step("s1")),
        branch("a", webhook_step("a1")),
        branch("b", webhook_step("b1")),
        join=2,
    )

    instance.apply(ActionResult("a1", 1, output={}), at(1))

    assert instance.state.steps["fork"].status is StepStatus.WAITING


def test_join_n_completes_once_n_branches_have_ended() -> None:
    instance = fan_out(
        branch("slow", webhook_step("s1")),
        branch("a", webhook_step("a1")),
        branch("b", webhook_step("b1")),
        join=2,
    )
    instance.apply(ActionResult("a1", 1, output={}), at(1))

    instance.apply(ActionResult("b1", 1, output={}), at(2))

    assert instance.state.steps["fork"].status is StepStatus.COMPLETED
    assert set(instance.state.steps["fork"].output) == {"a", "b"}
    assert instance.state.steps["s1"].status is StepStatus.CANCELLED


def test_join_all_fails_with_the_error_of_a_failing_branch() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")))

    instance.apply(ActionResult("a1", 1, error=DOWN), at(1))

    error = instance.state.steps["fork"].error
    assert error is not None
    assert (error.type, error.code, error.step_id) == ("ConnectionError", "ECONNREFUSED", "fork")
    assert error.details["branch"] == "a"
    assert instance.state.status is InstanceStatus.FAILED


def test_failing_branch_cancels_the_other_branches() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")))

    instance.apply(ActionResult("a1", 1, error=DOWN), at(1))

    assert instance.state.steps["b1"].status is StepStatus.CANCELLED
    assert event_types(instance.effects)[:3] == [
        "flowbus.step.failed",
        "flowbus.step.cancelled",
        "flowbus.step.failed",
    ]


def test_join_any_does_not_fail_while_another_branch_may_still_end() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")), join="any")

    instance.apply(ActionResult("a1", 1, error=DOWN), at(1))

    assert instance.state.steps["fork"].status is StepStatus.WAITING
    assert instance.state.steps["b1"].status is StepStatus.RUNNING


def test_join_any_fails_once_no_branch_can_end() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")), join="any")
    instance.apply(ActionResult("a1", 1, error=DOWN), at(1))

    instance.apply(ActionResult("b1", 1, error=DOWN), at(2))

    assert instance.state.steps["fork"].status is StepStatus.FAILED
    assert instance.state.status is InstanceStatus.FAILED


def test_join_any_completes_after_a_failed_branch_when_another_ends() -> None:
    instance = fan_out(branch("a", webhook_step("a1")), branch("b", webhook_step("b1")), join="any")
    instance.apply(ActionResult("a1", 1, error=DOWN), at(1))

    instance.apply(ActionResult("b1", 1, output={"n": 2}), at(2))

    assert instance.state.steps["fork"].output == {"b": {"b1": {"n": 2}}}


def test_branch_step_with_a_handled_failure_lets_its_branch_go_on() -> None:
    instance = fan_out(
        branch(
            "a",
            webhook_step("a1", onFailure={"action": "continue", "nextStepId": "a2"}),
            log_step("a2"),
        ),
        branch("b", log_step("b1")),
    )

    instance.apply(ActionResult("a1", 1, error=DOWN), at(1))

    assert instance.state.steps["fork"].output == {
        "a": {"a2": {"logged": "a2"}},
        "b": {"b1": {"logged": "b1"}},
    }


def test_nested_parallel_inside_a_branch_is_joined_before_its_branch_ends() -> None:
    inner = {
        "id": "inner",
        "type": "parallel",
        "branches": [branch("x", webhook_step("x1")), branch("y", log_step("y1"))],
    }
    instance = fan_out(branch("a", inner), branch("b", log_step("b1")))

    instance.apply(ActionResult("x1", 1, output={"n": 1}), at(1))

    assert instance.state.steps["fork"].output == {
        "a": {"inner": {"x": {"x1": {"n": 1}}, "y": {"y1": {"logged": "y1"}}}},
        "b": {"b1": {"logged": "b1"}},
    }
