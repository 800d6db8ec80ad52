"""Throughput: instances started, completed and failed per minute, and completion latency
percentiles, as charts (`GET /v1/stats/throughput`), with the numbers as a table too."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from flowbus.dashboard.client import ApiRefusal
from flowbus.dashboard.context import Ctx
from flowbus.dashboard.rendering import moment

router = APIRouter(tags=["throughput"])

WINDOWS = (15, 60, 180, 720, 1440)
COUNTS = (("started", "#1f4fa8"), ("completed", "#1b6e3a"), ("failed", "#a1121b"))
PERCENTILES = (("p50", "#1f4fa8"), ("p90", "#8a5a00"), ("p99", "#a1121b"))


def charts(report: dict[str, Any]) -> dict[str, Any]:
    """uPlot's inputs: one x axis of minute starts (epoch seconds), series by name."""
    items = [i for i in report.get("items") or [] if isinstance(i, dict)]
    x = [int(found.timestamp()) if (found := moment(i.get("minute"))) else 0 for i in items]

    def latency(item: dict[str, Any], name: str) -> Any:
        measured = item.get("latencyMs")
        return measured.get(name) if isinstance(measured, dict) else None

    return {
        "counts": {
            "unit": "instances per minute",
            "x": x,
            "series": [
                {"label": name, "color": color, "values": [i.get(name, 0) for i in items]}
                for name, color in COUNTS
            ],
        },
        "latency": {
            "unit": "completion latency, ms",
            "x": x,
            "series": [
                {"label": name, "color": color, "values": [latency(i, name) for i in items]}
                for name, color in PERCENTILES
            ],
        },
    }


@router.get("/throughput", response_class=HTMLResponse, summary="Throughput and latency charts")
async def throughput(ctx: Ctx, minutes: Annotated[int, Query(ge=1, le=1440)] = 60) -> Response:
    problem = None
    report: Any = {}
    try:
        report = await ctx.api.get("/v1/stats/throughput", {"minutes": minutes})
    except ApiRefusal as refusal:
        if refusal.status >= 500:
            raise
        problem = refusal.detail
    report = report if isinstance(report, dict) else {}
    items = [i for i in report.get("items") or [] if isinstance(i, dict)]
    totals = {name: sum(int(i.get(name) or 0) for i in items) for name, _ in COUNTS}
    values = {
        "report": report,
        "items": items,
        "totals": totals,
        "overall": report.get("latencyMs") or {},
        "charts": orjson.dumps(charts(report)).decode(),
        "problem": problem,
        "minutes": minutes,
        "windows": WINDOWS,
    }
    template = "_throughput_data.html" if ctx.partial else "throughput.html"
    return ctx.render(template, **values)
