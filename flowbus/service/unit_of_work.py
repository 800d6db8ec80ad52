"""One transaction's worth of engine work: start instances, deliver inputs, and write
everything the transitions asked for (state, history, timers, subscriptions, children,
outbox events) before the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, delete, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine import core
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
    SetTimer,
    StartChild,
    Subscribe,
    TrackApproval,
    Unsubscribe,
)
from flowbus.engine.inputs import ChildFinished, Command, EngineInput, EventReceived
from flowbus.engine.state import ErrorInfo, InstanceState, ParentLink
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.codec import encode_input
from flowbus.service.definitions import UnknownDefinition, definition_to_start, definition_version
from flowbus.store.approvals import upsert_approvals
from flowbus.store.instances import (
    insert_new,
    instance_row,
    lock_states,
    record_attempts,
    save_states,
)
from flowbus.store.tables import event_buffer, subscriptions, timers

log = structlog.get_logger(__name__)

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
INBOX = "input"
ACTION_JOB = "action"
MAX_FEEDBACK_ROUNDS = 100


@dataclass(frozen=True, slots=True)
class StartRequest:
    """An instance to start: which definition, with what, and why."""

    definition: WorkflowDefinition
    instance_id: str
    input: Any
    trigger: dict[str, Any] | None = None
    trigger_event_id: str | None = None
    correlation_id: str | None = None
    parent: ParentLink | None = None


@dataclass(slots=True)
class WorkReport:
    """What a unit of work did; the caller wakes the relay, timers and action runner."""

    started: list[str] = field(default_factory=list)
    duplicates: int = 0
    applied: int = 0
    unknown: list[str] = field(default_factory=list)
    actions_queued: int = 0
    timers_set: int = 0
    inbox_sent: int = 0
    # Attempts that ended: (workflow id, step type, status, seconds).
    finished_steps: list[tuple[str, str, str, float]] = field(default_factory=list)
    decisions_refused: int = 0


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


class UnitOfWork:
    """Collects the effects of transitions and writes them in the caller's transaction."""

    def __init__(
        self,
        conn: AsyncConnection,
        catalog: DefinitionCatalog,
        outbox: OutboxBatch,
        now: datetime,
        *,
        event_buffer_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self.conn = conn
        self.catalog = catalog
        self.outbox = outbox
        self.now = now
        self.report = WorkReport()
        self._buffer_ttl = event_buffer_ttl
        self._states: dict[str, InstanceState] = {}
        self._dirty: set[str] = set()
        self._attempts: list[tuple[str, RecordAttempt]] = []
        self._timer_rows: list[dict[str, Any]] = []
        self._timer_deletes: list[tuple[str, str | None]] = []
        self._sub_rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._sub_deletes: list[tuple[str, str]] = []
        self._buffer_checks: list[tuple[str, Subscribe]] = []
        self._children: list[tuple[str, StartChild]] = []
        self._approvals: dict[str, dict[str, Any]] = {}

    # -- starting -----------------------------------------------------------------------

    async def start(self, requests: Sequence[StartRequest]) -> list[str]:
        """Start instances whose ids are not taken yet; return the ids started."""
        transitions = [
            core.start(
                r.definition,
                instance_id=r.instance_id,
                input=r.input,
                now=self.now,
                trigger=r.trigger,
                correlation_id=r.correlation_id,
                parent=r.parent,
                limits=self.outbox.limits,
            )
            for r in requests
        ]
        rows = [
            instance_row(t.state, trigger_event_id=r.trigger_event_id)
            for t, r in zip(transitions, requests, strict=True)
        ]
        inserted = await insert_new(self.conn, rows)
        fresh = [t for t in transitions if t.state.id in inserted]
        self.report.duplicates += len(transitions) - len(fresh)
        for transition in fresh:
            self._states[transition.state.id] = transition.state
            self.report.started.append(transition.state.id)
            self._take(transition, changed=False)
        await self._feedback()
        return [t.state.id for t in fresh]

    # -- delivering inputs --------------------------------------------------------------

    async def deliver(self, items: Sequence[tuple[str, EngineInput]]) -> None:
        """Apply inputs to stored instances (locked in id order), in the given order."""
        wanted = {instance_id for instance_id, _ in items} - set(self._states)
        self._states.update(await lock_states(self.conn, wanted))
        for instance_id, value in items:
            await self._apply(instance_id, value)
        await self._feedback()

    async def _apply(self, instance_id: str, value: EngineInput) -> None:
        state = self._states.get(instance_id)
        if state is None:
            self.report.unknown.append(instance_id)
            return
        definition = await definition_version(
            self.conn, self.catalog, state.workflow_id, state.version
        )
        transition = core.apply(definition, state, value, self.now, self.outbox.limits)
        self.report.applied += 1
        self._take(transition, changed=True)

    # -- effects ------------------------------------------------------------------------

    def _take(self, transition: Transition, *, changed: bool) -> None:
        state = transition.state
        instance_id = state.id
        if changed:
            self._dirty.add(instance_id)
        for effect in transition.effects:
            match effect:
                case EmitEvent():
                    self.outbox.emit(instance_id, effect)
                    if effect.type == "flowbus.approval.decision_refused":
                        self.report.decisions_refused += 1
                case PublishEvent():
                    self.outbox.publish(effect)
                case RecordAttempt():
                    self._attempts.append((instance_id, effect))
                    if effect.finished_at is not None:
                        seconds = (
                            _parse(effect.finished_at) - _parse(effect.started_at)
                        ).total_seconds()
                        self.report.finished_steps.append(
                            (state.workflow_id, effect.step_type, effect.status, seconds)
                        )
                case LogLine():
                    log.log(
                        _LEVELS.get(effect.level, 20),
                        effect.message,
                        fields=effect.fields,
                        instance_id=instance_id,
                        workflow_id=state.workflow_id,
                        **{f"meta_{k}": v for k, v in state.metadata.items()},
                    )
                case SetTimer():
                    self._timer(
                        instance_id,
                        effect.kind,
                        effect.step_id,
                        effect.attempt,
                        _parse(effect.due_at),
                        {},
                    )
                case RunAction():
                    self._timer(
                        instance_id,
                        ACTION_JOB,
                        effect.step_id,
                        effect.attempt,
                        self.now,
                        {
                            "action": effect.action,
                            "config": effect.config,
                            "idempotencyKey": effect.idempotency_key,
                            "tries": effect.tries,
                            "purpose": effect.purpose,
                            "workflowId": state.workflow_id,
                        },
                    )
                    self.report.actions_queued += 1
                case CancelTimers():
                    self._cancel_timers(instance_id, effect.step_id)
                case Subscribe():
                    self._sub_rows[(instance_id, effect.step_id)] = {
                        "instance_id": instance_id,
                        "step_id": effect.step_id,
                        "attempt": effect.attempt,
                        "topic": effect.topic,
                        "event_type": effect.event_type,
                        "match": effect.match,
                        "key": effect.key,
                    }
                    self._buffer_checks.append((instance_id, effect))
                case Unsubscribe():
                    if self._sub_rows.pop((instance_id, effect.step_id), None) is None:
                        self._sub_deletes.append((instance_id, effect.step_id))
                case StartChild():
                    self._children.append((instance_id, effect))
                case CancelChild():
                    self.send(effect.child_id, Command(kind="cancel", reason="parent cancelled"))
                case TrackApproval():
                    self._approvals[effect.approval_id] = {
                        "approval_id": effect.approval_id,
                        "instance_id": instance_id,
                        "workflow_id": state.workflow_id,
                        "workflow_version": state.version,
                        "step_id": effect.step_id,
                        "attempt": effect.attempt,
                        "status": effect.status,
                        "assignees": list(effect.assignees),
                        "quorum": effect.quorum,
                        "deadline": _parse(effect.deadline) if effect.deadline else None,
                        "summary": effect.summary,
                    }
                case NotifyParent():
                    error = ErrorInfo.model_validate(effect.error) if effect.error else None
                    self.send(
                        effect.parent_id,
                        ChildFinished(
                            step_id=effect.step_id,
                            child_id=effect.child_id,
                            status=effect.status,
                            output=effect.output,
                            error=error,
                        ),
                    )

    def _timer(
        self,
        instance_id: str,
        kind: str,
        step_id: str | None,
        attempt: int | None,
        due: datetime,
        payload: dict[str, Any],
    ) -> None:
        self._timer_rows.append(
            {
                "instance_id": instance_id,
                "kind": kind,
                "step_id": step_id,
                "attempt": attempt,
                "due_at": due,
                "payload": payload,
            }
        )
        self.report.timers_set += 1

    def _cancel_timers(self, instance_id: str, step_id: str | None) -> None:
        # Timers set earlier in this same transaction never reach the table.
        self._timer_rows = [
            row
            for row in self._timer_rows
            if not (
                row["instance_id"] == instance_id
                and row["kind"] != INBOX
                and (step_id is None or row["step_id"] == step_id)
            )
        ]
        self._timer_deletes.append((instance_id, step_id))

    def send(self, instance_id: str, value: EngineInput) -> None:
        """Deliver an input to another instance through the durable inbox."""
        self._timer_rows.append(
            {
                "instance_id": instance_id,
                "kind": INBOX,
                "step_id": None,
                "attempt": None,
                "due_at": self.now,
                "payload": encode_input(value),
            }
        )
        self.report.inbox_sent += 1

    # -- feedback within the transaction ------------------------------------------------

    async def _feedback(self) -> None:
        """Take buffered events for new subscriptions and start requested children, until
        nothing new comes up."""
        for _ in range(MAX_FEEDBACK_ROUNDS):
            checks, self._buffer_checks = self._buffer_checks, []
            children, self._children = self._children, []
            if not checks and not children:
                return
            for instance_id, subscription in checks:
                event = await self._take_buffered(subscription)
                if event is not None:
                    self._sub_rows.pop((instance_id, subscription.step_id), None)
                    await self._apply(
                        instance_id, EventReceived(step_id=subscription.step_id, event=event)
                    )
            for parent_id, child in children:
                await self._start_child(parent_id, child)
        raise RuntimeError("feedback did not settle")  # pragma: no cover

    async def _take_buffered(self, subscription: Subscribe) -> dict[str, Any] | None:
        condition = and_(
            event_buffer.c.topic == subscription.topic,
            event_buffer.c.match == subscription.match,
            event_buffer.c.key == subscription.key,
            event_buffer.c.expires_at > self.now,
        )
        if subscription.event_type is not None:
            condition = and_(condition, event_buffer.c.event_type == subscription.event_type)
        row = (
            await self.conn.execute(
                select(event_buffer.c.id, event_buffer.c.event)
                .where(condition)
                .order_by(event_buffer.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            return None
        await self.conn.execute(delete(event_buffer).where(event_buffer.c.id == row.id))
        event: dict[str, Any] = row.event
        return event

    async def _start_child(self, parent_id: str, child: StartChild) -> None:
        try:
            definition = await definition_to_start(
                self.conn, self.catalog, child.workflow_id, child.version
            )
        except UnknownDefinition as exc:
            await self._apply(
                parent_id,
                ChildFinished(
                    step_id=child.step_id,
                    child_id=child.child_id,
                    status="failed",
                    error=ErrorInfo(type="SubflowNotFound", message=str(exc)),
                ),
            )
            return
        parent = self._states[parent_id]
        await self.start(
            [
                StartRequest(
                    definition=definition,
                    instance_id=child.child_id,
                    input=child.input,
                    correlation_id=parent.correlation_id,
                    parent=ParentLink(instance_id=parent_id, step_id=child.step_id),
                )
            ]
        )

    # -- buffering and matching events for waits ----------------------------------------

    async def waiting_for(
        self, probes: Sequence[tuple[str, str | None, str, str]]
    ) -> dict[tuple[str, str, str], list[tuple[str, str, str | None]]]:
        """Subscriptions for (topic, type, match, key) probes, locked:
        (topic, match, key) -> [(instance id, step id, event type)]."""
        if not probes:
            return {}
        keys = sorted({(topic, match, key) for topic, _, match, key in probes})
        rows = await self.conn.execute(
            select(subscriptions)
            .where(
                tuple_(subscriptions.c.topic, subscriptions.c.match, subscriptions.c.key).in_(keys)
            )
            .order_by(subscriptions.c.instance_id, subscriptions.c.step_id)
            .with_for_update()
        )
        found: dict[tuple[str, str, str], list[tuple[str, str, str | None]]] = {}
        for row in rows:
            found.setdefault((row.topic, row.match, row.key), []).append(
                (str(row.instance_id), row.step_id, row.event_type)
            )
        return found

    async def buffer_event(
        self, topic: str, event_type: str | None, match: str, key: str, event: dict[str, Any]
    ) -> None:
        await self.conn.execute(
            insert(event_buffer).values(
                topic=topic,
                event_type=event_type,
                match=match,
                key=key,
                event=event,
                expires_at=self.now + self._buffer_ttl,
            )
        )

    # -- writing ------------------------------------------------------------------------

    async def flush(self) -> WorkReport:
        """Write everything collected; call once, before commit."""
        conn = self.conn
        for instance_id, step_id in self._timer_deletes:
            condition = and_(timers.c.instance_id == instance_id, timers.c.kind != INBOX)
            if step_id is not None:
                condition = and_(condition, timers.c.step_id == step_id)
            await conn.execute(delete(timers).where(condition))
        if self._timer_rows:
            await conn.execute(insert(timers), self._timer_rows)
        for instance_id, step_id in self._sub_deletes:
            await conn.execute(
                delete(subscriptions).where(
                    and_(
                        subscriptions.c.instance_id == instance_id,
                        subscriptions.c.step_id == step_id,
                    )
                )
            )
        if self._sub_rows:
            stmt = pg_insert(subscriptions)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["instance_id", "step_id"],
                    set_={
                        c: stmt.excluded[c]
                        for c in ("attempt", "topic", "event_type", "match", "key")
                    },
                ),
                list(self._sub_rows.values()),
            )
        await upsert_approvals(conn, list(self._approvals.values()))
        await record_attempts(conn, self._attempts)
        await save_states(conn, [self._states[i] for i in sorted(self._dirty) if i in self._states])
        await self.outbox.flush(conn)
        return self.report
