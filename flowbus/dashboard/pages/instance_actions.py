"""What an operator does to an instance from its page: pause, resume, retry, cancel (with or
without compensation) and send it an event. Each is the API's command; the page then shows
the instance as the worker applies it."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response

from flowbus.dashboard.context import Ctx
from flowbus.dashboard.pages.instance import InstanceId
from flowbus.dashboard.session import SameSite

router = APIRouter(tags=["instance actions"])

Plain = Literal["pause", "resume", "retry"]


def _back(instance_id: object, done: str) -> RedirectResponse:
    return RedirectResponse(f"/ui/instances/{instance_id}?done={done}", status_code=303)


@router.post("/instances/{instance_id}/commands/{command}", summary="Pause, resume or retry")
async def command(
    instance_id: InstanceId, command: Plain, ctx: Ctx, _: None = SameSite
) -> Response:
    await ctx.api.post(f"/v1/instances/{instance_id}/{command}")
    return _back(instance_id, command)


@router.post("/instances/{instance_id}/cancel", summary="Cancel, compensating or not")
async def cancel(
    instance_id: InstanceId,
    ctx: Ctx,
    compensate: Annotated[bool, Form()] = True,
    reason: Annotated[str | None, Form(max_length=2000)] = None,
    _: None = SameSite,
) -> Response:
    body = {"compensate": compensate, "reason": reason or None}
    await ctx.api.post(f"/v1/instances/{instance_id}/cancel", body)
    return _back(instance_id, "cancel")


@router.post("/instances/{instance_id}/events", summary="Send an event to a waiting step")
async def send_event(
    instance_id: InstanceId,
    ctx: Ctx,
    step_id: Annotated[str | None, Form(alias="stepId", max_length=200)] = None,
    event: Annotated[str, Form(max_length=1_000_000)] = "{}",
    _: None = SameSite,
) -> Response:
    try:
        data = orjson.loads(event or "null")
    except orjson.JSONDecodeError as exc:
        return ctx.render(
            "error.html",
            status_code=422,
            title="Invalid event",
            detail=f"The event is not valid JSON: {exc}",
            back=f"/ui/instances/{instance_id}",
        )
    await ctx.api.post(
        f"/v1/instances/{instance_id}/events", {"stepId": step_id or None, "event": data}
    )
    return _back(instance_id, "event")
