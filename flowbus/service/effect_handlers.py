"""What the shell does with each effect the engine asks for: one small handler per effect
type, in one table. Handlers only collect: rows for the unit of work to write, outbox
events, and follow-up messages (a wait that may find its event already buffered, a
subflow to start) for the message bus."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from flowbus.engine.core import Transition
from flowbus.engine.effects import (
    CancelChild,
    CancelTimers,
    EmitEvent,
    LogLine,
    NotifyParent,
    PublishEvent,
    RecordAttempt,
    RunAction,
    SendWorkflowTask,
    SetTimer,
    StartChild,
    Subscribe,
    TrackApproval,
    Unsubscribe,
)
from flowbus.engine.inputs import ChildFinished, Command, EngineInput
from flowbus.engine.state import InstanceState
from flowbus.external.task import activity_task
from flowbus.service.codec import encode_input
from flowbus.service.messages import StartSubflow, TakeBufferedEvent
from flowbus.service.reports import FinishedStep
from flowbus.store.approvals import approval_row
from flowbus.store.subscriptions import Subscription
from flowbus.store.timers import ACTION_JOB, INBOX, NewTimer
from flowbus.times import parse_time, rfc3339

if TYPE_CHECKING:
    from flowbus.service.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

DECISION_REFUSED = "flowbus.approval.decision_refused"
WORKFLOW_TASK = "flowbus.task.workflow"
TASK_ACTION = "task"
"""The action handed to task workers through the outbox instead of run as a job."""
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

Handler = Callable[["UnitOfWork", InstanceState, Any], None]


def take(uow: UnitOfWork, transition: Transition, *, changed: bool) -> None:
    """Hand each effect of `transition` to its handler."""
    state = transition.state
    if changed:
        uow.changes.dirty.add(state.id)
    for effect in transition.effects:
        EFFECT_HANDLERS[type(effect)](uow, state, effect)


def send(uow: UnitOfWork, instance_id: str, value: EngineInput) -> None:
    """Deliver an input to another instance through the durable inbox."""
    uow.changes.timers.append(
        NewTimer(instance_id=instance_id, kind=INBOX, due_at=uow.now, payload=encode_input(value))
    )
    uow.report.inbox_sent += 1


def _emit(uow: UnitOfWork, state: InstanceState, effect: EmitEvent) -> None:
    uow.events.emit(state.id, effect)
    if effect.type == DECISION_REFUSED:
        uow.report.decisions_refused += 1


def _publish(uow: UnitOfWork, state: InstanceState, effect: PublishEvent) -> None:
    uow.events.publish(effect)


def _send_workflow_task(uow: UnitOfWork, state: InstanceState, effect: SendWorkflowTask) -> None:
    task = PublishEvent(
        topic=uow.events.topics.tasks,
        key=state.id,
        id=effect.id,
        type=WORKFLOW_TASK,
        time=effect.time,
        data=effect.data,
        subject=state.id,
    )
    uow.events.publish(task)
    uow.report.tasks_dispatched += 1


def _record_attempt(uow: UnitOfWork, state: InstanceState, effect: RecordAttempt) -> None:
    uow.changes.attempts.append((state.id, effect))
    if effect.finished_at is not None:
        seconds = (parse_time(effect.finished_at) - parse_time(effect.started_at)).total_seconds()
        uow.report.finished_steps.append(
            FinishedStep(state.workflow_id, effect.step_type, effect.status, seconds)
        )


def _log_line(uow: UnitOfWork, state: InstanceState, effect: LogLine) -> None:
    log.log(
        _LEVELS.get(effect.level, 20),
        effect.message,
        fields=effect.fields,
        instance_id=state.id,
        workflow_id=state.workflow_id,
        **{f"meta_{k}": v for k, v in state.metadata.items()},
    )


def _set_timer(uow: UnitOfWork, state: InstanceState, effect: SetTimer) -> None:
    uow.changes.timers.append(
        NewTimer(
            instance_id=state.id,
            kind=effect.kind,
            due_at=effect.due_at,
            step_id=effect.step_id,
            attempt=effect.attempt,
        )
    )
    uow.report.timers_set += 1


def _run_action(uow: UnitOfWork, state: InstanceState, effect: RunAction) -> None:
    if effect.action == TASK_ACTION:
        definition = uow.catalog.version(state.workflow_id, state.version)
        topic = uow.events.topics.tasks
        uow.events.publish(activity_task(topic, state, effect, definition, rfc3339(uow.now)))
        uow.report.tasks_dispatched += 1
        return
    uow.changes.timers.append(
        NewTimer(
            instance_id=state.id,
            kind=ACTION_JOB,
            due_at=uow.now,
            step_id=effect.step_id,
            attempt=effect.attempt,
            payload={
                "action": effect.action,
                "config": effect.config,
                "idempotencyKey": effect.idempotency_key,
                "tries": effect.tries,
                "purpose": effect.purpose,
                "workflowId": state.workflow_id,
            },
        )
    )
    uow.report.timers_set += 1
    uow.report.actions_queued += 1


def _cancel_timers(uow: UnitOfWork, state: InstanceState, effect: CancelTimers) -> None:
    uow.changes.cancel_timers(state.id, effect.step_id)


def _subscribe(uow: UnitOfWork, state: InstanceState, effect: Subscribe) -> None:
    subscription = Subscription(
        instance_id=state.id,
        step_id=effect.step_id,
        attempt=effect.attempt,
        topic=effect.topic,
        event_type=effect.event_type,
        match=effect.match,
        key=effect.key,
    )
    uow.changes.subscribe(subscription)
    uow.follow_up(TakeBufferedEvent(subscription))


def _unsubscribe(uow: UnitOfWork, state: InstanceState, effect: Unsubscribe) -> None:
    uow.changes.unsubscribe(state.id, effect.step_id)


def _start_child(uow: UnitOfWork, state: InstanceState, effect: StartChild) -> None:
    uow.follow_up(StartSubflow(state.id, effect))


def _cancel_child(uow: UnitOfWork, state: InstanceState, effect: CancelChild) -> None:
    send(uow, effect.child_id, Command(kind="cancel", reason="parent cancelled"))


def _track_approval(uow: UnitOfWork, state: InstanceState, effect: TrackApproval) -> None:
    uow.changes.approvals[effect.approval_id] = approval_row(state, effect)


def _notify_parent(uow: UnitOfWork, state: InstanceState, effect: NotifyParent) -> None:
    finished = ChildFinished(
        step_id=effect.step_id,
        child_id=effect.child_id,
        status=effect.status,
        output=effect.output,
        error=effect.error,
    )
    send(uow, effect.parent_id, finished)


EFFECT_HANDLERS: dict[type[Any], Handler] = {
    EmitEvent: _emit,
    PublishEvent: _publish,
    SendWorkflowTask: _send_workflow_task,
    RecordAttempt: _record_attempt,
    LogLine: _log_line,
    SetTimer: _set_timer,
    RunAction: _run_action,
    CancelTimers: _cancel_timers,
    Subscribe: _subscribe,
    Unsubscribe: _unsubscribe,
    StartChild: _start_child,
    CancelChild: _cancel_child,
    TrackApproval: _track_approval,
    NotifyParent: _notify_parent,
}
