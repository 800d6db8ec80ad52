"""The approvals inbox: what waits for the signed-in person (as a user and through their
groups), with summary, deadline and quorum progress; approve or reject with a comment (the
API signs the decision on the person's behalf), and the decisions and refusals each
approval has had, refusals with their reason."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flowbus.dashboard.client import ApiRefusal
from flowbus.dashboard.context import Ctx
from flowbus.dashboard.session import SameSite

router = APIRouter(tags=["approvals"])

StepId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00/]+$")]
MAX_SHOWN = 100


def items_of(found: Any) -> list[dict[str, Any]]:
    """The list in an API answer (`{"items": [...]}` or a bare list)."""
    if isinstance(found, dict):
        found = found.get("items", [])
    return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


async def decisions_of(ctx: Ctx, instance_id: str, step_id: str) -> dict[str, Any] | None:
    """An approval's decisions and refusals (`GET /v1/approvals/{i}/{s}`)."""
    try:
        found = await ctx.api.optional(f"/v1/approvals/{instance_id}/{quote(step_id, safe='')}")
    except ApiRefusal as refusal:
        if refusal.missing_route or refusal.status in (400, 422):
            return None
        raise
    return found if isinstance(found, dict) else None


Name = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00-\x1f]*$")]
Groups = Annotated[list[str] | None, Query(max_length=50)]


def _who(user: str | None, groups: list[str] | None) -> dict[str, Any]:
    """With auth off the page names the person itself (the API takes it from the token
    otherwise)."""
    named = [part.strip() for g in groups or [] for part in g.split(",")]
    kept = [g for g in named if g and "\x00" not in g and len(g) <= 200]
    return {"as": user or "", "group": kept}


@router.get(
    "/approvals",
    response_class=HTMLResponse,
    summary="Approvals waiting for the signed-in person (live)",
)
async def inbox(
    ctx: Ctx,
    done: Annotated[Literal["approve", "reject"] | None, Query()] = None,
    instance: Annotated[uuid.UUID | None, Query()] = None,
    step: Annotated[str | None, Query(max_length=200)] = None,
    user: Annotated[str | None, Query(alias="as", max_length=200)] = None,
    group: Groups = None,
) -> Response:
    who = _who(user, group)
    query: dict[str, Any] = {}
    if not ctx.person.auth_on:
        query = {k: v for k, v in (("assignee", who["as"]), ("group", who["group"])) if v}
    problem = None
    pending: list[dict[str, Any]] = []
    try:
        pending = items_of(await ctx.api.get("/v1/approvals/pending", query))[:MAX_SHOWN]
    except ApiRefusal as refusal:
        if refusal.status >= 500:
            raise
        problem = refusal.detail
    histories = await asyncio.gather(
        *(decisions_of(ctx, str(a.get("instanceId")), str(a.get("stepId"))) for a in pending)
    )
    decided = None
    if done and instance is not None and step and "\x00" not in step:
        decided = {
            "decision": done,
            "instanceId": str(instance),
            "stepId": step,
            "approval": await decisions_of(ctx, str(instance), step),
        }
    values: dict[str, Any] = {
        "pending": list(zip(pending, histories, strict=True)),
        "decided": decided,
        "problem": problem,
        "who": who,
        "self_url": str(ctx.request.url.path)
        + (f"?{ctx.request.url.query}" if ctx.request.url.query else ""),
        "who_query": urlencode(who, doseq=True),
    }
    template = "_approval_list.html" if ctx.partial else "approvals.html"
    return ctx.render(template, **values)


@router.post(
    "/approvals/{instance_id}/{step_id}/decision",
    summary="Approve or reject, with a comment",
)
async def decide(
    instance_id: uuid.UUID,
    step_id: StepId,
    ctx: Ctx,
    decision: Annotated[Literal["approve", "reject"], Form()],
    comment: Annotated[str | None, Form(max_length=2000)] = None,
    decided_by: Annotated[str | None, Form(alias="as", max_length=200)] = None,
    groups: Annotated[str | None, Form(max_length=2000)] = None,
    _: None = SameSite,
) -> Response:
    step = quote(step_id, safe="")
    body: dict[str, Any] = {"comment": comment or None}
    who = _who(decided_by, (groups or "").split(","))
    if not ctx.person.auth_on:
        body.update(decidedBy=who["as"] or None, groups=who["group"] or None)
    await ctx.api.post(f"/v1/approvals/{instance_id}/{step}/{decision}", body)
    back = urlencode({"done": decision, "instance": instance_id, "step": step_id, **who}, True)
    return RedirectResponse(f"/ui/approvals?{back}", status_code=303)
