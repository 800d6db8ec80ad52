"""The audit log: what people did through the API that acted on someone's behalf or changed
what flowbus consumes (a dead letter replayed, a decision signed for a person), by whom
and when. Rows are only ever added."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Table, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Index("ix_audit_log_subject", "action", "subject", "at"),
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]


async def record_audit(
    conn: AsyncConnection, *, actor: str, action: str, subject: str, details: dict[str, Any]
) -> AuditEntry:
    """Add one entry in the caller's transaction; return it as stored."""
    row = (
        await conn.execute(
            audit_log.insert()
            .values(actor=actor, action=action, subject=subject, details=details)
            .returning(audit_log.c.at)
        )
    ).one()
    return AuditEntry(row.at, actor, action, subject, details)


async def audit_of(
    conn: AsyncConnection, action: str, subject: str, limit: int = 100
) -> list[AuditEntry]:
    """The entries of one action on one subject, oldest first."""
    rows = await conn.execute(
        select(audit_log)
        .where(audit_log.c.action == action, audit_log.c.subject == subject)
        .order_by(audit_log.c.at, audit_log.c.id)
        .limit(limit)
    )
    return [AuditEntry(r.at, r.actor, r.action, r.subject, r.details) for r in rows]
