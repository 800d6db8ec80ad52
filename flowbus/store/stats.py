"""Numbers for the dashboard's charts, read so that they cost the same however many
instances the table holds: every query is bounded by time on an index (`created_at` for
starts, the partial index on `completed_at` for ends) or by a cap on what it counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Select, String, func, literal, select, tuple_, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.store.tables import instances

PERCENTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class MinuteStarts:
    minute: datetime
    started: int


@dataclass(frozen=True, slots=True)
class MinuteEnds:
    minute: datetime
    status: str
    count: int


@dataclass(frozen=True, slots=True)
class Latency:
    """Completion latency (completed_at - created_at, seconds) of the completed instances
    of one minute, or of the whole window when `minute` is None."""

    minute: datetime | None
    count: int
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class Throughput:
    starts: list[MinuteStarts]
    ends: list[MinuteEnds]
    latency: list[Latency]
    overall: Latency


async def throughput(conn: AsyncConnection, since: datetime, until: datetime) -> Throughput:
    """Starts per minute, ends per minute and status, and completion latency per minute and
    over the window [since, until)."""
    started_minute = func.date_trunc("minute", instances.c.created_at).label("minute")
    starts = await conn.execute(
        select(started_minute, func.count())
        .where(instances.c.created_at >= since, instances.c.created_at < until)
        .group_by(started_minute)
    )
    in_window = (
        instances.c.completed_at.is_not(None),
        instances.c.completed_at >= since,
        instances.c.completed_at < until,
    )
    ended_minute = func.date_trunc("minute", instances.c.completed_at).label("minute")
    ends = await conn.execute(
        select(ended_minute, instances.c.status, func.count())
        .where(*in_window)
        .group_by(ended_minute, instances.c.status)
    )
    seconds = func.extract("epoch", instances.c.completed_at - instances.c.created_at)
    fractions = literal(list(PERCENTILES), ARRAY(Float))
    quantiles = func.percentile_cont(fractions).within_group(seconds)
    # One scan for both: per minute, and () for the whole window (its minute is null).
    latency = (
        await conn.execute(
            select(ended_minute, func.count(), quantiles)
            .where(*in_window, instances.c.status == "completed")
            .group_by(func.grouping_sets(tuple_(ended_minute), tuple_()))
        )
    ).all()
    overall = next((_latency(None, n, q) for m, n, q in latency if m is None), None)
    return Throughput(
        starts=[MinuteStarts(m, n) for m, n in starts],
        ends=[MinuteEnds(m, s, n) for m, s, n in ends],
        latency=[_latency(m, n, q) for m, n, q in latency if m is not None],
        overall=overall or Latency(None, 0, None, None, None),
    )


def _latency(minute: datetime | None, count: int, quantiles: Sequence[float] | None) -> Latency:
    p50, p90, p99 = quantiles if quantiles else (None, None, None)
    return Latency(minute, count, p50, p90, p99)


@dataclass(frozen=True, slots=True)
class StatusCount:
    workflow_id: str | None
    status: str
    count: int
    capped: bool
    """True when there are at least `count` (the cap) instances: counting stopped there."""


async def status_counts(
    conn: AsyncConnection,
    statuses: Sequence[str],
    cap: int,
    *,
    workflow_id: str | None = None,
    per_workflow: bool = False,
) -> list[StatusCount]:
    """Instances by status (and by workflow), each count exact up to `cap`: one index
    probe per (workflow, status) that reads at most `cap` + 1 index entries, so the answer
    costs the same with ten thousand or ten million instances."""
    names: list[str | None] = [workflow_id]
    if per_workflow and workflow_id is None:
        names = list((await conn.execute(_workflow_ids())).scalars())
    found: list[StatusCount] = []
    for name in names:
        probes = []
        for status in statuses:
            where = [instances.c.status == status]
            if name is not None:
                where.append(instances.c.workflow_id == name)
            capped = select(literal(1)).where(*where).limit(cap + 1).subquery()
            counted = select(func.count()).select_from(capped).scalar_subquery()
            probes.append(select(literal(status, String).label("status"), counted.label("n")))
        for status, count in (await conn.execute(union_all(*probes))).all():
            if count:
                found.append(StatusCount(name, status, min(count, cap), count > cap))
    return found


def _workflow_ids() -> Select[Any]:
    """Every workflow id among the instances, by a skip scan of the workflow index (one
    probe per workflow, not one row per instance)."""
    ids = select(func.min(instances.c.workflow_id).label("workflow_id")).cte("ids", recursive=True)
    following = select(
        select(func.min(instances.c.workflow_id))
        .where(instances.c.workflow_id > ids.c.workflow_id)
        .scalar_subquery()
    ).where(ids.c.workflow_id.is_not(None))
    ids = ids.union_all(following)
    return select(ids.c.workflow_id).where(ids.c.workflow_id.is_not(None))
