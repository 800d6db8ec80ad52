"""The dashboard as an application mounted at `/ui` of the API app, with `/` leading to it.

It is an app of its own so that its pages have their own OpenAPI document
(`/ui/openapi.json`, for the fuzz run over every page) and their own errors, HTML pages
instead of problem documents, while sharing the API's process, settings, token verifier and
live streams.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from flowbus.dashboard import live, session
from flowbus.dashboard.client import ApiClient, ApiRefusal
from flowbus.dashboard.pages import (
    approvals,
    dead_letters,
    instance,
    instance_actions,
    instances,
    throughput,
    workflows,
)
from flowbus.dashboard.rendering import STATIC, page
from flowbus.dashboard.session import CrossSiteForm, SignInNeeded

log = structlog.get_logger(__name__)
PREFIX = "/ui"


def create_dashboard(api: FastAPI) -> FastAPI:
    """The dashboard app; it calls `api` in-process for everything it shows or does."""
    dashboard = FastAPI(
        title="flowbus dashboard",
        description="HTML pages over the flowbus API (described here for the fuzz run).",
        version=api.version,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    dashboard.state.api = api
    dashboard.state.client = ApiClient(api)
    dashboard.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in (
        session.router,
        workflows.router,
        instances.router,
        instance.router,
        instance_actions.router,
        approvals.router,
        dead_letters.router,
        throughput.router,
        live.router,
    ):
        dashboard.include_router(router)
    _install_errors(dashboard)
    return dashboard


def mount_dashboard(api: FastAPI) -> None:
    """Serve the dashboard at `/ui`, and send `/` there."""
    api.mount(PREFIX, create_dashboard(api))

    @api.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _error(request: Request, status: int, detail: str, **values: Any) -> Response:
    if _wants_stream(request):
        return PlainTextResponse(detail, status_code=status)
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return page(
        request, "error.html", None, status_code=status, title=title, detail=detail, **values
    )


def _install_errors(app: FastAPI) -> None:
    async def sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        if _wants_stream(request):
            return PlainTextResponse("sign in first", status_code=401)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = f"{PREFIX}/sign-in?next={quote(here, safe='')}"
        if exc.reason:
            target += f"&reason={quote(exc.reason[:400], safe='')}"
        if request.headers.get("hx-request") == "true":
            return HTMLResponse("", headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def cross_site(request: Request, exc: Exception) -> Response:
        return _error(request, 403, "This form was sent from another site; nothing was done.")

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiRefusal)
        if exc.missing_route:
            detail = (
                f"This page needs the API's {exc.path.split('?')[0]}, which this version of "
                "flowbus does not serve."
            )
            return _error(request, 404, detail)
        return _error(request, exc.status, exc.detail, problem=exc.problem)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()
        ]
        return _error(request, 400, "The request is not valid.", problems=problems)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no page at {request.url.path}."
        return _error(request, exc.status_code, detail)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("dashboard.unexpected_error", path=request.url.path)
        return _error(request, 500, "Something went wrong while drawing this page.")

    app.add_exception_handler(SignInNeeded, sign_in)
    app.add_exception_handler(CrossSiteForm, cross_site)
    app.add_exception_handler(ApiRefusal, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
