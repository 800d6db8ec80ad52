"""Instances: list and read them from PostgreSQL; create, start, pause, resume, cancel,
retry and send events by publishing commands, after checking in PostgreSQL that the
command is legal for the instance's status now. The API never writes instance state.

`POST /v1/instances` takes an `Idempotency-Key` header: the instance id is then derived
from the caller and the key (a UUIDv5 of both), so a retried request names the same
instance and the worker, which starts an instance id once, creates nothing new, whichever
API process took the retry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from flowbus.api.auth import Principal, Role, guarded, requires
from flowbus.api.context import ApiContext, Context
from flowbus.api.instance_commands import (
    CreateInstance,
    IdempotencyKey,
    check_startable,
    current_instance,
    disabled_problem,
    illegal_transition,
    new_instance_id,
    publish_instance_command,
)
from flowbus.api.instance_views import (
    held_state,
    instance_detail,
    instance_summary,
    step_execution,
)
from flowbus.api.models import (
    MAX_CHILDREN,
    WORKFLOW_ID_PATTERN,
    CancelInstance,
    CommandAccepted,
    CommandKind,
    InstanceDetail,
    InstancePage,
    SendEvent,
    StepExecutionList,
    UiComponentProblem,
    UiComponents,
    UiComponentShown,
)
from flowbus.api.parameters import storable, utc
from flowbus.api.problems import ApiProblem, ProblemItem, conflict, not_found
from flowbus.api.publish import command_data
from flowbus.definitions.ui_components import compile_components, evaluate, view_of
from flowbus.engine.state import InstanceState, InstanceStatus
from flowbus.store.definitions import definition_from_row, start_candidate, workflow_disabled
from flowbus.store.queries import BadCursor, InstanceFilter, instance_page
from flowbus.store.read_models import (
    children_of,
    definition_extras,
    instance_row,
    instance_status,
    step_history,
)

router = APIRouter(prefix="/v1/instances", tags=["instances"])

InstanceId = Annotated[uuid.UUID, Path(description="The instance id (a UUID).")]
Operator = Annotated[Principal, requires(Role.OPERATOR)]
Viewer = Annotated[Principal, requires(Role.VIEWER)]
_ACCEPTED: dict[str, Any] = {"status_code": 202, **guarded(Role.OPERATOR)}


@router.get("", summary="Instances, newest first, filtered and paginated", **guarded(Role.VIEWER))
async def list_instances(
    ctx: Context,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", pattern=WORKFLOW_ID_PATTERN, max_length=200)
    ] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status: Annotated[
        list[InstanceStatus] | None, Query(description="Repeat for several statuses.")
    ] = None,
    correlation_id: Annotated[str | None, Query(alias="correlationId", max_length=500)] = None,
    created_after: Annotated[
        datetime | None, Query(alias="createdAfter", description="Inclusive (RFC 3339).")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(alias="createdBefore", description="Exclusive (RFC 3339).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`nextCursor` of the previous page.")
    ] = None,
) -> InstancePage:
    for name, value in (("correlationId", correlation_id), ("cursor", cursor)):
        storable(name, value)
    where = InstanceFilter(
        workflow_id=workflow_id,
        version=version,
        statuses=status or (),
        correlation_id=correlation_id,
        created_after=utc("createdAfter", created_after),
        created_before=utc("createdBefore", created_before),
    )
    try:
        async with ctx.engine.connect() as conn:
            rows, next_cursor = await instance_page(conn, where, limit, cursor)
    except BadCursor as exc:
        item = ProblemItem(detail=str(exc), parameter="cursor")
        raise ApiProblem(
            400, "invalid-cursor", str(exc), title="Invalid cursor", errors=[item]
        ) from None
    return InstancePage(items=[instance_summary(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{instance_id}",
    summary="One instance: variables, current steps, step timeline and history, children",
    **guarded(Role.VIEWER),
)
async def get_instance(instance_id: InstanceId, ctx: Context) -> InstanceDetail:
    async with ctx.engine.connect() as conn:
        row = await instance_row(conn, str(instance_id))
        if row is None:
            raise not_found(f"instance {instance_id} does not exist")
        history = await step_history(conn, str(instance_id), row.state)
        children = await children_of(conn, str(instance_id), MAX_CHILDREN)
        extras = await definition_extras(conn, row.workflow_id, row.workflow_version)
    level = extras.execution_log_level if extras is not None else None
    return instance_detail(row, history, children, level)


@router.get(
    "/{instance_id}/ui-components",
    summary="The definition's uiComponents whose condition holds for the instance now, by "
    "priority, with their data",
    **guarded(Role.VIEWER),
)
async def get_ui_components(
    instance_id: InstanceId, ctx: Context, principal: Viewer
) -> UiComponents:
    async with ctx.engine.connect() as conn:
        row = await instance_row(conn, str(instance_id))
        if row is None:
            raise not_found(f"instance {instance_id} does not exist")
        extras = await definition_extras(conn, row.workflow_id, row.workflow_version)
    raw = extras.ui_components if extras is not None else None
    components, problems = compile_components(raw if isinstance(raw, list) else [])
    view = view_of(
        InstanceState.model_validate(row.state),
        principal.subject,
        sorted(r.value for r in principal.roles),
    )
    shown = evaluate(components, view)
    return UiComponents(
        instance_id=str(instance_id),
        workflow_id=row.workflow_id,
        workflow_version=row.workflow_version,
        status=row.status,
        items=[
            UiComponentShown(
                component_id=c.component_id,
                priority=c.priority,
                layout=c.layout,
                title=c.title,
                description=c.description,
                context=c.context,
                data=c.data,
            )
            for c in shown.components
        ],
        problems=[
            UiComponentProblem(
                index=p.index, component_id=p.component_id, field=p.field, detail=p.message
            )
            for p in [*problems, *shown.problems]
        ],
    )


@router.get(
    "/{instance_id}/steps",
    summary="The instance's step executions, in start order",
    **guarded(Role.VIEWER),
)
async def get_steps(instance_id: InstanceId, ctx: Context) -> StepExecutionList:
    async with ctx.engine.connect() as conn:
        found = await instance_status(conn, str(instance_id))
        if found is None:
            raise not_found(f"instance {instance_id} does not exist")
        rows = await step_history(conn, str(instance_id), found.state)
    return StepExecutionList(items=[step_execution(r) for r in rows])


@router.post(
    "",
    summary="Start an instance, or only create it (publishes a start command)",
    **_ACCEPTED,
)
async def start_instance(
    request: CreateInstance,
    response: Response,
    ctx: Context,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> CommandAccepted:
    async with ctx.engine.connect() as conn:
        row, disabled = await start_candidate(conn, request.workflow_id, request.version)
    if row is None:
        wanted = "stored version" if request.version is None else f"version {request.version}"
        raise not_found(f"workflow {request.workflow_id!r} has no {wanted}")
    check_startable(request.workflow_id, row, disabled, named=request.version is not None)
    definition = definition_from_row(row)
    problems = ctx.input_problems(definition, request.input)
    if problems:
        raise ApiProblem(
            422,
            "invalid-input",
            f"input does not match the inputSchema of {definition.id} v{definition.version}: "
            + "; ".join(f"{p.pointer}: {p.detail}" for p in problems),
            title="Invalid input",
            errors=problems,
        )
    instance_id = new_instance_id(principal.subject, idempotency_key)
    # The version is pinned to the one the input was checked against.
    data = {
        "workflowId": definition.id,
        "version": definition.version,
        "input": request.input,
        "instanceId": instance_id,
        **command_data(correlationId=request.correlation_id),
    }
    if not request.start:
        data["start"] = False
    return await publish_instance_command(
        ctx, response, "start", instance_id, data, definition.version
    )


@router.put("/{instance_id}/start", summary="Start a created instance", **_ACCEPTED)
async def start_created(
    instance_id: InstanceId, response: Response, ctx: Context
) -> CommandAccepted:
    row = await current_instance(ctx, instance_id)
    if row.status != InstanceStatus.CREATED:
        raise illegal_transition(instance_id, row.status, "start", "created")
    async with ctx.engine.connect() as conn:
        if await workflow_disabled(conn, row.workflow_id):
            raise disabled_problem(row.workflow_id)
    data = {
        "workflowId": row.workflow_id,
        "version": row.workflow_version,
        "instanceId": str(instance_id),
    }
    return await publish_instance_command(
        ctx, response, "start", str(instance_id), data, row.workflow_version, row.workflow_id
    )


async def _command(
    ctx: ApiContext,
    response: Response,
    instance_id: uuid.UUID,
    kind: CommandKind,
    data: dict[str, Any],
    allowed: set[InstanceStatus],
    allowed_text: str,
) -> CommandAccepted:
    row = await current_instance(ctx, instance_id)
    if InstanceStatus(row.status) not in allowed:
        raise illegal_transition(instance_id, row.status, kind, allowed_text)
    return await publish_instance_command(
        ctx,
        response,
        kind,
        str(instance_id),
        {"instanceId": str(instance_id), **data},
        row.workflow_version,
        row.workflow_id,
    )


_LIVE = {s for s in InstanceStatus if not s.is_final}


@router.post("/{instance_id}/pause", summary="Pause an instance", **_ACCEPTED)
async def pause(
    instance_id: InstanceId, response: Response, ctx: Context, principal: Operator
) -> CommandAccepted:
    allowed = {InstanceStatus.RUNNING, InstanceStatus.WAITING}
    data = command_data(by=principal.subject)
    return await _command(ctx, response, instance_id, "pause", data, allowed, "running or waiting")


@router.post("/{instance_id}/resume", summary="Resume a paused instance", **_ACCEPTED)
async def resume(
    instance_id: InstanceId, response: Response, ctx: Context, principal: Operator
) -> CommandAccepted:
    data = command_data(by=principal.subject)
    return await _command(
        ctx, response, instance_id, "resume", data, {InstanceStatus.PAUSED}, "paused"
    )


@router.post(
    "/{instance_id}/cancel",
    summary="Cancel an instance, compensating completed steps unless told not to",
    **_ACCEPTED,
)
async def cancel(
    instance_id: InstanceId,
    response: Response,
    ctx: Context,
    principal: Operator,
    request: CancelInstance | None = None,
) -> CommandAccepted:
    request = request or CancelInstance()
    data = command_data(compensate=request.compensate, reason=request.reason, by=principal.subject)
    allowed = _LIVE - {InstanceStatus.COMPENSATING}
    return await _command(
        ctx, response, instance_id, "cancel", data, allowed, "created, running, waiting or paused"
    )


@router.post(
    "/{instance_id}/retry",
    summary="Run a failed instance again from the step that failed, or send a held "
    "code-first instance its task again",
    **_ACCEPTED,
)
async def retry(
    instance_id: InstanceId, response: Response, ctx: Context, principal: Operator
) -> CommandAccepted:
    row = await current_instance(ctx, instance_id)
    held = row.state.get("code") is not None and held_state(row.state) is not None
    if held and row.status in _LIVE:
        data = {"instanceId": str(instance_id), **command_data(by=principal.subject)}
        return await publish_instance_command(
            ctx, response, "retry", str(instance_id), data, row.workflow_version, row.workflow_id
        )
    if row.status != InstanceStatus.FAILED:
        raise illegal_transition(instance_id, row.status, "retry", "failed or held")
    if row.state.get("code") is not None:
        raise conflict(
            "not-retryable",
            f"instance {instance_id} is a code-first instance that failed: its "
            "compensations ran, so replaying its history would reuse undone results; "
            "start a new instance instead",
            instanceStatus=row.status,
        )
    error = row.state.get("error") or {}
    if not error.get("step_id") or error.get("type") == "CompensationFailed":
        raise conflict(
            "not-retryable",
            f"instance {instance_id} did not fail in a step it can run again "
            f"({error.get('type', 'no error recorded')}): start a new instance instead",
            instanceStatus=row.status,
        )
    data = {"instanceId": str(instance_id), **command_data(by=principal.subject)}
    return await publish_instance_command(
        ctx, response, "retry", str(instance_id), data, row.workflow_version, row.workflow_id
    )


@router.post(
    "/{instance_id}/events",
    summary="Send an event to a waiting step of the instance",
    **_ACCEPTED,
)
async def send_event(
    instance_id: InstanceId,
    request: SendEvent,
    response: Response,
    ctx: Context,
) -> CommandAccepted:
    data = command_data(stepId=request.step_id, event=request.event)
    return await _command(ctx, response, instance_id, "event", data, _LIVE, "unfinished")
