"""An instance from start to end: the outcome events, their order, sequence numbers and ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from flowbus.engine.core import Transition, start
from flowbus.engine.effects import EmitEvent, PublishEvent, RecordAttempt
from flowbus.engine.errors import EngineError
from flowbus.engine.ids import event_id, published_event_id
from flowbus.engine.state import InstanceStatus
from flowbus.times import rfc3339

from .support import NOW, NOW_TEXT, define, emitted

LINEAR: dict[str, Any] = {
    "id": "linear",
    "steps": [
        {
            "id": "remember",
            "type": "action",
            "action": "set_variables",
            "config": {"n": "{{ input.n }}"},
            "next": "announce",
        },
        {
            "id": "announce",
            "type": "action",
            "action": "send_event",
            "config": {"topic": "out", "type": "counted", "data": {"n": "{{ variables.n }}"}},
            "next": "note",
        },
        {"id": "note", "type": "action", "action": "log", "config": {"message": "done"}},
    ],
}


def run_linear(instance_id: str = "inst-1", **options: Any) -> Transition:
    return start(define(LINEAR), instance_id=instance_id, input={"n": 3}, now=NOW, **options)


def test_linear_workflow_completes() -> None:
    transition = run_linear()

    assert transition.state.status is InstanceStatus.COMPLETED
    assert transition.state.completed == ["remember", "announce", "note"]
    assert transition.state.active == []


def test_linear_workflow_emits_started_step_events_and_completed_in_order() -> None:
    events = emitted(run_linear().effects)

    assert [(e.type, e.data.get("stepId")) for e in events] == [
        ("flowbus.instance.started", None),
        ("flowbus.step.started", "remember"),
        ("flowbus.step.completed", "remember"),
        ("flowbus.step.started", "announce"),
        ("flowbus.step.completed", "announce"),
        ("flowbus.step.started", "note"),
        ("flowbus.step.completed", "note"),
        ("flowbus.instance.completed", None),
    ]


def test_instance_events_go_to_instances_channel_and_step_events_to_steps() -> None:
    events = emitted(run_linear().effects)

    assert {e.type: e.channel for e in events} == {
        "flowbus.instance.started": "instances",
        "flowbus.step.started": "steps",
        "flowbus.step.completed": "steps",
        "flowbus.instance.completed": "instances",
    }


def test_every_event_carries_the_instance_identifiers_and_the_time() -> None:
    for event in emitted(run_linear().effects):
        assert event.time == NOW_TEXT
        assert event.data["instanceId"] == "inst-1"
        assert event.data["workflowId"] == "linear"
        assert event.data["workflowVersion"] == 1
        assert event.data["correlationId"] is None


def test_correlation_id_is_carried_on_every_event() -> None:
    events = emitted(run_linear(correlation_id="corr-9").effects)

    assert {e.data["correlationId"] for e in events} == {"corr-9"}


def test_instance_started_event_carries_status_input_and_no_parent() -> None:
    started = emitted(run_linear().effects)[0]

    assert started.data["status"] == "running"
    assert started.data["input"] == {"n": 3}
    assert started.data["parentInstanceId"] is None


def test_step_events_carry_step_type_and_attempt() -> None:
    step_events = [e for e in emitted(run_linear().effects) if e.channel == "steps"]

    assert {(e.data["stepType"], e.data["attempt"]) for e in step_events} == {("action", 1)}


def test_actions_that_publish_nothing_take_no_sequence_number() -> None:
    raw = {
        "id": "quiet",
        "steps": [
            {
                "id": "set",
                "type": "action",
                "action": "set_variables",
                "config": {"a": 1},
                "next": "note",
            },
            {"id": "note", "type": "action", "action": "log", "config": {"message": "m"}},
        ],
    }

    transition = start(define(raw), instance_id="inst-1", input={}, now=NOW)

    assert [e.seq for e in emitted(transition.effects)] == [1, 2, 3, 4, 5, 6]
    assert transition.state.seq == 6


def test_outcome_events_are_numbered_without_gaps_around_a_published_event() -> None:
    transition = run_linear()

    assert [e.seq for e in emitted(transition.effects)] == list(range(1, 9))
    assert transition.state.seq == 8


def test_published_events_have_their_own_stable_ids() -> None:
    transition = run_linear()

    assert [e.id for e in transition.effects if isinstance(e, PublishEvent)] == [
        published_event_id("inst-1", 1)
    ]
    assert transition.state.published == 1


def test_event_id_derives_from_instance_id_and_seq() -> None:
    events = emitted(run_linear().effects)

    assert all(e.id == event_id("inst-1", e.seq) for e in events)


def test_event_ids_are_unique_within_an_instance() -> None:
    ids = [e.id for e in run_linear().effects if isinstance(e, EmitEvent | PublishEvent)]

    assert len(ids) == len(set(ids)) == 9


def test_same_inputs_give_the_same_effects_and_ids() -> None:
    assert run_linear().effects == run_linear().effects


def test_other_instances_get_other_event_ids() -> None:
    first = {e.id for e in emitted(run_linear("inst-1").effects)}
    second = {e.id for e in emitted(run_linear("inst-2").effects)}

    assert first.isdisjoint(second)


def test_step_attempts_are_recorded_running_then_completed() -> None:
    records = [e for e in run_linear().effects if isinstance(e, RecordAttempt)]

    assert [(r.step_id, r.attempt, r.status) for r in records] == [
        ("remember", 1, "running"),
        ("remember", 1, "completed"),
        ("announce", 1, "running"),
        ("announce", 1, "completed"),
        ("note", 1, "running"),
        ("note", 1, "completed"),
    ]


def test_completed_attempt_record_carries_finish_time_and_output() -> None:
    running, completed = [
        e for e in run_linear().effects if isinstance(e, RecordAttempt) and e.step_id == "remember"
    ]

    assert (running.finished_at, running.output) == (None, None)
    assert (completed.finished_at, completed.output) == (NOW_TEXT, {"n": 3})


def test_start_refuses_a_definition_without_version() -> None:
    unversioned = define(LINEAR).model_copy(update={"version": None})

    with pytest.raises(EngineError, match="has no version"):
        start(unversioned, instance_id="inst-1", input={}, now=NOW)


def test_rfc3339_converts_to_utc_and_keeps_milliseconds() -> None:
    two_hours_east = timezone(timedelta(hours=2))
    now = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=two_hours_east)

    assert rfc3339(now) == "2024-01-02T01:04:05.678Z"


def test_rfc3339_pads_milliseconds_to_three_digits() -> None:
    assert rfc3339(datetime(2024, 1, 2, 3, 4, 5, 7000, tzinfo=UTC)) == "2024-01-02T03:04:05.007Z"
