"""Webhook triggers: publish an HTTP body onto a source topic, as any producer would.

With an `Idempotency-Key` header (and no `ce-id`), the event's id derives from the caller
and the key, so a retried POST publishes the same event and starts nothing new."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from flowbus.api.auth import Principal, Role, guarded, requires
from flowbus.api.context import ApiContext, Context
from flowbus.api.instance_commands import IdempotencyKey, webhook_event_id
from flowbus.api.models import WORKFLOW_ID_PATTERN, EventAccepted
from flowbus.api.problems import conflict, not_found
from flowbus.api.publish import publish_webhook
from flowbus.store.definitions import definition_from_row
from flowbus.store.read_models import startable_definition

router = APIRouter(tags=["events"])

_ANY_JSON = {"schema": {"description": "Any JSON value: published as it is."}}
_BODY = {
    "x-required-role": Role.OPERATOR.value,
    "requestBody": {
        "required": True,
        "description": "The event: any JSON (optionally with CloudEvents `ce-id`, `ce-source`, "
        "`ce-type`, `ce-subject`, `ce-time` headers), or a structured CloudEvent with "
        "`Content-Type: application/cloudevents+json`.",
        "content": {
            "application/json": _ANY_JSON,
            "application/cloudevents+json": {"schema": {"type": "object"}},
        },
    },
}
Key = Annotated[
    str | None, Query(max_length=1000, description="Record key (default: none, spread).")
]
Operator = Annotated[Principal, requires(Role.OPERATOR)]


async def _publish(
    ctx: ApiContext,
    request: Request,
    response: Response,
    topic: str,
    key: str | None,
    keyed: tuple[Principal, str | None],
    default_type: str | None = None,
) -> EventAccepted:
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-")}
    principal, idempotency_key = keyed
    if idempotency_key is not None and "ce-id" not in headers:
        headers["ce-id"] = webhook_event_id(principal.subject, idempotency_key)
    published = await publish_webhook(
        ctx.broker,
        topic=topic,
        deployment=ctx.settings.deployment,
        body=await request.body(),
        content_type=request.headers.get("content-type"),
        headers=headers,
        key=key,
        default_type=default_type,
    )
    response.status_code = 202
    return EventAccepted(
        event_id=published.event_id,
        topic=published.topic,
        partition=published.partition,
        offset=published.offset,
        mode=published.mode,
    )


@router.post(
    "/v1/events/{topic}",
    summary="Publish an event to a source topic (a webhook trigger)",
    status_code=202,
    dependencies=guarded(Role.OPERATOR)["dependencies"],
    openapi_extra=_BODY,
)
async def publish_to_topic(
    topic: Annotated[str, Path(max_length=249, description="One of `source_topics`.")],
    request: Request,
    response: Response,
    ctx: Context,
    principal: Operator,
    key: Key = None,
    idempotency_key: IdempotencyKey = None,
) -> EventAccepted:
    if topic not in ctx.settings.source_topics:
        raise not_found(
            f"topic {topic!r} is not a source topic; webhooks publish to: "
            + ", ".join(ctx.settings.source_topics)
        )
    return await _publish(ctx, request, response, topic, key, (principal, idempotency_key))


@router.post(
    "/v1/workflows/{workflow_id}/events",
    summary="Publish an event to the topic of the workflow's first event trigger",
    status_code=202,
    dependencies=guarded(Role.OPERATOR)["dependencies"],
    openapi_extra=_BODY,
)
async def publish_to_workflow(
    workflow_id: Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN, max_length=200)],
    request: Request,
    response: Response,
    ctx: Context,
    principal: Operator,
    key: Key = None,
    idempotency_key: IdempotencyKey = None,
) -> EventAccepted:
    async with ctx.engine.connect() as conn:
        row = await startable_definition(conn, workflow_id, None)
    if row is None:
        raise not_found(f"workflow {workflow_id!r} has no active version")
    definition = definition_from_row(row)
    trigger = next((t for t in definition.triggers if t.topic is not None), None)
    if trigger is None or trigger.topic is None:
        raise conflict(
            "no-trigger", f"{workflow_id} v{definition.version} has no event trigger to publish to"
        )
    if trigger.topic not in ctx.settings.source_topics:
        raise conflict(
            "no-trigger",
            f"{workflow_id}'s first trigger topic {trigger.topic!r} is not a source topic",
        )
    keyed = (principal, idempotency_key)
    return await _publish(ctx, request, response, trigger.topic, key, keyed, trigger.type)
