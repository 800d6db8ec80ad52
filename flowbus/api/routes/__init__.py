"""The API's routers, one module per resource. A new resource (approvals, schedules) is a
module here with a `router` and one entry in `ROUTERS`; health and metrics are built from
the auth settings in `flowbus.api.app`."""

from __future__ import annotations

from fastapi import APIRouter

from flowbus.api.routes import approvals, definitions, events, instances, streams

ROUTERS: list[APIRouter] = [
    definitions.router,
    instances.router,
    streams.router,
    events.router,
    approvals.router,
]
