"""Which consumed records are already applied: the next offset per partition, kept in the
same transaction as the state the records changed (exactly-once into PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import consumer_offsets as offsets

TopicPartition = tuple[str, int]

# One round trip: a missing row is created, an existing one is locked by the no-op update
# (taken in partition order, so two workers never lock in opposite orders), and either way
# its next offset comes back.
_LOCK = text(
    """
    INSERT INTO consumer_offsets AS o (consumer_group, topic, partition, next_offset)
    SELECT :group, t, p, 0
    FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS integer[])) AS u(t, p)
    ORDER BY t, p
    ON CONFLICT (consumer_group, topic, partition)
    DO UPDATE SET next_offset = o.next_offset
    RETURNING topic, partition, next_offset
    """
)


class OffsetRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Lock the partitions' rows (creating missing ones) and return their next offsets.

        The lock serializes two workers that briefly hold the same partition during a
        rebalance: the second sees what the first applied and skips it.
        """
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        rows = await self._conn.execute(
            _LOCK,
            {
                "group": group,
                "topics": [t for t, _ in wanted],
                "partitions": [p for _, p in wanted],
            },
        )
        return {(row.topic, row.partition): row.next_offset for row in rows}

    async def advance(self, group: str, positions: Mapping[TopicPartition, int]) -> None:
        if not positions:
            return
        stmt = insert(offsets)
        await self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["consumer_group", "topic", "partition"],
                set_={
                    "next_offset": stmt.excluded.next_offset,
                    "updated_at": stmt.excluded.updated_at,
                },
            ),
            [
                {"consumer_group": group, "topic": t, "partition": p, "next_offset": n}
                for (t, p), n in sorted(positions.items())
            ],
        )
