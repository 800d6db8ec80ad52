"""`approval` steps: assignees decide, by quorum, before a deadline."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import SetTimer, TrackApproval
from flowbus.engine.inputs import ApprovalDecision, Command, TimerFired
from flowbus.engine.state import InstanceStatus, StepStatus
from flowbus.steps.approval import approval_id
from flowbus.times import parse_time, rfc3339

from .support import Instance, at, events_of, log_step, of_kind, webhook_step

HOUR = 3600
APPROVAL_ID = approval_id("inst-1", "approve", 1)


def approval(*others: dict[str, Any], **fields: Any) -> Instance:
    step = {"id": "approve", "type": "approval", "assignees": ["user:alice"], "next": "after"}
    step.update(fields)
    raw = {"id": "approvals", "steps": [step, log_step("after"), *others]}
    return Instance(raw, input={"orderId": "o-7", "amount": 5000})


def decide(
    instance: Instance,
    who: str,
    approved: bool = True,
    *,
    groups: tuple[str, ...] = (),
    seconds: float = 60,
    approval: str = APPROVAL_ID,
) -> None:
    instance.apply(ApprovalDecision("approve", approval, approved, who, groups), at(seconds))


def tracked(instance: Instance) -> list[str]:
    return [t.status for t in of_kind(instance.effects, TrackApproval)]


def refusals(instance: Instance) -> list[str]:
    return [
        e.data["reason"] for e in events_of(instance.effects, "flowbus.approval.decision_refused")
    ]


def test_approval_requested_event_describes_what_to_decide() -> None:
    instance = approval(
        assignees=["group:finance", "user:alice"],
        quorum="any",
        deadline="PT1H",
        summary={"order": "{{ input.orderId }}", "amount": "{{ input.amount }}"},
    )

    [requested] = events_of(instance.effects, "flowbus.approval.requested")
    assert requested.channel == "approvals"
    assert requested.data["stepId"] == "approve"
    assert requested.data["approvalId"] == APPROVAL_ID
    assert requested.data["assignees"] == ["group:finance", "user:alice"]
    assert requested.data["quorum"] == "any"
    assert requested.data["deadline"] == rfc3339(at(HOUR))
    assert requested.data["summary"] == {"order": "o-7", "amount": 5000}
    assert requested.data["decide"] == {
        "approvalId": APPROVAL_ID,
        "decisions": ["approve", "reject"],
    }


def test_requested_approval_is_tracked_as_pending() -> None:
    instance = approval(assignees=["group:finance"], quorum=2, deadline="PT1H")

    assert of_kind(instance.effects, TrackApproval) == [
        TrackApproval(
            approval_id=APPROVAL_ID,
            step_id="approve",
            attempt=1,
            status="pending",
            assignees=("group:finance",),
            quorum="2",
            deadline=parse_time(rfc3339(at(HOUR))),
            summary=None,
        )
    ]


def test_approval_waits_with_a_deadline_timer() -> None:
    instance = approval(deadline="PT1H")

    assert instance.state.steps["approve"].status is StepStatus.WAITING
    assert of_kind(instance.effects, SetTimer) == [
        SetTimer(kind="deadline", due_at=at(HOUR), step_id="approve", attempt=1)
    ]


def test_approval_without_a_deadline_sets_no_timer() -> None:
    instance = approval()

    assert of_kind(instance.effects, SetTimer) == []


# -- quorum ------------------------------------------------------------------------------


def test_quorum_any_is_approved_by_the_first_approval() -> None:
    instance = approval(assignees=["user:alice", "user:bob"], quorum="any")

    decide(instance, "bob")

    assert instance.state.steps["approve"].status is StepStatus.COMPLETED
    assert instance.state.completed == ["approve", "after"]
    assert tracked(instance) == ["approved"]


def test_accepted_decision_emits_decision_accepted_then_completed() -> None:
    instance = approval()

    decide(instance, "alice")

    [accepted] = events_of(instance.effects, "flowbus.approval.decision_accepted")
    assert (accepted.data["decidedBy"], accepted.data["decision"]) == ("alice", "approve")
    [completed] = events_of(instance.effects, "flowbus.approval.completed")
    assert completed.data["outcome"] == "approved"


def test_approved_step_output_lists_the_decisions() -> None:
    instance = approval()

    decide(instance, "alice", seconds=60)

    output = instance.state.steps["approve"].output
    assert output["approved"] is True
    assert [(d["by"], d["decision"], d["at"]) for d in output["decisions"]] == [
        ("alice", "approve", rfc3339(at(60)))
    ]


def test_quorum_any_is_rejected_by_the_first_rejection() -> None:
    instance = approval(assignees=["user:alice", "user:bob"], quorum="any")

    decide(instance, "bob", approved=False)

    assert instance.state.steps["approve"].status is StepStatus.FAILED
    assert tracked(instance) == ["rejected"]


def test_rejection_without_on_reject_fails_with_approval_rejected() -> None:
    instance = approval()

    decide(instance, "alice", approved=False)

    error = instance.state.error
    assert error is not None
    assert (error.type, error.step_id, error.message) == (
        "ApprovalRejected",
        "approve",
        "approval rejected",
    )
    assert instance.state.status is InstanceStatus.FAILED


def test_rejection_goes_to_on_reject() -> None:
    instance = approval(log_step("refuse"), onReject="refuse")

    decide(instance, "alice", approved=False)

    assert instance.state.completed == ["approve", "refuse"]
    assert instance.state.steps["approve"].output["approved"] is False


def test_group_assignee_is_matched_by_a_member_of_the_group() -> None:
    instance = approval(assignees=["group:finance"])

    decide(instance, "grace", groups=("finance",))

    assert instance.state.steps["approve"].status is StepStatus.COMPLETED


def test_quorum_all_waits_until_every_assignee_approved() -> None:
    instance = approval(assignees=["user:alice", "group:finance"], quorum="all")

    decide(instance, "alice")

    assert instance.state.steps["approve"].status is StepStatus.WAITING


def test_quorum_all_is_approved_once_every_assignee_approved() -> None:
    instance = approval(assignees=["user:alice", "group:finance"], quorum="all")
    decide(instance, "alice")

    decide(instance, "grace", groups=("finance",), seconds=120)

    assert instance.state.steps["approve"].status is StepStatus.COMPLETED


def test_quorum_all_is_rejected_by_one_rejection() -> None:
    instance = approval(assignees=["user:alice", "user:bob"], quorum="all")
    decide(instance, "alice")

    decide(instance, "bob", approved=False, seconds=120)

    assert instance.state.steps["approve"].status is StepStatus.FAILED
    assert tracked(instance) == ["rejected"]


def test_quorum_k_waits_for_k_distinct_approvers() -> None:
    instance = approval(assignees=["user:alice", "user:bob", "user:carol"], quorum=2)

    decide(instance, "alice")

    assert instance.state.steps["approve"].status is StepStatus.WAITING


def test_quorum_k_is_approved_by_k_approvers() -> None:
    instance = approval(assignees=["user:alice", "user:bob", "user:carol"], quorum=2)
    decide(instance, "alice")

    decide(instance, "carol", seconds=120)

    assert instance.state.steps["approve"].status is StepStatus.COMPLETED


def test_quorum_k_waits_after_a_rejection_while_k_can_still_be_reached() -> None:
    instance = approval(assignees=["user:alice", "user:bob", "user:carol"], quorum=2)

    decide(instance, "alice", approved=False)

    assert instance.state.steps["approve"].status is StepStatus.WAITING


def test_quorum_k_is_rejected_once_k_can_no_longer_be_reached() -> None:
    instance = approval(assignees=["user:alice", "user:bob", "user:carol"], quorum=2)
    decide(instance, "alice", approved=False)

    decide(instance, "bob", approved=False, seconds=120)

    assert instance.state.steps["approve"].status is StepStatus.FAILED


def test_quorum_k_of_a_group_waits_for_k_members_of_the_group() -> None:
    instance = approval(assignees=["group:finance"], quorum=2)

    decide(instance, "grace", groups=("finance",))

    assert instance.state.steps["approve"].status is StepStatus.WAITING


def test_quorum_k_of_a_group_is_approved_by_k_members_of_the_group() -> None:
    instance = approval(assignees=["group:finance"], quorum=2)
    decide(instance, "grace", groups=("finance",))

    decide(instance, "henry", groups=("finance",), seconds=120)

    assert instance.state.steps["approve"].status is StepStatus.COMPLETED


# -- refused decisions -------------------------------------------------------------------


def test_decision_by_someone_not_assigned_is_refused() -> None:
    instance = approval(assignees=["user:alice", "group:finance"])

    decide(instance, "mallory", groups=("sales",))

    assert refusals(instance) == ["mallory is not an assignee"]


def test_second_decision_by_the_same_person_is_refused() -> None:
    instance = approval(assignees=["user:alice", "user:bob"], quorum="all")
    decide(instance, "alice")

    decide(instance, "alice", approved=False, seconds=120)

    assert refusals(instance) == ["alice has already decided"]


def test_decision_for_another_approval_is_refused() -> None:
    instance = approval()

    decide(instance, "alice", approval=approval_id("inst-1", "approve", 2))

    assert refusals(instance) == ["unknown or closed approval"]


def test_decision_after_the_deadline_is_refused() -> None:
    instance = approval(deadline="PT1H")

    decide(instance, "alice", seconds=HOUR + 1)

    assert refusals(instance) == ["the deadline has passed"]


def test_decision_for_a_closed_approval_is_refused() -> None:
    raw = {
        "id": "approvals",
        "steps": [
            {
                "id": "approve",
                "type": "approval",
                "assignees": ["user:alice", "user:bob"],
                "next": "ship",
            },
            webhook_step("ship"),
        ],
    }
    instance = Instance(raw)
    decide(instance, "alice")

    decide(instance, "bob", seconds=120)

    assert refusals(instance) == ["unknown or closed approval"]
    assert instance.state.steps["approve"].status is StepStatus.COMPLETED


def test_refused_decision_names_who_and_what_and_leaves_the_step_waiting() -> None:
    instance = approval(assignees=["user:alice"])

    decide(instance, "mallory", approved=False)

    [refused] = events_of(instance.effects, "flowbus.approval.decision_refused")
    assert refused.channel == "approvals"
    assert (refused.data["decidedBy"], refused.data["decision"]) == ("mallory", "reject")
    assert refused.data["approvalId"] == APPROVAL_ID
    assert instance.state.steps["approve"].status is StepStatus.WAITING
    assert instance.state.steps["approve"].data["decisions"] == []
    assert tracked(instance) == []


# -- deadline, escalation, reminders ----------------------------------------------------

ESCALATE = {"action": "escalate", "assignees": ["group:directors"], "deadline": "PT4H"}


def test_deadline_without_escalation_expires_the_approval_and_rejects() -> None:
    instance = approval(deadline="PT1H")

    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    assert len(events_of(instance.effects, "flowbus.approval.expired")) == 1
    assert tracked(instance) == ["expired"]
    error = instance.state.error
    assert error is not None
    assert (error.type, error.message) == ("ApprovalRejected", "approval expired")


def test_expired_approval_goes_to_on_reject() -> None:
    instance = approval(log_step("refuse"), onReject="refuse", deadline="PT1H")

    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    assert instance.state.completed == ["approve", "refuse"]
    assert instance.state.steps["approve"].output["expired"] is True


def test_expired_approval_with_goto_goes_to_its_step() -> None:
    instance = approval(
        log_step("chase"), deadline="PT1H", onTimeout={"action": "goto", "to": "chase"}
    )

    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    assert instance.state.completed == ["approve", "chase"]
    assert instance.state.steps["approve"].output == {
        "approved": False,
        "expired": True,
        "decisions": [],
    }


def test_deadline_with_escalation_hands_the_approval_to_new_assignees() -> None:
    instance = approval(deadline="PT1H", onTimeout=ESCALATE)

    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    [escalated] = events_of(instance.effects, "flowbus.approval.escalated")
    assert escalated.data["assignees"] == ["group:directors"]
    assert escalated.data["deadline"] == rfc3339(at(5 * HOUR))
    assert [(t.status, t.assignees) for t in of_kind(instance.effects, TrackApproval)] == [
        ("pending", ("group:directors",))
    ]
    assert instance.state.steps["approve"].status is StepStatus.WAITING


def test_escalation_sets_a_timer_for_the_new_deadline() -> None:
    instance = approval(deadline="PT1H", onTimeout=ESCALATE)

    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    assert of_kind(instance.effects, SetTimer) == [
        SetTimer(kind="deadline", due_at=at(5 * HOUR), step_id="approve", attempt=1)
    ]


def test_escalated_approval_refuses_the_former_assignees() -> None:
    instance = approval(deadline="PT1H", onTimeout=ESCALATE)
    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    decide(instance, "alice", seconds=HOUR + 60)

    assert refusals(instance) == ["alice is not an assignee"]


def test_escalated_approval_is_decided_by_the_new_assignees() -> None:
    instance = approval(deadline="PT1H", onTimeout=ESCALATE)
    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    decide(instance, "dora", groups=("directors",), seconds=HOUR + 60)

    assert instance.state.steps["approve"].status is StepStatus.COMPLETED


def test_escalated_approval_expires_at_its_second_deadline() -> None:
    instance = approval(deadline="PT1H", onTimeout=ESCALATE)
    instance.apply(TimerFired("deadline", "approve", 1), at(HOUR))

    instance.apply(TimerFired("deadline", "approve", 1), at(5 * HOUR))

    assert tracked(instance) == ["expired"]
    assert instance.state.status is InstanceStatus.FAILED


def test_reminder_timer_is_set_before_the_deadline() -> None:
    instance = approval(deadline="PT1H", remindBefore=["PT15M"])

    assert SetTimer(kind="reminder", due_at=at(45 * 60), step_id="approve", attempt=1) in of_kind(
        instance.effects, SetTimer
    )


def test_reminder_already_due_at_the_request_is_not_set() -> None:
    instance = approval(deadline="PT1H", remindBefore=["PT2H"])

    assert [t.kind for t in of_kind(instance.effects, SetTimer)] == ["deadline"]


def test_reminder_timer_emits_a_reminder_and_keeps_waiting() -> None:
    instance = approval(deadline="PT1H", remindBefore=["PT15M"])

    instance.apply(TimerFired("reminder", "approve", 1), at(45 * 60))

    [reminder] = events_of(instance.effects, "flowbus.approval.reminder")
    assert reminder.data["approvalId"] == APPROVAL_ID
    assert reminder.data["assignees"] == ["user:alice"]
    assert reminder.data["deadline"] == rfc3339(at(HOUR))
    assert instance.state.steps["approve"].status is StepStatus.WAITING


def test_cancelling_the_instance_tracks_the_approval_as_cancelled() -> None:
    instance = approval()

    instance.apply(Command("cancel"), at(60))

    assert tracked(instance) == ["cancelled"]
