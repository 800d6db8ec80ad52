"""Pages from Jinja2 templates (autoescaped), and the filters they format values with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

if TYPE_CHECKING:
    from flowbus.dashboard.session import Person

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
VENDOR = STATIC / "vendor"
VENDOR_FILES = (
    "htmx.min.js",
    "htmx-ext-sse.min.js",
    "mermaid.min.js",
    "uPlot.iife.min.js",
    "uPlot.min.css",
)
"""The front-end packages' browser builds, copied from node_modules by `make`."""

DASH = "\u2013"  # an en dash: no value
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "compensated", "timed_out"})


def moment(value: Any) -> datetime | None:
    """An API time (RFC 3339 text) as an aware datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: Any) -> str:
    """`2026-12-01 20:21:03 UTC`, or a dash for no time."""
    found = moment(value)
    return found.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if found else DASH


def seconds_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def duration(start: Any, end: Any = None) -> str:
    """How long from `start` to `end` (to now, for something still going)."""
    began = moment(start)
    if began is None:
        return DASH
    ended = moment(end) or datetime.now(UTC)
    return seconds_text(max(0.0, (ended - began).total_seconds()))


def left(value: Any) -> str:
    """Time from now until `value`, or "passed"."""
    until = moment(value)
    if until is None:
        return DASH
    seconds = (until - datetime.now(UTC)).total_seconds()
    return seconds_text(seconds) if seconds > 0 else "passed"


def pretty(value: Any) -> str:
    """JSON, indented, for a <pre>."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def compact(value: Any) -> str:
    """JSON on one line (strings as they are)."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def vendor_missing() -> list[str]:
    return [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]


templates = Jinja2Templates(directory=str(TEMPLATES))


def milliseconds(value: Any) -> str:
    return seconds_text(value / 1000) if isinstance(value, int | float) else DASH


templates.env.filters.update(
    when=when, duration=duration, pretty=pretty, compact=compact, ms=milliseconds, left=left
)
templates.env.globals.update(final_statuses=FINAL_STATUSES)


def page(
    request: Request,
    template: str,
    person: Person | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render `template` with the person and the page's values."""
    return templates.TemplateResponse(
        request,
        template,
        {"person": person, "vendor_missing": vendor_missing(), **context},
        status_code=status_code,
    )
