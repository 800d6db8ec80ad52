"""The API's routers, one module per resource. A new resource (approvals, schedules) is a
module here with a `router` and one entry in `ROUTERS`; health and metrics are built from
the auth settings in `flowbus.api.app`. `stats` comes before `instances`: its
`/v1/instances/counts` must be matched before `/v1/instances/{instance_id}`."""

from __future__ import annotations

from fastapi import APIRouter

from flowbus.api.routes import (
    approvals,
    dead_letters,
    definitions,
    events,
    instances,
    stats,
    streams,
    tasks,
)

ROUTERS: list[APIRouter] = [
    definitions.router,
    stats.router,
    instances.router,
    streams.router,
    events.router,
    approvals.router,
    dead_letters.router,
    tasks.router,
]
