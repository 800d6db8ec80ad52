"""Outcome events across many transitions: numbered 1..n without gaps, with stable ids."""

from __future__ import annotations

import uuid
from typing import Any

from flowbus.engine.ids import EVENT_NAMESPACE, event_id, published_event_id
from flowbus.engine.inputs import ActionResult, ApprovalDecision, Command, TimerFired
from flowbus.engine.state import ErrorInfo, InstanceStatus
from flowbus.steps.approval import approval_id

from .support import Instance, at, emitted, log_step, webhook_step

SEVERAL_WAITS: dict[str, Any] = {
    "id": "numbered",
    "steps": [
        webhook_step("call", retryPolicy={"maxAttempts": 2, "delay": "PT1S"}, next="pause"),
        {"id": "pause", "type": "wait", "duration": "PT1M", "next": "approve"},
        {"id": "approve", "type": "approval", "assignees": ["user:alice"], "next": "done"},
        log_step("done"),
    ],
}


def run_to_the_end(instance_id: str = "inst-1") -> Instance:
    """Start, a failed try, its retry, pause and resume, a wait, a refused and an accepted
    decision: nine transitions."""
    approval = approval_id(instance_id, "approve", 1)
    instance = Instance(SEVERAL_WAITS, instance_id=instance_id)
    instance.apply(ActionResult("call", 1, error=ErrorInfo(type="HttpError", message="503")), at(1))
    instance.apply(TimerFired("retry", "call", 1), at(2))
    instance.apply(Command("pause"), at(3))
    instance.apply(ActionResult("call", 2, output={}), at(4))
    instance.apply(Command("resume"), at(5))
    instance.apply(TimerFired("wait", "pause", 1), at(65))
    instance.apply(ApprovalDecision("approve", approval, True, "mallory"), at(66))
    instance.apply(ApprovalDecision("approve", approval, True, "alice"), at(67))
    return instance


def test_multi_transition_run_reaches_its_end() -> None:
    assert run_to_the_end().state.status is InstanceStatus.COMPLETED


def test_outcome_events_are_numbered_one_to_n_across_every_transition() -> None:
    events = emitted(run_to_the_end().history)

    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_instance_remembers_how_many_outcome_events_it_emitted() -> None:
    instance = run_to_the_end()

    assert instance.state.seq == len(emitted(instance.history))


def test_every_event_id_derives_from_the_instance_and_its_number() -> None:
    events = emitted(run_to_the_end().history)

    assert [e.id for e in events] == [event_id("inst-1", n) for n in range(1, len(events) + 1)]


def test_same_inputs_give_the_same_events_in_every_transition() -> None:
    assert run_to_the_end().history == run_to_the_end().history


def test_inputs_that_change_nothing_take_no_number() -> None:
    instance = Instance(SEVERAL_WAITS)
    seq = instance.state.seq

    instance.apply(ActionResult("call", 5, output={}), at(1))

    assert instance.state.seq == seq


def test_event_ids_are_the_name_based_uuids_of_the_instance_and_number() -> None:
    for instance_id, n in [("inst-1", 1), ("0b7c4c1e-1f2a-4c3d-9e8f-a1b2c3d4e5f6", 12345)]:
        expected = uuid.uuid5(EVENT_NAMESPACE, f"{instance_id}/{n}")
        assert event_id(instance_id, n) == str(expected)
        published = uuid.uuid5(EVENT_NAMESPACE, f"{instance_id}/published/{n}")
        assert published_event_id(instance_id, n) == str(published)
