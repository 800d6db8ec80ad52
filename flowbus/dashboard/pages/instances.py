"""Instances: a filtered page of them (the API's keyset paging, so any page is as fast with
100,000 instances as with ten), counts by status, refreshed live as instances change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from flowbus.dashboard.client import ApiRefusal
from flowbus.dashboard.context import Ctx
from flowbus.engine.state import InstanceStatus

router = APIRouter(tags=["instances"])

STATUSES = [s.value for s in InstanceStatus]
PAGE_SIZES = (25, 50, 100, 200)


def utc_text(text: str | None) -> tuple[str | None, str | None]:
    """A `datetime-local` field (read as UTC) as RFC 3339; or the problem with it."""
    if not text:
        return None, None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None, f"{text!r} is not a date and time"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat(), None


@router.get(
    "/instances",
    response_class=HTMLResponse,
    summary="Instances, newest first: filters, paging, counts by status (live)",
)
async def instances(
    ctx: Ctx,
    workflow_id: Annotated[str | None, Query(alias="workflowId", max_length=200)] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status: Annotated[list[InstanceStatus] | None, Query()] = None,
    correlation_id: Annotated[str | None, Query(alias="correlationId", max_length=500)] = None,
    created_after: Annotated[str | None, Query(alias="createdAfter", max_length=40)] = None,
    created_before: Annotated[str | None, Query(alias="createdBefore", max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    after, after_problem = utc_text(created_after)
    before, before_problem = utc_text(created_before)
    filters: dict[str, Any] = {
        "workflowId": workflow_id or None,
        "version": version,
        "status": [s.value for s in status or []],
        "correlationId": correlation_id or None,
        "createdAfter": after,
        "createdBefore": before,
        "limit": limit,
    }
    query = {k: v for k, v in filters.items() if v not in (None, [])}
    problems = [p for p in (after_problem, before_problem) if p]
    page: dict[str, Any] = {"items": [], "nextCursor": None}
    if not problems:
        try:
            paging = {"cursor": cursor} if cursor else {}
            page = await ctx.api.get("/v1/instances", {**query, **paging})
        except ApiRefusal as refusal:
            if refusal.status >= 500:
                raise
            problems.append(refusal.detail)
    counts, workflows = await asyncio.gather(_counts(ctx, workflow_id), _workflow_ids(ctx))
    shown = {
        "workflowId": workflow_id or "",
        "version": version or "",
        "status": filters["status"],
        "correlationId": correlation_id or "",
        "createdAfter": created_after or "",
        "createdBefore": created_before or "",
        "limit": limit,
    }
    kept = {k: v for k, v in shown.items() if v not in ("", [])}
    kept_query = urlencode(kept, doseq=True)
    next_url = None
    if page.get("nextCursor"):
        next_url = "/ui/instances?" + urlencode({**kept, "cursor": page["nextCursor"]}, doseq=True)
    values = {
        "page": page,
        "counts": counts,
        "problems": problems,
        "filters": shown,
        "statuses": STATUSES,
        "workflows": workflows,
        "page_sizes": PAGE_SIZES,
        "next_url": next_url,
        "first_url": "/ui/instances" + (f"?{kept_query}" if kept_query else ""),
        "paged": cursor is not None,
        "self_url": str(ctx.request.url.path)
        + (f"?{ctx.request.url.query}" if ctx.request.url.query else ""),
    }
    status_code = 400 if problems else 200
    if ctx.partial:
        return ctx.render("_instance_results.html", status_code=status_code, **values)
    return ctx.render("instances.html", status_code=status_code, **values)


async def _counts(ctx: Ctx, workflow_id: str | None) -> dict[str, str] | None:
    """Instances by status (`GET /v1/instances/counts`, for the chosen workflow), as text:
    a count the API capped reads "≥ cap"; None when the API lacks the endpoint."""
    try:
        found = await ctx.api.get(
            "/v1/instances/counts", {"workflowId": workflow_id} if workflow_id else None
        )
    except ApiRefusal as refusal:
        if refusal.missing_route or refusal.status in (400, 404):
            return None
        raise
    counts = found.get("counts") if isinstance(found, dict) else None
    if not isinstance(counts, dict):
        return None
    capped = set(found.get("capped") or ())
    return {
        status: (f"\u2265 {count}" if status in capped else str(count))
        for status, count in counts.items()
        if isinstance(count, int)
    }


async def _workflow_ids(ctx: Ctx) -> list[str]:
    listed = await ctx.api.get("/v1/definitions")
    return sorted(str(w["id"]) for w in listed.get("items", []))
