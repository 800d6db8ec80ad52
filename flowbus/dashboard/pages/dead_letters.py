"""Dead letters: what landed on the dead-letter topic and why, filtered; replay publishes
one again to its source topic (the API records who did, in its audit log)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flowbus.dashboard.client import ApiRefusal
from flowbus.dashboard.context import Ctx
from flowbus.dashboard.pages.approvals import items_of
from flowbus.dashboard.pages.instances import utc_text
from flowbus.dashboard.session import SameSite

router = APIRouter(tags=["dead letters"])

DeadLetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/dead-letters", response_class=HTMLResponse, summary="Dead letters, filtered")
async def dead_letters(
    ctx: Ctx,
    source_topic: Annotated[str | None, Query(alias="sourceTopic", max_length=300)] = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    replayed: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    since_utc, since_problem = utc_text(since)
    filters = {"sourceTopic": source_topic, "reason": reason, "since": since_utc}
    query = {k: v for k, v in filters.items() if v}
    problems = [since_problem] if since_problem else []
    found: Any = {}
    if not problems:
        try:
            paging = {"cursor": cursor} if cursor else {}
            found = await ctx.api.get("/v1/dead-letters", {**query, **paging})
        except ApiRefusal as refusal:
            if refusal.status >= 500:
                raise
            problems.append(refusal.detail)
    next_cursor = found.get("nextCursor") if isinstance(found, dict) else None
    kept = {
        k: v for k, v in (("sourceTopic", source_topic), ("reason", reason), ("since", since)) if v
    }
    values = {
        "items": items_of(found),
        "problems": problems,
        "filters": {"sourceTopic": source_topic or "", "reason": reason or "", "since": since},
        "next_url": "/ui/dead-letters?" + urlencode({**kept, "cursor": next_cursor})
        if next_cursor
        else None,
        "replayed": replayed,
        "self_url": str(ctx.request.url.path)
        + (f"?{ctx.request.url.query}" if ctx.request.url.query else ""),
    }
    template = "_dead_letter_list.html" if ctx.partial else "dead_letters.html"
    return ctx.render(template, status_code=400 if problems else 200, **values)


@router.post("/dead-letters/{dead_letter_id}/replay", summary="Publish it again to its source")
async def replay(
    dead_letter_id: DeadLetterId,
    ctx: Ctx,
    again: Annotated[bool, Form()] = False,
    _: None = SameSite,
) -> Response:
    await ctx.api.post(f"/v1/dead-letters/{dead_letter_id}/replay", {"again": again})
    return RedirectResponse(f"/ui/dead-letters?replayed={dead_letter_id}", status_code=303)
