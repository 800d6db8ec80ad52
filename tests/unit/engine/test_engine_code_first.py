"""Code-first instances: workflow tasks out, step checkpoints and task ends in."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import (
    CancelTimers,
    RecordAttempt,
    SendWorkflowTask,
    SetTimer,
    StartChild,
    Subscribe,
    Unsubscribe,
)
from flowbus.engine.inputs import (
    ChildFinished,
    Command,
    EventReceived,
    StepReported,
    TaskEnded,
    TimerFired,
)
from flowbus.engine.state import ErrorInfo, InstanceStatus

from .support import Instance, at, event_types, events_of, of_kind

TASK_1 = "inst-1:1"
CODE: dict[str, Any] = {"id": "payments", "kind": "code", "timeout": "PT1H"}


def started() -> Instance:
    return Instance(CODE, input={"amount": 5})


def task(instance: Instance) -> dict[str, Any]:
    [sent] = of_kind(instance.effects, SendWorkflowTask)
    return sent.data


def step(name: str, seq: int, status: str = "completed", **extra: Any) -> StepReported:
    return StepReported(task_id=TASK_1, name=name, seq=seq, status=status, **extra)  # type: ignore[arg-type]


def sleeping(instance: Instance, seconds: int = 2) -> None:
    wait = {"name": "nap", "seq": 2, "kind": "timer", "duration": f"PT{seconds}S"}
    instance.apply(TaskEnded(TASK_1, "waiting", wait=wait), at(1))


def test_a_code_first_start_emits_the_first_workflow_task() -> None:
    instance = started()

    data = task(instance)
    assert data["taskId"] == TASK_1
    assert (data["workflowId"], data["version"], data["reason"]) == ("payments", 1, "start")
    assert data["input"] == {"amount": 5}
    assert data["history"] == []
    assert event_types(instance.effects) == ["flowbus.instance.started"]


def test_a_workflow_task_is_sent_again_when_no_result_arrives_in_time() -> None:
    instance = started()
    [timer] = [t for t in of_kind(instance.effects, SetTimer) if t.kind == "task_timeout"]
    assert (timer.attempt, timer.due_at) == (1, at(60))

    instance.apply(TimerFired("task_timeout", None, 1), at(60))

    assert task(instance)["taskId"] == TASK_1


def test_a_result_pushes_the_resend_back() -> None:
    instance = started()
    instance.apply(step("reserve", 1, "started"), at(50))

    instance.apply(TimerFired("task_timeout", None, 1), at(60))

    assert of_kind(instance.effects, SendWorkflowTask) == []
    [timer] = of_kind(instance.effects, SetTimer)
    assert timer.kind == "task_timeout"
    assert abs((timer.due_at - at(110)).total_seconds()) < 0.001, "ms precision, as stored"


def test_a_step_checkpoint_is_recorded_with_the_usual_step_events() -> None:
    instance = started()

    instance.apply(step("reserve", 1, "started"), at(1))
    instance.apply(step("reserve", 1, result={"id": 7}), at(2))

    assert event_types(instance.history) == [
        "flowbus.instance.started",
        "flowbus.step.started",
        "flowbus.step.completed",
    ]
    [completed] = events_of(instance.effects, "flowbus.step.completed")
    assert completed.data["output"] == {"id": 7}
    assert completed.data["stepType"] == "code"
    [row] = of_kind(instance.effects, RecordAttempt)
    assert (row.step_id, row.status, row.output) == ("reserve", "completed", {"id": 7})


def test_a_failed_step_is_recorded_with_its_error() -> None:
    instance = started()

    error = ErrorInfo(type="CardDeclined", message="no", code="402")
    instance.apply(step("charge", 1, "failed", error=error), at(1))

    [failed] = events_of(instance.effects, "flowbus.step.failed")
    assert failed.data["error"]["type"] == "CardDeclined"
    assert instance.state.code is not None
    assert instance.state.code.history[0]["status"] == "failed"


def test_results_of_another_task_change_nothing() -> None:
    instance = started()

    stale = StepReported(task_id="inst-1:7", name="reserve", seq=1, status="completed")
    assert instance.apply(stale, at(1)) == []
    assert instance.apply(TaskEnded("inst-1:0", "completed"), at(1)) == []
    assert instance.state.status is InstanceStatus.RUNNING


def test_completed_ends_the_instance_with_its_output() -> None:
    instance = started()

    instance.apply(TaskEnded(TASK_1, "completed", output={"ok": True}), at(3))

    assert instance.state.status is InstanceStatus.COMPLETED
    [done] = events_of(instance.effects, "flowbus.instance.completed")
    assert done.data["output"] == {"ok": True}
    assert CancelTimers(step_id=None) in instance.effects


def test_results_after_the_task_ended_change_nothing() -> None:
    instance = started()
    sleeping(instance)

    assert instance.apply(step("late", 3), at(2)) == []


def test_a_sleep_waits_on_a_durable_timer() -> None:
    instance = started()

    sleeping(instance, seconds=2)

    assert SetTimer("wait", at(3), "nap", 1) in instance.effects
    assert instance.state.status is InstanceStatus.WAITING


def test_when_the_sleep_ends_the_next_task_carries_it_in_the_history() -> None:
    instance = started()
    instance.apply(step("reserve", 1, result={"id": 7}), at(1))
    sleeping(instance)

    instance.apply(TimerFired("wait", "nap", 1), at(3))

    data = task(instance)
    assert (data["taskId"], data["reason"]) == ("inst-1:2", "resumed")
    assert data["history"] == [
        {"kind": "step", "name": "reserve", "seq": 1, "status": "completed", "result": {"id": 7}},
        {
            "kind": "wait",
            "name": "nap",
            "seq": 2,
            "waitKind": "timer",
            "status": "completed",
            "result": None,
        },
    ]
    assert instance.state.status is InstanceStatus.RUNNING


def test_an_event_wait_subscribes_and_the_event_resumes_the_code() -> None:
    instance = started()
    wait = {"name": "paid", "seq": 1, "kind": "event", "topic": "payments", "match": "id", "key": 7}
    instance.apply(TaskEnded(TASK_1, "waiting", wait=wait), at(1))
    [subscribe] = of_kind(instance.effects, Subscribe)
    assert (subscribe.step_id, subscribe.topic, subscribe.key) == ("paid", "payments", "7")

    instance.apply(EventReceived("paid", {"data": {"id": 7}}), at(2))

    assert Unsubscribe("paid") in instance.effects
    assert task(instance)["history"][0]["result"] == {"data": {"id": 7}}


def test_a_child_wait_starts_a_subflow_whose_end_resumes_the_code() -> None:
    instance = started()
    wait = {"name": "kid", "seq": 1, "kind": "child", "workflowId": "other", "input": {"a": 1}}
    instance.apply(TaskEnded(TASK_1, "waiting", wait=wait), at(1))
    [child] = of_kind(instance.effects, StartChild)
    assert (child.workflow_id, child.input) == ("other", {"a": 1})

    instance.apply(ChildFinished("kid", child.child_id, "completed", output={"b": 2}), at(2))

    assert task(instance)["history"][0]["result"]["output"] == {"b": 2}


def test_failed_after_compensations_ends_compensating_then_failed() -> None:
    instance = started()
    instance.apply(step("reserve", 1, "compensated"), at(1))
    assert instance.state.status is InstanceStatus.COMPENSATING

    instance.apply(TaskEnded(TASK_1, "failed", error=ErrorInfo(type="Boom", message="x")), at(2))

    assert instance.state.status is InstanceStatus.FAILED
    assert event_types(instance.history)[-1] == "flowbus.instance.failed"
    assert "flowbus.instance.compensating" in event_types(instance.history)


def test_compensated_ends_the_instance_compensated() -> None:
    instance = started()

    instance.apply(TaskEnded(TASK_1, "compensated"), at(2))

    assert instance.state.status is InstanceStatus.COMPENSATED


def test_a_nondeterministic_replay_holds_the_instance_with_the_message() -> None:
    instance = started()
    error = ErrorInfo(type="NonDeterminism", message="expected step 'a', found 'b'")

    instance.apply(TaskEnded(TASK_1, "nondeterministic", error=error), at(1))

    [held] = events_of(instance.effects, "flowbus.instance.held")
    assert held.data["message"] == "expected step 'a', found 'b'"
    assert held.data["reason"] == "nondeterministic"
    assert instance.state.status is InstanceStatus.RUNNING
    assert instance.apply(TimerFired("task_timeout", None, 1), at(61)) == []


def test_retry_sends_a_held_instance_its_task_again() -> None:
    instance = started()
    instance.apply(TaskEnded(TASK_1, "nondeterministic"), at(1))

    instance.apply(Command(kind="retry"), at(2))

    assert (task(instance)["taskId"], task(instance)["reason"]) == ("inst-1:2", "resumed")


def test_an_unsupported_version_is_held_and_the_task_sent_again_later() -> None:
    instance = started()

    instance.apply(TaskEnded(TASK_1, "unsupported"), at(30))
    [held] = events_of(instance.effects, "flowbus.instance.held")
    assert "v1 of payments" in held.data["message"]
    instance.apply(TimerFired("task_timeout", None, 1), at(60))
    instance.apply(TimerFired("task_timeout", None, 1), at(90))

    assert task(instance)["taskId"] == TASK_1


def test_cancel_asks_the_worker_to_compensate() -> None:
    instance = started()
    sleeping(instance)

    instance.apply(Command(kind="cancel", reason="customer left"), at(2))

    data = task(instance)
    assert (data["taskId"], data["reason"]) == ("inst-1:2", "cancel")
    assert CancelTimers("nap") in instance.effects
    assert instance.state.status is InstanceStatus.COMPENSATING


def test_the_workflow_timeout_asks_the_worker_to_compensate_and_ends_timed_out() -> None:
    instance = started()

    instance.apply(TimerFired("workflow_timeout"), at(3600))
    assert task(instance)["reason"] == "cancel"
    instance.apply(TaskEnded("inst-1:2", "compensated"), at(3601))

    assert instance.state.status is InstanceStatus.TIMED_OUT


def test_a_wait_flowbus_cannot_set_up_holds_the_instance() -> None:
    instance = started()
    wait = {"name": "nap", "seq": 1, "kind": "timer", "duration": "soon"}

    instance.apply(TaskEnded(TASK_1, "waiting", wait=wait), at(1))

    [held] = events_of(instance.effects, "flowbus.instance.held")
    assert (held.data["reason"], instance.state.status) == ("invalid_wait", InstanceStatus.RUNNING)
    assert "duration" in held.data["message"]


def test_a_held_instance_says_why_and_since_when_in_its_state() -> None:
    instance = started()
    error = ErrorInfo(type="NonDeterminism", message="expected step 'a', found 'b'")

    instance.apply(TaskEnded(TASK_1, "nondeterministic", error=error), at(1))

    code = instance.state.code
    assert code is not None
    assert (code.held, code.held_message) == ("nondeterministic", "expected step 'a', found 'b'")
    assert code.held_since is not None
    instance.apply(Command(kind="retry"), at(2))
    assert (code.held, code.held_message, code.held_since) == (None, None, None)


def test_retry_sends_a_task_for_every_reason_an_instance_is_held() -> None:
    for outcome, wait in (("unsupported", None), ("waiting", {"name": "x", "seq": 1})):
        instance = started()
        instance.apply(TaskEnded(TASK_1, outcome, wait=wait), at(1))  # type: ignore[arg-type]
        assert instance.state.code is not None
        assert instance.state.code.held is not None

        instance.apply(Command(kind="retry"), at(2))

        assert (task(instance)["taskId"], task(instance)["reason"]) == ("inst-1:2", "resumed")


def test_an_unsupported_hold_ends_when_a_worker_answers_the_task() -> None:
    instance = started()
    instance.apply(TaskEnded(TASK_1, "unsupported"), at(1))
    instance.apply(TaskEnded(TASK_1, "unsupported"), at(2))
    assert events_of(instance.effects, "flowbus.instance.held") == [], "said once"

    instance.apply(step("reserve", 1, "started"), at(3))

    assert instance.state.code is not None
    assert instance.state.code.held is None


def test_a_failed_code_first_instance_is_not_retried() -> None:
    instance = started()
    error = ErrorInfo(type="CardDeclined", message="no", step_id="charge")
    instance.apply(TaskEnded(TASK_1, "failed", error=error), at(1))
    assert instance.state.status is InstanceStatus.FAILED

    assert instance.apply(Command(kind="retry"), at(2)) == []
    assert instance.state.status is InstanceStatus.FAILED
