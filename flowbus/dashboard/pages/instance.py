"""One instance: its graph with the path taken, a timeline of step attempts, variables,
outcome events, children and parent, the definition's `uiComponents` whose condition holds,
and the operator's actions. Live while it runs: the page listens to the instance's event
stream and redraws its view from the API after each event."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response

from flowbus.dashboard.client import ApiRefusal
from flowbus.dashboard.context import Ctx
from flowbus.dashboard.definitions import stored_version
from flowbus.dashboard.graph import StepRun, instance_chart, step_runs
from flowbus.dashboard.rendering import FINAL_STATUSES, moment

router = APIRouter(tags=["instance"])

InstanceId = Annotated[uuid.UUID, Path(description="The instance id (a UUID).")]
_NEVER = datetime.min.replace(tzinfo=UTC)
DONE = {
    "start": "Start sent: the worker creates the instance in a moment.",
    "pause": "Pause sent.",
    "resume": "Resume sent.",
    "retry": "Retry sent.",
    "cancel": "Cancel sent.",
    "event": "Event sent to the instance.",
}
LAYOUTS = ("timeline", "card", "alert")


@router.get(
    "/instances/{instance_id}",
    response_class=HTMLResponse,
    summary="One instance, live while it runs",
)
async def instance_page(
    instance_id: InstanceId,
    ctx: Ctx,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    values = await view_values(ctx, str(instance_id))
    return ctx.render(
        "instance.html", instance_id=str(instance_id), done=DONE.get(done or ""), view=values
    )


@router.get(
    "/instances/{instance_id}/live",
    response_class=HTMLResponse,
    summary="The live part of the instance page (polled until the instance exists)",
)
async def instance_live(instance_id: InstanceId, ctx: Ctx) -> Response:
    values = await view_values(ctx, str(instance_id))
    return ctx.render("_instance_live.html", instance_id=str(instance_id), view=values)


@router.get(
    "/instances/{instance_id}/view",
    response_class=HTMLResponse,
    summary="The instance's view, redrawn after each of its events",
)
async def instance_view(instance_id: InstanceId, ctx: Ctx) -> Response:
    values = await view_values(ctx, str(instance_id))
    if values is None:
        return ctx.render("_instance_live.html", instance_id=str(instance_id), view=None)
    return ctx.render("_instance_view.html", instance_id=str(instance_id), view=values)


async def view_values(ctx: Ctx, instance_id: str) -> dict[str, Any] | None:
    """Everything the instance's view shows; None while the instance does not exist."""
    detail = await ctx.api.optional(f"/v1/instances/{instance_id}")
    if detail is None:
        return None
    history: list[dict[str, Any]] = detail.get("history") or []
    found, components, approvals = await asyncio.gather(
        stored_version(ctx.api, detail["workflowId"], detail["workflowVersion"]),
        _components(ctx, instance_id),
        _approvals(ctx, instance_id, history),
    )
    # The steps entered (each one's latest attempt) draw the path even where the history
    # keeps only failed attempts (executionLog level error).
    runs = step_runs(detail.get("steps") or history)
    for current in detail.get("currentSteps") or []:
        earlier = runs.get(current["stepId"])
        runs[current["stepId"]] = StepRun(
            status=current["status"],
            first_started=earlier.first_started
            if earlier
            else (moment(current.get("startedAt")) or moment(detail["createdAt"]) or _NEVER),
            last_finished=earlier.last_finished if earlier else None,
        )
    status = detail["status"]
    chart = None
    if found is not None and found.definition is not None:
        chart = instance_chart(found.definition, runs, completed=status == "completed")
    waiting = [c["stepId"] for c in detail.get("currentSteps") or [] if c["status"] == "waiting"]
    return {
        "detail": detail,
        "status": status,
        "final": status in FINAL_STATUSES,
        "chart": chart,
        "attempts": history,
        "runs": runs,
        "components": components,
        "approvals": approvals,
        "children": detail.get("children") or [],
        "waiting_steps": waiting,
        "document": found.document if found else {},
        "log_level": detail.get("executionLogLevel") or "info",
        "actions": _actions(detail),
    }


def _actions(detail: dict[str, Any]) -> dict[str, bool]:
    status = detail["status"]
    live = status not in FINAL_STATUSES
    return {
        "pause": status in ("running", "waiting"),
        "resume": status == "paused",
        "cancel": live and status != "compensating",
        "retry": status == "failed" or (live and detail.get("held") is not None),
        "event": live,
    }


async def _components(ctx: Ctx, instance_id: str) -> list[dict[str, Any]] | None:
    """The uiComponents whose condition holds now, by priority (the API's order); None when
    the API lacks the endpoint."""
    try:
        found = await ctx.api.get(f"/v1/instances/{instance_id}/ui-components")
    except ApiRefusal as refusal:
        if refusal.missing_route:
            return None
        raise
    listed = found.get("items", []) if isinstance(found, dict) else []
    shown = []
    for component in listed:
        if not isinstance(component, dict):
            continue
        context = component.get("context")
        component["context"] = context if isinstance(context, dict) else {}
        layout = component.get("layout") or component["context"].get("layout")
        component["layout"] = layout if layout in LAYOUTS else "panel"
        shown.append(component)
    return shown


async def _approvals(ctx: Ctx, instance_id: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    """Decisions and refusals of each approval step (`GET /v1/approvals/{i}/{s}`)."""
    steps = list(dict.fromkeys(a["stepId"] for a in history if a.get("stepType") == "approval"))

    async def one(step_id: str) -> Any:
        try:
            return await ctx.api.optional(f"/v1/approvals/{instance_id}/{quote(step_id, safe='')}")
        except ApiRefusal as refusal:
            if refusal.missing_route or refusal.status in (400, 404, 422):
                return None
            raise

    found = await asyncio.gather(*(one(s) for s in steps))
    return {step: approval for step, approval in zip(steps, found, strict=True) if approval}
