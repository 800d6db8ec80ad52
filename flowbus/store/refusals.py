"""Refused decisions, as recorded from the approvals topic: each
`flowbus.approval.decision_refused` event of a known approval once (unique on its event id),
so that a page can show why a decision changed nothing. Refusals of approvals flowbus does
not know (forged or mistyped ids) are not recorded: no page could show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import metadata

decision_refusals = Table(
    "decision_refusals",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("approval_id", UUID(as_uuid=False), nullable=False),
    Column("instance_id", UUID(as_uuid=False), nullable=False),
    Column("decided_by", Text),
    Column("decision", Text),
    Column("reason", Text, nullable=False),
    Column("decision_id", Text),
    Column("numbered", Boolean, nullable=False),
    Column("refused_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_decision_refusals_approval", "approval_id", "refused_at"),
    Index("ix_decision_refusals_time", "refused_at"),
)


@dataclass(frozen=True, slots=True)
class Refusal:
    approval_id: str
    decided_by: str | None
    decision: str | None
    reason: str
    decision_id: str | None
    numbered: bool
    refused_at: datetime


async def record_refusals(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the refusals not recorded yet; how many were new."""
    if not rows:
        return 0
    result = await conn.execute(
        insert(decision_refusals)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(decision_refusals.c.id),
        list(rows),
    )
    return len(result.all())


async def refusals_of(
    conn: AsyncConnection, approval_ids: Sequence[str], limit: int = 200
) -> list[Refusal]:
    """The refusals of these approvals, oldest first (at most `limit`)."""
    if not approval_ids:
        return []
    rows = await conn.execute(
        select(decision_refusals)
        .where(decision_refusals.c.approval_id.in_(sorted(set(approval_ids))))
        .order_by(decision_refusals.c.refused_at, decision_refusals.c.id)
        .limit(limit)
    )
    return [
        Refusal(
            approval_id=str(r.approval_id),
            decided_by=r.decided_by,
            decision=r.decision,
            reason=r.reason,
            decision_id=r.decision_id,
            numbered=r.numbered,
            refused_at=r.refused_at,
        )
        for r in rows
    ]


async def purge_refusals(conn: AsyncConnection, before: datetime) -> int:
    """Delete the refusals recorded before `before`; how many."""
    result = await conn.execute(
        decision_refusals.delete().where(decision_refusals.c.refused_at < before)
    )
    return int(result.rowcount or 0)
