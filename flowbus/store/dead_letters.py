"""Dead letters as recorded from the dead-letter topic: each record once (unique on its
topic, partition and offset, so a redelivered record changes nothing), listed newest first
on the keyset (dead_lettered_at, id), and marked when an operator replays one."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from flowbus.store.queries import BadCursor
from flowbus.store.tables import metadata

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("event_id", Text),
    Column("kind", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("definition_id", Text),
    Column("source_topic", Text),
    Column("source_partition", Integer),
    Column("source_offset", BigInteger),
    Column("event_type", Text),
    Column("key", LargeBinary),
    Column("key_complete", Boolean, nullable=False),
    Column("value", LargeBinary),
    Column("value_complete", Boolean, nullable=False),
    Column("dead_lettered_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("replayed_at", DateTime(timezone=True)),
    Column("replays", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("topic", "partition", "offset", name="uq_dead_letters_record"),
    Index("ix_dead_letters_time", "dead_lettered_at", "id"),
    Index("ix_dead_letters_source_time", "source_topic", "dead_lettered_at", "id"),
)

_LISTED = [c for c in dead_letters.c if c.name != "value"] + [
    func.octet_length(dead_letters.c.value).label("value_bytes")
]


async def record_dead_letters(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows of records not recorded yet; how many were new."""
    if not rows:
        return 0
    result = await conn.execute(
        insert(dead_letters)
        .on_conflict_do_nothing(constraint="uq_dead_letters_record")
        .returning(dead_letters.c.id),
        list(rows),
    )
    return len(result.all())


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    source_topic: str | None = None
    reason: str | None = None
    """Part of the reason, any case."""
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.source_topic is not None:
            found.append(dead_letters.c.source_topic == self.source_topic)
        if self.reason:
            escaped = self.reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            found.append(dead_letters.c.reason.ilike(f"%{escaped}%", escape="\\"))
        if self.since is not None:
            found.append(dead_letters.c.dead_lettered_at >= _aware(self.since))
        if self.until is not None:
            found.append(dead_letters.c.dead_lettered_at < _aware(self.until))
        return found


async def dead_letter_page(
    conn: AsyncConnection, where: DeadLetterFilter, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of dead letters (without their values), newest first, and the next cursor."""
    conditions = where.conditions()
    if cursor is not None:
        moment, row_id = _decode(cursor)
        after = tuple_(
            literal(moment, dead_letters.c.dead_lettered_at.type),
            literal(row_id, dead_letters.c.id.type),
        )
        conditions.append(tuple_(dead_letters.c.dead_lettered_at, dead_letters.c.id) < after)
    rows = (
        await conn.execute(
            select(*_LISTED)
            .where(*conditions)
            .order_by(dead_letters.c.dead_lettered_at.desc(), dead_letters.c.id.desc())
            .limit(limit + 1)
        )
    ).all()
    if len(rows) <= limit:
        return list(rows), None
    last = rows[limit - 1]
    return list(rows[:limit]), _encode(last.dead_lettered_at, last.id)


async def dead_letter(conn: AsyncConnection, dead_letter_id: int, *, lock: bool = False) -> Any:
    """One dead letter with its value, or None; `lock` holds its row until the transaction
    ends (so that two replays of it cannot both publish)."""
    query = select(*_LISTED, dead_letters.c.value).where(dead_letters.c.id == dead_letter_id)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def mark_replayed(conn: AsyncConnection, dead_letter_id: int, at: datetime) -> None:
    await conn.execute(
        dead_letters.update()
        .where(dead_letters.c.id == dead_letter_id)
        .values(replayed_at=at, replays=dead_letters.c.replays + 1)
    )


async def purge_dead_letters(conn: AsyncConnection, before: datetime) -> int:
    """Delete the dead letters recorded before `before`; how many."""
    result = await conn.execute(
        dead_letters.delete().where(dead_letters.c.dead_lettered_at < before)
    )
    return int(result.rowcount or 0)


def _encode(moment: datetime, row_id: int) -> str:
    raw = orjson.dumps([moment.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = orjson.loads(raw)
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None or not isinstance(row_id, int) or isinstance(row_id, bool):
            raise ValueError
        if not 0 < row_id < 2**63:
            raise ValueError
        return parsed, row_id
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadCursor("cursor is not one this API handed out") from None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
