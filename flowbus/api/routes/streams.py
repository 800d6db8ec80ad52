"""Live updates as Server-Sent Events: each event is an outcome CloudEvent (`event:` its
type, `data:` the whole event as JSON)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from flowbus.api.auth import Role, guarded
from flowbus.api.context import ApiContext, Context
from flowbus.api.models import WORKFLOW_ID_PATTERN
from flowbus.api.problems import ApiProblem, ProblemItem, not_found
from flowbus.api.streams import OutcomeReader, instance_events, workflow_events
from flowbus.engine.state import InstanceStatus
from flowbus.store.read_models import definition_versions, instance_status

router = APIRouter(tags=["streams"])


def _reader(ctx: ApiContext, wanted: Any) -> OutcomeReader:
    topics = ctx.settings.topics
    return OutcomeReader(
        ctx.settings.broker_url,
        [topics.instances, topics.steps, topics.approvals],
        wanted,
        ctx.settings.api.stream_queue_size,
        ctx.stopping,
    )


def _sse(event: dict[str, Any], event_id: str | None) -> ServerSentEvent:
    return ServerSentEvent(
        raw_data=orjson.dumps(event).decode(), event=str(event.get("type")), id=event_id
    )


async def _streamed_instance(
    instance_id: Annotated[uuid.UUID, Path(description="The instance id (a UUID).")],
    ctx: Context,
) -> Any:
    async with ctx.engine.connect() as conn:
        row = await instance_status(conn, str(instance_id))
    if row is None:
        raise not_found(f"instance {instance_id} does not exist")
    return row


def _resume_point(
    after: Annotated[
        int | None,
        Query(ge=0, le=2**31, description="Only events after this flowbusseq (resume)."),
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> int:
    """Where the client resumes: `after`, else the SSE Last-Event-ID it sends on reconnect."""
    if after is not None:
        return after
    if last_event_id is None:
        return 0
    if not last_event_id.isdigit():
        detail = "Last-Event-ID must be the id (flowbusseq) of an event of this stream"
        item = ProblemItem(detail=detail, parameter="Last-Event-ID")
        raise ApiProblem(400, "invalid-request", detail, title="Invalid request", errors=[item])
    return int(last_event_id)


@router.get(
    "/v1/instances/{instance_id}/events",
    summary="The instance's events, in order (SSE); ends after its final event",
    response_class=EventSourceResponse,
    **guarded(Role.VIEWER),
)
async def instance_stream(
    instance_id: uuid.UUID,
    instance: Annotated[Any, Depends(_streamed_instance)],
    start: Annotated[int, Depends(_resume_point)],
    ctx: Context,
    follow: Annotated[
        bool, Query(description="Keep streaming after the final event (retries).")
    ] = False,
) -> AsyncIterable[ServerSentEvent]:
    final = InstanceStatus(instance.status).is_final
    if final and not follow and start >= instance.state.get("seq", 0):
        return  # the client has every event there will be
    subject = str(instance_id)
    reader = _reader(ctx, lambda event: event.get("subject") == subject)
    async for event in instance_events(reader, subject, instance.created_at, start, follow):
        # The SSE id is the flowbusseq, so that a reconnecting client resumes after it;
        # unnumbered notices carry none and leave the client's last id as it was.
        seq = event.get("flowbusseq")
        yield _sse(event, str(seq) if isinstance(seq, int) else None)


async def _streamed_workflow(
    workflow_id: Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN, max_length=200)],
    ctx: Context,
) -> str:
    async with ctx.engine.connect() as conn:
        if not await definition_versions(conn, workflow_id):
            raise not_found(f"workflow {workflow_id!r} is not stored")
    return workflow_id


@router.get(
    "/v1/workflows/{workflow_id}/events",
    summary="Every event of the workflow's instances from now on (SSE)",
    response_class=EventSourceResponse,
    **guarded(Role.VIEWER),
)
async def workflow_stream(
    workflow_id: Annotated[str, Depends(_streamed_workflow)], ctx: Context
) -> AsyncIterable[ServerSentEvent]:
    def wanted(event: dict[str, Any]) -> bool:
        data = event.get("data")
        return isinstance(data, dict) and data.get("workflowId") == workflow_id

    async for event in workflow_events(_reader(ctx, wanted)):
        yield _sse(event, str(event.get("id")))
