"""Liveness, readiness and Prometheus metrics: open unless the auth settings protect them."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from flowbus.api.auth import Role, guarded
from flowbus.api.context import Context
from flowbus.api.models import Check, Liveness, Readiness
from flowbus.api.problems import ApiProblem
from flowbus.config import ApiAuthSettings
from flowbus.store.database import current_revision, head_revision, ping


def build_router(auth: ApiAuthSettings) -> APIRouter:
    """The health and metrics routes, guarded as the settings say."""
    router = APIRouter(tags=["operations"])
    health: dict[str, Any] = guarded(Role.VIEWER) if auth.protect_health else {}
    metrics: dict[str, Any] = guarded(Role.VIEWER) if auth.protect_metrics else {}

    @router.get("/healthz", summary="Liveness: the process answers", **health)
    async def healthz() -> Liveness:
        return Liveness()

    @router.get(
        "/readyz",
        summary="Readiness: database reachable, schema current, broker reachable",
        responses={503: {"description": "Not ready; `checks` says why."}},
        **health,
    )
    async def readyz(ctx: Context) -> Readiness:
        checks = {"database": await _database(ctx), "broker": await _broker(ctx)}
        if checks["database"].ok:
            checks["schema"] = await _schema(ctx)
        if not all(c.ok for c in checks.values()):
            failing = ", ".join(f"{name}: {c.detail}" for name, c in checks.items() if not c.ok)
            raise ApiProblem(
                503,
                "not-ready",
                f"not ready: {failing}",
                title="Service Unavailable",
                checks={name: c.model_dump() for name, c in checks.items()},
            )
        return Readiness(checks=checks)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        **metrics,
    )
    async def metrics_endpoint(ctx: Context) -> Response:
        body = await ctx.metrics.exposition(ctx.engine, ctx.broker, ctx.settings)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router


async def _database(ctx: Context) -> Check:
    try:
        await ping(ctx.engine)
    except Exception as exc:
        return Check(ok=False, detail=f"unreachable: {str(exc).splitlines()[0]}")
    return Check(ok=True, detail="reachable")


@functools.cache
def _head() -> str | None:
    # The migrations shipped with this process do not change while it runs.
    return head_revision()


async def _schema(ctx: Context) -> Check:
    have, want = await current_revision(ctx.engine), _head()
    if have != want:
        return Check(ok=False, detail=f"at {have or 'nothing'}, needs {want}: run flowbus migrate")
    return Check(ok=True, detail=f"at {have}")


async def _broker(ctx: Context) -> Check:
    if await ctx.broker.reachable():
        return Check(ok=True, detail="reachable")
    return Check(ok=False, detail="unreachable")
