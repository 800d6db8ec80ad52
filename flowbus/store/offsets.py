"""Which consumed records are already applied: the next offset per partition, kept in the
same transaction as the state the records changed (exactly-once into PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import and_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import consumer_offsets as offsets

TopicPartition = tuple[str, int]


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
        await self._conn.execute(
            insert(offsets).on_conflict_do_nothing(),
            [
                {"consumer_group": group, "topic": t, "partition": p, "next_offset": 0}
                for t, p in wanted
            ],
        )
        rows = await self._conn.execute(
            select(offsets.c.topic, offsets.c.partition, offsets.c.next_offset)
            .where(
                and_(
                    offsets.c.consumer_group == group,
                    tuple_(offsets.c.topic, offsets.c.partition).in_(wanted),
                )
            )
            .order_by(offsets.c.topic, offsets.c.partition)
            .with_for_update()
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
