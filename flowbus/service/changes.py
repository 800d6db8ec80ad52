"""What a unit of work writes when it flushes, collected from the effects of transitions:
the store's rows, in the order the tables must see them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowbus.engine.effects import RecordAttempt
from flowbus.engine.state import InstanceState
from flowbus.store.subscriptions import Subscription
from flowbus.store.timers import INBOX, NewTimer

if TYPE_CHECKING:
    from flowbus.store.transaction import Transaction


@dataclass(slots=True)
class Changes:
    """Rows to write; a change undone within the same unit of work never reaches a table."""

    dirty: set[str] = field(default_factory=set)
    """Instances whose state changed after it was loaded or inserted."""
    attempts: list[tuple[str, RecordAttempt]] = field(default_factory=list)
    timers: list[NewTimer] = field(default_factory=list)
    timer_cancels: list[tuple[str, str | None]] = field(default_factory=list)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    unsubscribes: list[tuple[str, str]] = field(default_factory=list)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cancel_timers(self, instance_id: str, step_id: str | None) -> None:
        # Timers set earlier in this same unit of work never reach the table.
        self.timers = [
            row
            for row in self.timers
            if not (
                row.instance_id == instance_id
                and row.kind != INBOX
                and (step_id is None or row.step_id == step_id)
            )
        ]
        self.timer_cancels.append((instance_id, step_id))

    def subscribe(self, subscription: Subscription) -> None:
        self.subscriptions[(subscription.instance_id, subscription.step_id)] = subscription

    def unsubscribe(self, instance_id: str, step_id: str) -> None:
        if self.subscriptions.pop((instance_id, step_id), None) is None:
            self.unsubscribes.append((instance_id, step_id))

    def satisfied(self, instance_id: str, step_id: str) -> None:
        """A new wait got its event at once: it is never stored."""
        self.subscriptions.pop((instance_id, step_id), None)

    async def write(self, store: Transaction, states: Sequence[InstanceState]) -> None:
        """Write everything, `states` being those of the `dirty` instances."""
        await store.timers.cancel(self.timer_cancels)
        await store.timers.add(self.timers)
        for instance_id, step_id in self.unsubscribes:
            await store.subscriptions.remove(instance_id, step_id)
        await store.subscriptions.save(list(self.subscriptions.values()))
        await store.approvals.save(list(self.approvals.values()))
        await store.instances.record_attempts(self.attempts)
        await store.instances.save(states)
