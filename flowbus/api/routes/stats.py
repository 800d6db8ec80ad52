"""Numbers for charts: instances started and ended per minute with completion latency, and
instances by status. Every query is bounded by time on an index or by a cap on what it
counts (`flowbus.store.stats`), so a page costs the same with a million instances."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from flowbus.api.auth import Role, guarded
from flowbus.api.context import Context
from flowbus.api.models import (
    WORKFLOW_ID_PATTERN,
    ApiModel,
    InstanceCounts,
    WorkflowCounts,
)
from flowbus.engine.state import InstanceStatus
from flowbus.store.stats import Latency, StatusCount, status_counts, throughput

router = APIRouter(tags=["stats"])

STATUSES = [status.value for status in InstanceStatus]
DEFAULT_CAP = 100_000


class LatencyMs(ApiModel):
    """Completion latency (completedAt - createdAt) of completed instances, milliseconds."""

    count: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None


class MinuteThroughput(ApiModel):
    minute: datetime = Field(description="The minute's start (UTC).")
    started: int = 0
    completed: int = 0
    failed: int = 0
    timed_out: int = 0
    cancelled: int = 0
    compensated: int = 0
    latency_ms: LatencyMs | None = Field(None, description="Null when none completed.")


class ThroughputReport(ApiModel):
    minutes: int
    since: datetime = Field(description="Start of the first minute (inclusive).")
    until: datetime = Field(description="When it was read (exclusive).")
    items: list[MinuteThroughput] = Field(description="One per minute, oldest first.")
    latency_ms: LatencyMs = Field(description="Over the whole window.")


@router.get(
    "/v1/stats/throughput",
    summary="Instances started and ended per minute, with completion latency percentiles",
    description="Started counts by `createdAt`, ended ones by `completedAt` and final status; "
    "latency percentiles (p50, p90, p99 of completedAt - createdAt) of the completed ones. "
    "The window is the last `minutes` minutes, the current one included.",
    **guarded(Role.VIEWER),
)
async def get_throughput(
    ctx: Context, minutes: Annotated[int, Query(ge=1, le=1440)] = 60
) -> ThroughputReport:
    until = datetime.now(UTC)
    since = until.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    async with ctx.engine.connect() as conn:
        found = await throughput(conn, since, until)
    items = {
        since + timedelta(minutes=n): MinuteThroughput(minute=since + timedelta(minutes=n))
        for n in range(minutes)
    }
    for start in found.starts:
        if start.minute in items:
            items[start.minute].started = start.started
    for end in found.ends:
        item = items.get(end.minute)
        field = _ENDED.get(end.status)
        if item is not None and field is not None:
            setattr(item, field, getattr(item, field) + end.count)
    for latency in found.latency:
        if latency.minute in items:
            items[latency.minute].latency_ms = _milliseconds(latency)
    return ThroughputReport(
        minutes=minutes,
        since=since,
        until=until,
        items=list(items.values()),
        latency_ms=_milliseconds(found.overall),
    )


_ENDED = {
    "completed": "completed",
    "failed": "failed",
    "timed_out": "timed_out",
    "cancelled": "cancelled",
    "compensated": "compensated",
}


def _milliseconds(latency: Latency) -> LatencyMs:
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    return LatencyMs(
        count=latency.count, p50=ms(latency.p50), p90=ms(latency.p90), p99=ms(latency.p99)
    )


@router.get(
    "/v1/instances/counts",
    summary="Instances by status, overall, for one workflow, or per workflow",
    description="Each count is exact up to `cap` and reads at most `cap` + 1 index entries; "
    "a status listed in `capped` has at least `cap` instances.",
    **guarded(Role.VIEWER),
)
async def get_counts(
    ctx: Context,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", pattern=WORKFLOW_ID_PATTERN, max_length=200)
    ] = None,
    per_workflow: Annotated[
        bool, Query(alias="perWorkflow", description="Also count each workflow's instances.")
    ] = False,
    cap: Annotated[int, Query(ge=1, le=1_000_000)] = DEFAULT_CAP,
) -> InstanceCounts:
    async with ctx.engine.connect() as conn:
        overall = await status_counts(conn, STATUSES, cap, workflow_id=workflow_id)
        split = (
            await status_counts(conn, STATUSES, cap, per_workflow=True)
            if per_workflow and workflow_id is None
            else None
        )
    total = _counts(overall)
    by_workflow = None
    if split is not None:
        names = sorted({c.workflow_id for c in split if c.workflow_id is not None})
        by_workflow = [_counts((c for c in split if c.workflow_id == name), name) for name in names]
    elif per_workflow and workflow_id is not None:
        by_workflow = [_counts(overall, workflow_id)]
    return InstanceCounts(
        workflow_id=workflow_id,
        cap=cap,
        counts=total.counts,
        capped=total.capped,
        by_workflow=by_workflow,
    )


def _counts(found: Iterable[StatusCount], workflow_id: str = "") -> WorkflowCounts:
    rows = list(found)
    return WorkflowCounts(
        workflow_id=workflow_id,
        counts={c.status: c.count for c in rows},
        capped=[c.status for c in rows if c.capped],
    )
