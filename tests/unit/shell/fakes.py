"""A unit of work over in-memory repositories: the shell's specs run without PostgreSQL.

The repositories subclass the store's, so they keep its signatures; `Tables` holds what a
committed transaction left, and a failed one leaves it as it was."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, cast

from flowbus.config import TopicNames
from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.engine.effects import RecordAttempt
from flowbus.engine.state import InstanceState, InstanceStatus
from flowbus.outbox.writer import OutboxBatch
from flowbus.service.unit_of_work import UnitOfWork
from flowbus.store.approvals import ApprovalRepository
from flowbus.store.instances import InstanceRepository
from flowbus.store.offsets import OffsetRepository, TopicPartition
from flowbus.store.outbox import OutboxRepository
from flowbus.store.subscriptions import (
    EventBufferRepository,
    Subscription,
    SubscriptionRepository,
    Waiter,
    WaitKey,
)
from flowbus.store.timers import INBOX, NewTimer, TimerRepository

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@dataclass
class Tables:
    """What the database holds."""

    instances: dict[str, InstanceState] = field(default_factory=dict)
    attempts: dict[tuple[str, str, int], RecordAttempt] = field(default_factory=dict)
    timers: list[NewTimer] = field(default_factory=list)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    buffered: list[tuple[WaitKey, str | None, dict[str, Any]]] = field(default_factory=list)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    offsets: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)


class _InMemory:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables


class Instances(_InMemory, InstanceRepository):
    async def insert_new(
        self, states: Sequence[InstanceState], trigger_event_ids: Sequence[str | None]
    ) -> set[str]:
        fresh = {s.id for s in states if s.id not in self.tables.instances}
        for state in states:
            if state.id in fresh:
                self.tables.instances[state.id] = state.model_copy(deep=True)
        return fresh

    async def lock(self, ids: Iterable[str]) -> dict[str, InstanceState]:
        found = self.tables.instances
        return {i: found[i].model_copy(deep=True) for i in sorted(set(ids)) if i in found}

    async def lock_status(
        self, ids: Iterable[str]
    ) -> dict[str, tuple[InstanceStatus, dict[str, Any] | None]]:
        found = await self.lock(ids)
        return {
            i: (s.status, s.error.model_dump(mode="json") if s.error else None)
            for i, s in found.items()
        }

    async def save(self, states: Sequence[InstanceState]) -> None:
        for state in states:
            self.tables.instances[state.id] = state.model_copy(deep=True)

    async def record_attempts(self, attempts: Iterable[tuple[str, RecordAttempt]]) -> None:
        for instance_id, attempt in attempts:
            self.tables.attempts[(instance_id, attempt.step_id, attempt.attempt)] = attempt


class Timers(_InMemory, TimerRepository):
    async def add(self, rows: Sequence[NewTimer]) -> None:
        self.tables.timers.extend(rows)

    async def cancel(self, cancels: Sequence[tuple[str, str | None]]) -> None:
        def cancelled(t: NewTimer) -> bool:
            return t.kind != INBOX and any(
                t.instance_id == i and (s is None or t.step_id == s) for i, s in cancels
            )

        self.tables.timers = [t for t in self.tables.timers if not cancelled(t)]


class Subscriptions(_InMemory, SubscriptionRepository):
    async def lock_keys(self, keys: Sequence[WaitKey]) -> None:
        """One fake transaction at a time: nothing to serialise."""

    async def waiting(self, keys: Sequence[WaitKey]) -> dict[WaitKey, list[Waiter]]:
        found: dict[WaitKey, list[Waiter]] = {}
        for (instance_id, step_id), sub in sorted(self.tables.subscriptions.items()):
            if sub.wait_key in keys:
                found.setdefault(sub.wait_key, []).append(
                    Waiter(instance_id, step_id, sub.event_type)
                )
        return found

    async def save(self, rows: Sequence[Subscription]) -> None:
        for row in rows:
            self.tables.subscriptions[(row.instance_id, row.step_id)] = row

    async def remove(self, instance_id: str, step_id: str) -> None:
        self.tables.subscriptions.pop((instance_id, step_id), None)


class EventBuffer(_InMemory, EventBufferRepository):
    async def keep(
        self, wait: WaitKey, event_type: str | None, event: dict[str, Any], until: datetime
    ) -> None:
        self.tables.buffered.append((wait, event_type, event))

    async def take(
        self, wait: WaitKey, event_type: str | None, now: datetime
    ) -> dict[str, Any] | None:
        for kept in self.tables.buffered:
            if kept[0] == wait and event_type in (None, kept[1]):
                self.tables.buffered.remove(kept)
                return kept[2]
        return None


class Approvals(_InMemory, ApprovalRepository):
    async def save(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self.tables.approvals[row["approval_id"]] = row

    async def find(self, ids: Sequence[str]) -> dict[str, Any]:
        return {i: self.tables.approvals[i] for i in ids if i in self.tables.approvals}


class Outbox(_InMemory, OutboxRepository):
    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        self.tables.outbox.extend(rows)


class Offsets(_InMemory, OffsetRepository):
    async def lock(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {tp: self.tables.offsets.get((group, tp), 0) for tp in partitions}

    async def advance(self, group: str, positions: Mapping[TopicPartition, int]) -> None:
        for tp, offset in positions.items():
            self.tables.offsets[(group, tp)] = offset


def new_outbox() -> OutboxBatch:
    return OutboxBatch(source="test", topics=TopicNames())


class FakeUnitOfWork(UnitOfWork):
    """A unit of work whose repositories are in memory; commit keeps what it wrote."""

    def __init__(
        self,
        tables: Tables,
        catalog: DefinitionCatalog,
        now: datetime = NOW,
        events: OutboxBatch | None = None,
    ) -> None:
        super().__init__(cast(Any, None), catalog, events or new_outbox(), now)
        self.tables = tables
        self._before: Tables | None = None

    async def __aenter__(self) -> Self:
        self._before = copy.deepcopy(self.tables)
        self.conn = cast(Any, None)
        self.instances = Instances(self.tables)
        self.timers = Timers(self.tables)
        self.subscriptions = Subscriptions(self.tables)
        self.event_buffer = EventBuffer(self.tables)
        self.approvals = Approvals(self.tables)
        self.outbox = Outbox(self.tables)
        self.offsets = Offsets(self.tables)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            try:
                await self.before_commit()
                return
            except BaseException:
                self._roll_back()
                raise
        self._roll_back()

    def _roll_back(self) -> None:
        assert self._before is not None
        self.tables.__dict__.update(self._before.__dict__)
