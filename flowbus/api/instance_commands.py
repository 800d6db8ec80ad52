"""What the instance routes share: publishing a command for an instance, reading its
status to check the command is legal; and what starting an instance checks and derives:
the request body, the Idempotency-Key and the instance id it gives, and the 409s of a
workflow that starts no instances (disabled, or a deprecated version)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Header, Response
from pydantic import Field

from flowbus.api.context import ApiContext
from flowbus.api.models import CommandAccepted, CommandKind, StartInstance
from flowbus.api.parameters import storable
from flowbus.api.problems import ApiProblem, conflict, not_found
from flowbus.api.publish import publish_command
from flowbus.store.read_models import instance_status

IDEMPOTENCY_NAMESPACE = uuid.UUID("5e0c7d2a-9b41-4f3e-8a6d-2c1b0e9f7a35")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="A retry with the same key, by the same caller, names the same instance, "
        "so it creates nothing new.",
    ),
]


class CreateInstance(StartInstance):
    start: bool = Field(
        True,
        description="False: create the instance (status created) without starting it; "
        "start it with PUT /v1/instances/{id}/start.",
    )


def new_instance_id(caller: str | None, idempotency_key: str | None) -> str:
    """A fresh id, or with an Idempotency-Key the UUIDv5 of the caller and the key: the
    same on every retry, in every API process."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    storable("Idempotency-Key", idempotency_key)
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{caller or ''}\n{idempotency_key}"))


def webhook_event_id(caller: str | None, idempotency_key: str) -> str:
    """The CloudEvents id of a webhook event sent with an Idempotency-Key (and no `ce-id`):
    the same on every retry, so flowbus's dedupe on source + id starts nothing twice."""
    storable("Idempotency-Key", idempotency_key)
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{caller or ''}\n{idempotency_key}\nevent"))


def disabled_problem(workflow_id: str) -> ApiProblem:
    return conflict(
        "workflow-disabled", f"workflow {workflow_id!r} is disabled: it starts no instances"
    )


def check_startable(workflow_id: str, row: Any, disabled: bool, *, named: bool) -> None:
    """Refuse a start of a disabled workflow (409), of a deprecated version named (409), or
    with no version named when the latest version is deprecated (404: no active version;
    no older version stands in for it)."""
    if disabled:
        raise disabled_problem(workflow_id)
    if not row.deprecated:
        return
    if named:
        raise conflict(
            "version-deprecated",
            f"{workflow_id} v{row.version} is deprecated: it starts no new instances",
        )
    raise not_found(
        f"workflow {workflow_id!r} has no active version: its latest version, v{row.version}, "
        "is deprecated (store a new version, undeprecate it, or start a version by number)"
    )


async def publish_instance_command(
    ctx: ApiContext,
    response: Response,
    kind: CommandKind,
    instance_id: str,
    data: dict[str, Any],
    version: int | None = None,
    workflow_id: str | None = None,
) -> CommandAccepted:
    published = await publish_command(
        ctx.broker,
        topic=ctx.settings.topics.commands,
        deployment=ctx.settings.deployment,
        kind=kind,
        instance_id=instance_id,
        data=data,
    )
    response.headers["Location"] = f"/v1/instances/{instance_id}"
    return CommandAccepted(
        command_id=published.event_id,
        command=kind,
        instance_id=instance_id,
        workflow_id=workflow_id or data.get("workflowId"),
        workflow_version=version,
        topic=published.topic,
    )


async def current_instance(ctx: ApiContext, instance_id: uuid.UUID) -> Any:
    async with ctx.engine.connect() as conn:
        row = await instance_status(conn, str(instance_id))
    if row is None:
        raise not_found(f"instance {instance_id} does not exist")
    return row


def illegal_transition(
    instance_id: uuid.UUID, status: str, action: str, allowed: str
) -> ApiProblem:
    return conflict(
        "illegal-transition",
        f"instance {instance_id} is {status}: {action} applies only to {allowed} instances",
        instanceStatus=status,
    )
