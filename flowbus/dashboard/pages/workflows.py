"""Workflows: every definition and its versions; one workflow's graph, triggers in words,
deprecation, and a start form generated from its input schema."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flowbus.api.models import WORKFLOW_ID_PATTERN
from flowbus.dashboard.client import ApiRefusal
from flowbus.dashboard.context import Ctx
from flowbus.dashboard.definitions import StoredVersion, path_of, stored_version
from flowbus.dashboard.forms import InputFormError, input_fields, read_input
from flowbus.dashboard.graph import definition_chart
from flowbus.dashboard.session import SameSite
from flowbus.dashboard.words import triggers_words

router = APIRouter(tags=["workflows"])

WorkflowId = Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN, max_length=200)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
_DONE = {
    "deprecated": "Deprecated: this version starts no new instances.",
    "undeprecated": "Undeprecated: this version may start instances again.",
}


def workflow_url(workflow_id: str, version: int | None = None, **query: str) -> str:
    url = f"/ui/workflows/{quote(workflow_id, safe='')}"
    params = ([f"version={version}"] if version else []) + [f"{k}={v}" for k, v in query.items()]
    return url + ("?" + "&".join(params) if params else "")


@router.get("/", response_class=HTMLResponse, summary="Workflows: every definition")
async def workflows(ctx: Ctx) -> Response:
    listed = (await ctx.api.get("/v1/definitions"))["items"]
    latest = await asyncio.gather(
        *(stored_version(ctx.api, w["id"], w["latestVersion"]) for w in listed)
    )
    rows = [
        {
            "summary": summary,
            "latest": found,
            "triggers": triggers_words(found.document) if found else [],
        }
        for summary, found in zip(listed, latest, strict=True)
    ]
    return ctx.render("workflows.html", rows=rows, workflow_url=workflow_url)


async def _workflow_page(
    ctx: Ctx,
    workflow_id: str,
    version: int | None,
    *,
    status_code: int = 200,
    start_error: str | None = None,
    start_problems: list[str] | None = None,
    entered: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    summary = await ctx.api.get(f"{path_of(workflow_id)}/versions")
    chosen = version or summary.get("activeVersion") or summary["latestVersion"]
    found = await stored_version(ctx.api, workflow_id, chosen)
    if found is None:
        return ctx.render(
            "error.html",
            status_code=404,
            title="Not Found",
            detail=f"{workflow_id} has no version {chosen}.",
        )
    return ctx.render(
        "workflow.html",
        status_code=status_code,
        summary=summary,
        chosen=found,
        version=chosen,
        chart=_chart(found),
        triggers=triggers_words(found.document),
        fields=input_fields(found.document.get("inputSchema")),
        start_error=start_error,
        start_problems=start_problems or [],
        entered=entered or {},
        done=_DONE.get(done or ""),
        workflow_url=workflow_url,
    )


def _chart(found: StoredVersion) -> str | None:
    return definition_chart(found.definition) if found.definition is not None else None


@router.get(
    "/workflows/{workflow_id}",
    response_class=HTMLResponse,
    summary="One workflow: versions, graph, triggers, start form",
)
async def workflow(
    workflow_id: WorkflowId,
    ctx: Ctx,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    return await _workflow_page(ctx, workflow_id, version, done=done)


@router.post(
    "/workflows/{workflow_id}/versions/{version}/deprecation",
    summary="Deprecate a version, or undo that (admin)",
)
async def deprecate(
    workflow_id: WorkflowId,
    version: Version,
    ctx: Ctx,
    deprecated: Annotated[bool, Form()],
    _: None = SameSite,
) -> Response:
    await ctx.api.patch(path_of(workflow_id, version), {"deprecated": deprecated})
    done = "deprecated" if deprecated else "undeprecated"
    return RedirectResponse(workflow_url(workflow_id, version, done=done), status_code=303)


@router.post(
    "/workflows/{workflow_id}/start",
    summary="Start an instance with the input the form describes (operator)",
)
async def start(
    workflow_id: WorkflowId,
    request: Request,
    ctx: Ctx,
    version: Annotated[int | None, Form(ge=1, le=2**31 - 1)] = None,
    correlation_id: Annotated[str | None, Form(alias="correlationId", max_length=500)] = None,
    input_json: Annotated[str | None, Form(max_length=1_000_000)] = None,
    _: None = SameSite,
) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    found = await stored_version(ctx.api, workflow_id, version)
    if found is None:
        return await _workflow_page(ctx, workflow_id, None, status_code=404)
    try:
        value = read_input(found.document.get("inputSchema"), form)
    except InputFormError as exc:
        return await _workflow_page(
            ctx, workflow_id, version, status_code=422, start_error=str(exc), entered=form
        )
    body: dict[str, Any] = {"workflowId": workflow_id, "input": value}
    if version is not None:
        body["version"] = version
    if correlation_id:
        body["correlationId"] = correlation_id
    try:
        accepted = await ctx.api.post("/v1/instances", body)
    except ApiRefusal as refusal:
        if refusal.status >= 500:
            raise
        problems = [
            f"{item.get('pointer') or item.get('parameter') or ''} {item.get('detail', '')}"
            for item in refusal.problem.get("errors") or []
            if isinstance(item, dict)
        ]
        return await _workflow_page(
            ctx,
            workflow_id,
            version,
            status_code=refusal.status,
            start_error=refusal.detail,
            start_problems=problems,
            entered=form,
        )
    return RedirectResponse(f"/ui/instances/{accepted['instanceId']}?done=start", status_code=303)
