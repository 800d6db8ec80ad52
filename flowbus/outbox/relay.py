"""Publishes committed outbox rows to Kafka, in commit order, then deletes them.

One relay at a time holds a PostgreSQL advisory lock, so events of an instance reach
Kafka in the order they were written; every worker runs a relay and a standby takes over
within a second or two if the holder dies. A row is deleted only after the broker has
acknowledged it: a crash in between republishes it with the same event id (consumers
deduplicate on the CloudEvents id), and nothing committed is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaProducer

from flowbus.outbox.writer import NOTIFY_CHANNEL

log = structlog.get_logger(__name__)

RELAY_LOCK_KEY = 0x466C6F77  # "Flow": one relay per database


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class OutboxRelay:
    """Moves outbox rows onto their topics."""

    def __init__(
        self,
        database_url: str,
        bootstrap_servers: str,
        *,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
        standby_interval: float = 1.0,
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._standby_interval = standby_interval
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Ask for a round now (called after a local commit that wrote outbox rows)."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; survives database and broker outages by retrying."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_batch_size=1 << 20,
        )
        await producer.start()
        try:
            while True:
                try:
                    await self._hold_lock_and_relay(producer)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("outbox.relay_interrupted", error=str(exc))
                    await asyncio.sleep(self._standby_interval)
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _hold_lock_and_relay(self, producer: AIOKafkaProducer) -> None:
        conn: Any = await asyncpg.connect(self._dsn)
        try:
            # A standby polls: PostgreSQL has no "lock released" notification.
            locked = "SELECT pg_try_advisory_lock($1)"
            while not await conn.fetchval(locked, RELAY_LOCK_KEY):  # noqa: ASYNC110
                await asyncio.sleep(self._standby_interval)
            log.info("outbox.relay_active")
            await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
            while True:
                self._wake.clear()
                moved = await self.relay_once(conn, producer)
                if moved < self._batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())

    async def relay_once(self, conn: Any, producer: AIOKafkaProducer) -> int:
        """Publish up to one batch of rows and delete them once acknowledged."""
        rows = await conn.fetch(
            "SELECT seq, topic, key, headers, value FROM outbox ORDER BY seq LIMIT $1",
            self._batch_size,
        )
        if not rows:
            return 0
        futures = []
        for row in rows:
            headers = (
                orjson.loads(row["headers"]) if isinstance(row["headers"], str) else row["headers"]
            )
            futures.append(
                await producer.send(
                    row["topic"],
                    value=bytes(row["value"]),
                    key=bytes(row["key"]) if row["key"] is not None else None,
                    headers=[(name, value.encode()) for name, value in headers],
                )
            )
        await asyncio.gather(*futures)
        # Losing this delete in a crash only republishes acknowledged rows under their
        # stable ids, so it need not wait for the WAL flush.
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit TO off")
            await conn.execute(
                "DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows]
            )
        self.published += len(rows)
        return len(rows)
