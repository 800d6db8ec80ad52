"""The message bus of a unit of work: a queue, a handler per message, a loop.

Consumers hand it what they want done (start instances, deliver inputs); the effects of
the transitions that follow may ask for more within the same transaction (a new wait
whose event is already buffered, a subflow to start). Those follow-ups join the queue and
are handled in turn, until none is left.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowbus.engine import core
from flowbus.engine.inputs import ChildFinished, EngineInput, EventReceived
from flowbus.engine.state import ErrorInfo, ParentLink
from flowbus.service.definitions import UnknownDefinition, definition_to_start, definition_version
from flowbus.service.effect_handlers import take
from flowbus.service.messages import (
    DeliverInputs,
    Message,
    StartInstances,
    StartRequest,
    StartSubflow,
    TakeBufferedEvent,
)

if TYPE_CHECKING:
    from flowbus.service.unit_of_work import UnitOfWork

MAX_FOLLOW_UP_DEPTH = 100
"""Follow-ups of follow-ups, at most this deep (a subflow that starts itself, forever)."""


async def handle(uow: UnitOfWork, message: Message) -> None:
    """Handle `message` and every follow-up it leads to."""
    queue: deque[tuple[int, Message]] = deque([(0, message)])
    while queue:
        depth, current = queue.popleft()
        if depth > MAX_FOLLOW_UP_DEPTH:
            raise RuntimeError("follow-ups did not settle")  # pragma: no cover
        await HANDLERS[type(current)](uow, current)
        queue.extend((depth + 1, follow_up) for follow_up in uow.collect_follow_ups())


async def _start(uow: UnitOfWork, message: StartInstances) -> None:
    transitions = [
        core.start(
            r.definition,
            instance_id=r.instance_id,
            input=r.input,
            now=uow.now,
            trigger=r.trigger,
            correlation_id=r.correlation_id,
            parent=r.parent,
            limits=uow.limits,
        )
        for r in message.requests
    ]
    inserted = await uow.instances.insert_new(
        [t.state for t in transitions], [r.trigger_event_id for r in message.requests]
    )
    fresh = [t for t in transitions if t.state.id in inserted]
    uow.report.duplicates += len(transitions) - len(fresh)
    for transition in fresh:
        uow.states[transition.state.id] = transition.state
        uow.report.started.append(transition.state.id)
        take(uow, transition, changed=False)


async def _deliver(uow: UnitOfWork, message: DeliverInputs) -> None:
    wanted = {instance_id for instance_id, _ in message.items} - set(uow.states)
    uow.states.update(await uow.instances.lock(wanted))
    for instance_id, value in message.items:
        await _apply(uow, instance_id, value)


async def _take_buffered(uow: UnitOfWork, message: TakeBufferedEvent) -> None:
    subscription = message.subscription
    await uow.subscriptions.lock_keys([subscription.wait_key])
    event = await uow.event_buffer.take(subscription.wait_key, subscription.event_type, uow.now)
    if event is not None:
        uow.changes.satisfied(subscription.instance_id, subscription.step_id)
        received = EventReceived(step_id=subscription.step_id, event=event)
        await _apply(uow, subscription.instance_id, received)


async def _start_subflow(uow: UnitOfWork, message: StartSubflow) -> None:
    child, parent_id = message.child, message.parent_id
    try:
        definition = await definition_to_start(
            uow.conn, uow.catalog, child.workflow_id, child.version
        )
    except UnknownDefinition as exc:
        error = ErrorInfo(type="SubflowNotFound", message=str(exc))
        finished = ChildFinished(
            step_id=child.step_id, child_id=child.child_id, status="failed", error=error
        )
        await _apply(uow, parent_id, finished)
        return
    request = StartRequest(
        definition=definition,
        instance_id=child.child_id,
        input=child.input,
        correlation_id=uow.states[parent_id].correlation_id,
        parent=ParentLink(instance_id=parent_id, step_id=child.step_id),
    )
    await _start(uow, StartInstances([request]))


async def _apply(uow: UnitOfWork, instance_id: str, value: EngineInput) -> None:
    state = uow.states.get(instance_id)
    if state is None:
        uow.report.unknown.append(instance_id)
        return
    definition = await definition_version(uow.conn, uow.catalog, state.workflow_id, state.version)
    transition = core.apply(definition, state, value, uow.now, uow.limits)
    uow.report.applied += 1
    take(uow, transition, changed=True)


HANDLERS: dict[type[Any], Callable[[UnitOfWork, Any], Awaitable[None]]] = {
    StartInstances: _start,
    DeliverInputs: _deliver,
    TakeBufferedEvent: _take_buffered,
    StartSubflow: _start_subflow,
}
