"""The operators' HTTP API (`flowbus api`): a FastAPI app over PostgreSQL (reads) and Kafka
(writes), with its OpenAPI 3.1 document at `/openapi.json`, and the web dashboard at `/ui`
(`/` leads there)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from pydantic.alias_generators import to_camel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowbus.api import problems
from flowbus.api.auth import TokenVerifier
from flowbus.api.broker import Broker
from flowbus.api.context import ApiContext
from flowbus.api.limits import BodyLimit, TimeLimit
from flowbus.api.metrics import ApiMetrics
from flowbus.api.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemItem
from flowbus.api.recorder import start_recorder
from flowbus.api.routes import ROUTERS
from flowbus.api.routes.health import build_router
from flowbus.config import Settings
from flowbus.dashboard.app import mount_dashboard
from flowbus.definitions.schema import definition_json_schema
from flowbus.limits import JsonLimits
from flowbus.store.database import create_engine

log = structlog.get_logger(__name__)

# Seconds requests still running at SIGTERM get to finish; live streams end at once.
GRACEFUL_SHUTDOWN = 3

DESCRIPTION = """Operate a flowbus deployment: workflow definitions, instances, webhook
triggers, live event streams. Reads come from PostgreSQL; everything that changes an
instance is published to Kafka as a command, exactly as a service would publish it.

Every error is an RFC 9457 problem document (`application/problem+json`). Operations state
the role they need (`x-required-role`): viewer < operator < admin, in the bearer JWT's
`roles` claim."""


def _version() -> str:
    try:
        return version("flowbus")
    except PackageNotFoundError:
        return "0.0.0"


class FlowbusApi(FastAPI):
    """FastAPI with the OpenAPI document finished for this API's conventions."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = _finish(super().openapi())
        return self.openapi_schema


def create_app(settings: Settings) -> FastAPI:
    """The API app; its database engine and Kafka clients live as long as it runs."""
    verifier = TokenVerifier(settings.api.auth) if settings.api.auth.enabled else None
    stopping = asyncio.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=5)
        broker = Broker(settings.broker_url, settings.limits.max_record_bytes)
        app.state.context = ApiContext(
            settings=settings, engine=engine, broker=broker, metrics=metrics, stopping=stopping
        )
        # Dead letters and refused decisions, kept in PostgreSQL for the API and dashboard.
        recorder = start_recorder(settings, engine)
        log.info(
            "api.started",
            host=settings.api.host,
            port=settings.api.port,
            auth="on" if verifier is not None else "off",
        )
        try:
            yield
        finally:
            await recorder.stop()
            await broker.close()
            await engine.dispose()

    metrics = ApiMetrics()
    app = FlowbusApi(
        generate_unique_id_function=lambda route: to_camel(route.name),
        title="flowbus API",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.verifier = verifier
    app.state.stopping = stopping
    problems.install(app)
    app.include_router(build_router(settings.api.auth))
    for router in ROUTERS:
        app.include_router(router)
    mount_dashboard(app)
    limits = settings.limits
    app.add_middleware(BodyLimit, limits=JsonLimits(limits.max_body_bytes, limits.max_depth))
    app.add_middleware(TimeLimit, seconds=limits.request_timeout)
    app.add_middleware(_RequestMetrics, metrics=metrics)
    return app


class _RequestMetrics:
    """Counts requests by route template and status, and times them to the first byte."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        method = scope["method"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.requests.labels(method, route, str(message["status"])).inc()
                self.metrics.request_seconds.labels(method, route).observe(
                    time.perf_counter() - began
                )
            await send(message)

        await self.app(scope, receive, sending)


def _finish(document: dict[str, Any]) -> dict[str, Any]:
    """Errors as problem+json everywhere; the definition language's JSON Schema as the
    `WorkflowDefinition` component."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for model in (Problem, ProblemItem):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas.update(_definition_components())
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if operation.get("x-required-role"):
                responses.setdefault("401", {"description": "No valid bearer token."})
                responses.setdefault("403", {"description": "The token lacks the role."})
            if operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", {"description": "Malformed request."})
                responses.setdefault("422", {"description": "Invalid request."})
            if "{" in path:
                responses.setdefault("404", {"description": "No such resource."})
            responses.setdefault("default", {"description": "Any other error."})
            for status, response in responses.items():
                if status == "default" or int(status) >= 400:
                    response["content"] = problem
                for media_type, content in response.get("content", {}).items():
                    _without_item_schema(media_type, content)
    return document


def _without_item_schema(media_type: str, content: dict[str, Any]) -> None:
    """`itemSchema` (what each event of a stream holds) is OpenAPI 3.2: a 3.1 document
    describes the stream as text, and its items in prose."""
    if "itemSchema" not in content:
        return
    del content["itemSchema"]
    described = "a stream of Server-Sent Events" if media_type == "text/event-stream" else ""
    content["schema"] = {
        "type": "string",
        "description": (described or media_type)
        + ": each event's `data` is an outcome CloudEvent as JSON, its `event` the "
        "CloudEvent's type.",
    }


def _definition_components() -> dict[str, Any]:
    schema = definition_json_schema()
    nested: dict[str, Any] = schema.pop("$defs", {})
    schema.pop("$schema", None)
    # Branch steps refer to the generic step model; any registered step type fits there.
    nested.setdefault("StepModel", schema["properties"]["steps"]["items"])
    found = {"WorkflowDefinition": schema}
    found.update({f"WorkflowDefinition.{name}": value for name, value in nested.items()})
    rewritten: dict[str, Any] = _rewrite_refs(found)
    return rewritten


def _rewrite_refs(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                "#/components/schemas/WorkflowDefinition." + v.removeprefix("#/$defs/")
                if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                else _rewrite_refs(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_refs(v) for v in value]
    return value


class _Server(uvicorn.Server):
    """uvicorn, telling the app when it is asked to stop: live streams then end, instead of
    holding the process until the graceful-shutdown time runs out."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    async def on_tick(self, counter: int) -> bool:
        should_exit = await super().on_tick(counter)
        if should_exit:
            self.stopping.set()
        return should_exit


def serve(settings: Settings) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM, which stop it within seconds."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    _Server(config, app.state.stopping).run()
