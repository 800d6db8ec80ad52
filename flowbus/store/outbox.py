"""The outbox: events committed with the state that caused them, waiting for the relay;
and `outbox_parked`, where rows the broker refused for good are kept with the reason.

Writers insert rows in their transaction and notify `NOTIFY_CHANNEL` (delivered on
commit). The relay works on a connection of its own (asyncpg): it holds the relay's
advisory lock for as long as it lives and listens for the notifications.

Parked rows keep their value: once the cause is fixed, `INSERT INTO outbox (event_id,
topic, key, headers, value) SELECT event_id, topic, key, headers, value FROM
outbox_parked WHERE ...` publishes them again under their ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.bulk import Unnest
from flowbus.store.database import asyncpg_dsn
from flowbus.store.tables import outbox

NOTIFY_CHANNEL = "flowbus_outbox"
DATABASE_ERRORS: tuple[type[Exception], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError)
"""What the relay's connection raises when the database fails it."""

# One round trip for a batch's rows and the relay's wake-up (delivered on commit); the
# rows take their `seq` in the order given.
_ROWS = Unnest(outbox, ["event_id", "topic", "key", "headers", "value"])
_ADD = text(
    f"WITH added AS (INSERT INTO outbox ({', '.join(_ROWS.columns)}) {_ROWS.rows} ORDER BY n)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
)


class OutboxRepository:
    """Rows to relay, written in the caller's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert the rows and wake the relay when the transaction commits."""
        if rows:
            await self._conn.execute(_ADD, _ROWS.parameters(rows))


@dataclass(frozen=True, slots=True)
class Parking:
    """A refused row to park, and the event announcing it (None: announce nothing)."""

    seq: int
    reason: str
    error: str
    announcement: tuple[str, str, bytes | None, bytes] | None
    """(event id, topic, key, value) of the `flowbus.outbox.parked` event."""


class RelayStore:
    """The relay's view of the outbox, on its own connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def try_lock(self, key: int) -> bool:
        """Take the session-level advisory lock `key`, if nobody holds it."""
        return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", key))

    async def listen(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a writer's transaction commits outbox rows."""
        await self._conn.add_listener(NOTIFY_CHANNEL, lambda *_: callback())

    async def pending(self, limit: int, skip_topics: Sequence[str]) -> list[Any]:
        """The oldest rows, in commit order, but for those of `skip_topics`."""
        rows: list[Any] = await self._conn.fetch(
            "SELECT seq, event_id, topic, key, headers, value FROM outbox"
            " WHERE topic <> ALL($2::text[]) ORDER BY seq LIMIT $1",
            limit,
            list(skip_topics),
        )
        return rows

    async def delete(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self._conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", list(seqs))

    async def park(self, parkings: Sequence[Parking], moment: datetime, headers: str) -> None:
        """Move rows to `outbox_parked` and add their announcements, in one transaction."""
        async with self._conn.transaction():
            for parking in parkings:
                await self._conn.execute(
                    "INSERT INTO outbox_parked"
                    " (seq, event_id, topic, key, headers, value, bytes, reason, error,"
                    " created_at, parked_at)"
                    " SELECT seq, event_id, topic, key, headers, value, length(value), $2, $3,"
                    " created_at, $4 FROM outbox WHERE seq = $1"
                    " ON CONFLICT (seq) DO NOTHING",
                    parking.seq,
                    parking.reason,
                    parking.error,
                    moment,
                )
                await self._conn.execute("DELETE FROM outbox WHERE seq = $1", parking.seq)
                if parking.announcement is not None:
                    event_id, topic, key, value = parking.announcement
                    await self._conn.execute(
                        "INSERT INTO outbox (event_id, topic, key, headers, value)"
                        " VALUES ($1, $2, $3, $4::jsonb, $5)",
                        event_id,
                        topic,
                        key,
                        headers,
                        value,
                    )


@contextlib.asynccontextmanager
async def relay_connection(database_url: str) -> AsyncIterator[RelayStore]:
    """A connection of the relay's own, closed (and its advisory lock released) on exit."""
    conn: Any = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        # Whatever this connection writes is done again if lost in a crash (a delete lost
        # republishes acknowledged rows under their stable ids; a park lost parks the row
        # again), so its commits need not wait for the WAL flush.
        await conn.execute("SET synchronous_commit TO off")
        yield RelayStore(conn)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(conn.close())
