"""Steps waiting for an event, and events kept a while for waits about to start.

A wait is keyed by (topic, match, key): the topic it listens on, the source of its match
query, and the value that query must give. An event that finds no wait is buffered under
the same key until `expires_at`, so a wait that starts just after still gets it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.definitions import DEFINITIONS_CHANNEL
from flowbus.store.tables import event_buffer, subscriptions, wait_probes


@dataclass(frozen=True, slots=True, order=True)
class WaitKey:
    """What a wait listens for: events on `topic` whose `match` query gives `key`."""

    topic: str
    match: str
    key: str


@dataclass(frozen=True, slots=True)
class Waiter:
    """A step waiting on a `WaitKey`, for events of `event_type` (None: any type)."""

    instance_id: str
    step_id: str
    event_type: str | None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A wait to store: `instance_id`'s step `step_id` (at `attempt`) waits on the key."""

    instance_id: str
    step_id: str
    attempt: int
    topic: str
    event_type: str | None
    match: str
    key: str

    @property
    def wait_key(self) -> WaitKey:
        return WaitKey(self.topic, self.match, self.key)


class SubscriptionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock_keys(self, keys: Sequence[WaitKey]) -> None:
        """Hold `keys` until the transaction ends, in one order everywhere.

        An event that finds no wait is kept in the buffer, and a wait that starts takes a
        kept event; both look, then write. Without a lock both could look before either
        commits, and the event would be kept beside the wait that needed it. The side that
        locks second waits for the first to commit, then sees what it wrote.
        """
        ids = sorted({_lock_id(key) for key in keys})
        if ids:
            # One round trip for the whole batch; unnest yields the ids in array order,
            # so every transaction takes its locks in the same (ascending) order.
            await self._conn.execute(
                text(
                    "SELECT pg_advisory_xact_lock(id) FROM unnest(CAST(:ids AS bigint[])) AS t(id)"
                ),
                {"ids": ids},
            )

    async def waiting(self, keys: Sequence[WaitKey]) -> dict[WaitKey, list[Waiter]]:
        """The waits on `keys`, locked (in instance and step order)."""
        if not keys:
            return {}
        wanted = [(k.topic, k.match, k.key) for k in sorted(set(keys))]
        rows = await self._conn.execute(
            select(subscriptions)
            .where(
                tuple_(subscriptions.c.topic, subscriptions.c.match, subscriptions.c.key).in_(
                    wanted
                )
            )
            .order_by(subscriptions.c.instance_id, subscriptions.c.step_id)
            .with_for_update()
        )
        found: dict[WaitKey, list[Waiter]] = {}
        for row in rows:
            found.setdefault(WaitKey(row.topic, row.match, row.key), []).append(
                Waiter(str(row.instance_id), row.step_id, row.event_type)
            )
        return found

    async def save(self, rows: Sequence[Subscription]) -> None:
        """Insert waits, or replace the wait of the same instance and step."""
        if not rows:
            return
        stmt = pg_insert(subscriptions)
        await self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["instance_id", "step_id"],
                set_={
                    c: stmt.excluded[c] for c in ("attempt", "topic", "event_type", "match", "key")
                },
            ),
            [asdict(row) for row in rows],
        )
        await self._remember_probes(rows)

    async def _remember_probes(self, rows: Sequence[Subscription]) -> None:
        """Record what the waits listen for; a new probe tells every worker to reload, so
        waits chosen at run time (code-first) are matched like declared ones."""
        probes = {(row.topic, row.match, row.event_type or "") for row in rows}
        added = await self._conn.execute(
            pg_insert(wait_probes)
            .values([{"topic": t, "match": m, "event_type": e} for t, m, e in sorted(probes)])
            .on_conflict_do_nothing()
            .returning(wait_probes.c.topic)
        )
        if added.first() is not None:
            await self._conn.execute(select(func.pg_notify(DEFINITIONS_CHANNEL, "wait-probes")))

    async def remove(self, instance_id: str, step_id: str) -> None:
        await self._conn.execute(
            delete(subscriptions).where(
                and_(subscriptions.c.instance_id == instance_id, subscriptions.c.step_id == step_id)
            )
        )


class EventBufferRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def keep(
        self, wait: WaitKey, event_type: str | None, event: dict[str, Any], until: datetime
    ) -> None:
        await self._conn.execute(
            insert(event_buffer).values(
                topic=wait.topic,
                event_type=event_type,
                match=wait.match,
                key=wait.key,
                event=event,
                expires_at=until,
            )
        )

    async def take(
        self, wait: WaitKey, event_type: str | None, now: datetime
    ) -> dict[str, Any] | None:
        """Remove and return the oldest unexpired event kept for `wait` (of `event_type`,
        when given), or None."""
        condition = and_(
            event_buffer.c.topic == wait.topic,
            event_buffer.c.match == wait.match,
            event_buffer.c.key == wait.key,
            event_buffer.c.expires_at > now,
        )
        if event_type is not None:
            condition = and_(condition, event_buffer.c.event_type == event_type)
        row = (
            await self._conn.execute(
                select(event_buffer.c.id, event_buffer.c.event)
                .where(condition)
                .order_by(event_buffer.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            return None
        await self._conn.execute(delete(event_buffer).where(event_buffer.c.id == row.id))
        event: dict[str, Any] = row.event
        return event

    async def purge_expired(self, now: datetime) -> int:
        result = await self._conn.execute(
            delete(event_buffer).where(event_buffer.c.expires_at < now)
        )
        return int(result.rowcount or 0)


async def wait_probe_rows(conn: AsyncConnection) -> list[tuple[str, str, str | None]]:
    """Every (topic, match, event type) a wait has listened for."""
    rows = await conn.execute(
        select(wait_probes.c.topic, wait_probes.c.match, wait_probes.c.event_type)
    )
    return [(topic, match, event_type or None) for topic, match, event_type in rows]


def _lock_id(key: WaitKey) -> int:
    """A wait key as a signed 64-bit advisory lock id, the same in every worker."""
    text_key = f"{key.topic}\x1f{key.match}\x1f{key.key}".encode()
    return int.from_bytes(hashlib.blake2b(text_key, digest_size=8).digest(), "big", signed=True)
