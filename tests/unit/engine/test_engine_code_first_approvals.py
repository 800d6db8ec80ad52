"""Approval waits of code-first instances: the `approval` step's requests, decisions,
quorum, deadlines and refusals, ending in the next workflow task."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import CancelTimers, SendWorkflowTask, SetTimer, TrackApproval
from flowbus.engine.inputs import ApprovalDecision, Command, TaskEnded, TimerFired
from flowbus.engine.state import InstanceStatus, StepStatus
from flowbus.steps.approval import approval_id

from .support import Instance, at, event_types, events_of, of_kind

TASK_1 = "inst-1:1"
CODE: dict[str, Any] = {"id": "payments", "kind": "code", "timeout": "PT1H"}
APPROVAL_ID = approval_id("inst-1", "manager", 1)


def waiting(**spec: Any) -> Instance:
    instance = Instance(CODE, input={"amount": 5})
    wait = {"name": "manager", "seq": 2, "kind": "approval", "assignees": ["user:alice"]}
    wait.update(spec)
    instance.apply(TaskEnded(TASK_1, "waiting", wait=wait), at(1))
    return instance


def decide(instance: Instance, who: str, approved: bool = True, seconds: float = 60) -> None:
    decision = ApprovalDecision("manager", APPROVAL_ID, approved, who, decision_id="d-1")
    instance.apply(decision, at(seconds))


def task(instance: Instance) -> dict[str, Any]:
    [sent] = of_kind(instance.effects, SendWorkflowTask)
    return sent.data


def refusals(instance: Instance) -> list[str]:
    return [
        e.data["reason"] for e in events_of(instance.effects, "flowbus.approval.decision_refused")
    ]


def test_an_approval_wait_requests_the_approval_as_the_step_does() -> None:
    instance = waiting(quorum=2, deadline="PT1H", summary="refund 5000", assignees=["a", "b"])

    [requested] = events_of(instance.effects, "flowbus.approval.requested")
    assert requested.data["approvalId"] == APPROVAL_ID
    assert requested.data["stepId"] == "manager"
    assert (requested.data["quorum"], requested.data["summary"]) == (2, "refund 5000")
    assert requested.data["assignees"] == ["a", "b"]
    [tracked] = of_kind(instance.effects, TrackApproval)
    assert (tracked.step_id, tracked.attempt, tracked.status) == ("manager", 1, "pending")
    assert SetTimer("deadline", at(1 + 3600), "manager", 1) in instance.effects
    [started] = events_of(instance.effects, "flowbus.step.started")
    assert started.data["stepType"] == "approval"
    assert instance.state.status is InstanceStatus.WAITING


def test_an_approval_resumes_the_code_with_the_decision() -> None:
    instance = waiting()

    decide(instance, "alice")

    data = task(instance)
    assert (data["taskId"], data["reason"]) == ("inst-1:2", "resumed")
    [entry] = data["history"]
    assert (entry["kind"], entry["name"], entry["waitKind"], entry["status"]) == (
        "wait",
        "manager",
        "approval",
        "completed",
    )
    assert entry["result"]["approved"] is True
    assert [d["by"] for d in entry["result"]["decisions"]] == ["alice"]
    assert "flowbus.approval.completed" in event_types(instance.effects)
    assert [t.status for t in of_kind(instance.effects, TrackApproval)] == ["approved"]
    assert CancelTimers("manager") in instance.effects
    assert instance.state.steps["manager"].status is StepStatus.COMPLETED
    assert instance.state.status is InstanceStatus.RUNNING


def test_a_rejection_fails_the_wait_and_the_code_sees_it() -> None:
    instance = waiting()

    decide(instance, "alice", approved=False)

    [entry] = task(instance)["history"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "ApprovalRejected"
    assert entry["result"]["approved"] is False
    [failed] = events_of(instance.effects, "flowbus.step.failed")
    assert failed.data["stepType"] == "approval"


def test_a_quorum_needs_that_many_approvers() -> None:
    instance = waiting(assignees=["alice", "bob", "carol"], quorum=2)

    decide(instance, "alice")
    assert of_kind(instance.effects, SendWorkflowTask) == []
    decide(instance, "bob", seconds=61)

    assert task(instance)["history"][0]["result"]["approved"] is True


def test_a_decision_from_someone_else_is_refused_and_changes_nothing() -> None:
    instance = waiting()
    before = instance.state.model_copy(deep=True)

    decide(instance, "mallory")

    assert refusals(instance) == ["mallory is not an assignee"]
    assert event_types(instance.effects) == ["flowbus.approval.decision_refused"]
    assert instance.state.code == before.code
    assert instance.state.steps == before.steps


def test_a_decision_after_the_wait_ended_is_refused() -> None:
    instance = waiting()
    decide(instance, "alice")

    decide(instance, "alice", seconds=62)

    assert refusals(instance) == ["unknown or closed approval"]
    assert of_kind(instance.effects, SendWorkflowTask) == []


def test_the_deadline_expires_the_approval_and_the_code_sees_a_rejection() -> None:
    instance = waiting(deadline="PT1H")

    instance.apply(TimerFired("deadline", "manager", 1), at(3601))

    assert "flowbus.approval.expired" in event_types(instance.effects)
    [entry] = task(instance)["history"]
    assert (entry["status"], entry["error"]["message"]) == ("failed", "approval expired")
    assert entry["result"]["expired"] is True


def test_cancel_closes_a_pending_approval() -> None:
    instance = waiting()

    instance.apply(Command(kind="cancel", reason="no longer needed"), at(2))

    assert [t.status for t in of_kind(instance.effects, TrackApproval)] == ["cancelled"]
    assert task(instance)["reason"] == "cancel"


def test_an_approval_wait_without_assignees_holds_the_instance() -> None:
    instance = waiting(assignees=[])

    [held] = events_of(instance.effects, "flowbus.instance.held")
    assert held.data["reason"] == "invalid_wait"
    assert "assignees" in held.data["message"]
    assert of_kind(instance.effects, TrackApproval) == []
