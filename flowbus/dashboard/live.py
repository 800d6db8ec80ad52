"""Live updates for pages, as Server-Sent Events over the API's outcome streams
(`flowbus.api.streams`: a group-less consumer per open stream, closed when the page goes).

- An instance's stream sends each of its outcome events as `outcome` (an HTML list item
  for the page's event log), then `changed` (the page redraws its view from the API), and
  `final` after the final event, which closes it.
- The changes stream tells list pages (instances, approvals, dead letters) that something
  happened: at most one `changed` a second, however many events arrive, and one at once
  when the stream starts (anything that happened while the page loaded).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from flowbus.api.context import ApiContext
from flowbus.api.streams import FINAL_EVENT_TYPES, OutcomeReader, instance_events
from flowbus.dashboard.context import Ctx
from flowbus.dashboard.rendering import moment, templates

router = APIRouter(tags=["live"])

COALESCE_SECONDS = 1.0


def _api_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api.state.context
    return context


def _reader(context: ApiContext, topics: list[str], wanted: Any) -> OutcomeReader:
    return OutcomeReader(
        context.settings.broker_url,
        topics,
        wanted,
        context.settings.api.stream_queue_size,
        context.stopping,
    )


def event_item(event: dict[str, Any]) -> str:
    """One outcome event as a list item of the page's event log."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    return templates.get_template("_event.html").render(
        event=event, data=data, at=moment(event.get("time"))
    )


@router.get(
    "/instances/{instance_id}/stream",
    summary="The instance's events for its page (SSE)",
    response_class=EventSourceResponse,
)
async def instance_stream(
    instance_id: Annotated[uuid.UUID, Path()],
    ctx: Ctx,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> AsyncIterable[ServerSentEvent]:
    detail = await ctx.api.optional(f"/v1/instances/{instance_id}")
    if detail is None:
        yield ServerSentEvent(raw_data="", event="final")
        return
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    context = _api_context(ctx.request)
    topics = context.settings.topics
    subject = str(instance_id)
    reader = _reader(
        context,
        [topics.instances, topics.steps, topics.approvals],
        lambda event: event.get("subject") == subject,
    )
    created = moment(detail["createdAt"])
    assert created is not None
    async for event in instance_events(reader, subject, created, after, follow=False):
        seq = event.get("flowbusseq")
        yield ServerSentEvent(
            raw_data=event_item(event),
            event="outcome",
            id=str(seq) if isinstance(seq, int) else None,
        )
        yield ServerSentEvent(raw_data="", event="changed")
        if event.get("type") in FINAL_EVENT_TYPES:
            yield ServerSentEvent(raw_data="", event="final")
            return


@router.get(
    "/live/changes",
    summary="That instances, approvals or dead letters changed, at most once a second (SSE)",
    response_class=EventSourceResponse,
)
async def changes(ctx: Ctx) -> AsyncIterable[ServerSentEvent]:
    context = _api_context(ctx.request)
    topics = context.settings.topics
    reader = _reader(
        context,
        [topics.instances, topics.approvals, topics.deadletter],
        lambda event: True,
    )
    try:
        await reader.start_from_now()
        yield ServerSentEvent(raw_data="", event="changed")
        pending, last = 0, time.monotonic()
        while True:
            event = await reader.next()
            pending += event is not None
            if pending and time.monotonic() - last >= COALESCE_SECONDS:
                yield ServerSentEvent(raw_data=orjson.dumps(pending).decode(), event="changed")
                pending, last = 0, time.monotonic()
    except Exception:  # StreamBroken, or the consumer failing: the page reconnects
        return
    finally:
        await reader.stop()
