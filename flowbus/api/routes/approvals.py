"""Approvals: the inbox and one step's approval with its decisions and refusals, read from
PostgreSQL; and deciding, which publishes a decision signed for the calling person to the
decisions topic, exactly as an approver service would (`flowbus.api.decisions`). The
worker accepts or refuses it by the same rules as any decision."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Query, Request

from flowbus.api.approval_models import (
    Answer,
    ApprovalDetail,
    ApprovalList,
    ApprovalStatus,
    DecisionPublished,
    DecisionRequest,
    PendingApprovalList,
    pending,
    refused,
    summary,
)
from flowbus.api.auth import Principal, Role, guarded, requires
from flowbus.api.context import ApiContext, Context
from flowbus.api.decisions import Person, publish_decision, token_groups
from flowbus.api.models import WORKFLOW_ID_PATTERN
from flowbus.api.parameters import invalid_parameter, storable
from flowbus.api.problems import ApiProblem, ProblemItem, conflict, not_found
from flowbus.steps.approval import matches
from flowbus.store.approval_views import (
    ApprovalProgress,
    approvals_of_step,
    find_approvals_by,
    pending_for,
    person_entries,
)
from flowbus.store.audit import record_audit
from flowbus.store.refusals import refusals_of

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

ANONYMOUS_DECIDER = "dashboard"
_NAME = {"max_length": 200, "pattern": r"^[^\x00-\x1f]+$"}
InstanceId = Annotated[uuid.UUID, Path(description="The instance id (a UUID).")]
StepId = Annotated[
    str, Path(description="The approval step's id (a code-first wait's name).", **_NAME)
]
Viewer = Annotated[Principal, requires(Role.VIEWER)]
Operator = Annotated[Principal, requires(Role.OPERATOR)]


@router.get("", summary="Approvals, oldest first (pending ones by default)", **guarded(Role.VIEWER))
async def list_approvals(
    ctx: Context,
    status: Annotated[ApprovalStatus, Query()] = "pending",
    assignee: Annotated[
        str | None,
        Query(
            max_length=500,
            description="`user:<name>`, `group:<name>`, or a bare user name: only approvals "
            "it is among the assignees of.",
        ),
    ] = None,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", pattern=WORKFLOW_ID_PATTERN, max_length=200)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ApprovalList:
    storable("assignee", assignee)
    async with ctx.engine.connect() as conn:
        found = await find_approvals_by(
            conn, status=status, assignee=assignee, workflow_id=workflow_id, limit=limit
        )
    return ApprovalList(items=[summary(a) for a in found])


@router.get(
    "/pending",
    summary="Pending approvals for the calling person, with quorum progress",
    description="The person is the bearer token's subject and its `groups` claim. With auth "
    "off, `assignee` (a user name) and `group` (repeatable) say who; without either, every "
    "pending approval is listed. Oldest first.",
    **guarded(Role.VIEWER),
)
async def pending_approvals(
    request: Request,
    ctx: Context,
    principal: Viewer,
    assignee: Annotated[
        str | None, Query(description="A user name (auth off only).", **_NAME)
    ] = None,
    group: Annotated[
        list[str] | None,
        Query(description="A group of the person (auth off only; repeatable).", max_length=50),
    ] = None,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", pattern=WORKFLOW_ID_PATTERN, max_length=200)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PendingApprovalList:
    for name in group or []:
        storable("group", name)
    person: Person | None
    if ctx.settings.api.auth.enabled:
        if assignee is not None or group:
            raise invalid_parameter(
                "assignee" if assignee is not None else "group",
                "the person is the bearer token's subject and groups when auth is on",
            )
        person = _token_person(request, principal)
    elif assignee is None and not group:
        person = None
    else:
        groups = tuple(g.removeprefix("group:") for g in group or ())
        person = Person((assignee or "").removeprefix("user:"), groups)
    entries = person_entries(person.user, person.groups) if person is not None else None
    async with ctx.engine.connect() as conn:
        found = await pending_for(conn, entries, workflow_id=workflow_id, limit=limit)
    user = person.user if person is not None else None
    return PendingApprovalList(items=[pending(p, user) for p in found])


@router.get(
    "/{instance_id}/{step_id}",
    summary="One step's approval: its decisions, quorum progress and refused decisions",
    **guarded(Role.VIEWER),
)
async def get_approval(
    instance_id: InstanceId, step_id: StepId, ctx: Context, principal: Viewer
) -> ApprovalDetail:
    async with ctx.engine.connect() as conn:
        found = await approvals_of_step(conn, str(instance_id), step_id)
        if not found:
            raise not_found(f"instance {instance_id} has no approval at step {step_id!r}")
        refusals = await refusals_of(conn, [found[0].approval.approval_id])
    latest = pending(found[0], principal.subject)
    return ApprovalDetail(
        **latest.model_dump(),
        refusals=[refused(r) for r in refusals],
        earlier_attempts=[summary(p.approval) for p in found[1:]],
    )


_DECIDE = {"status_code": 202, **guarded(Role.OPERATOR)}


@router.post(
    "/{instance_id}/{step_id}/approve",
    summary="Approve, as the calling person (publishes a signed decision)",
    **_DECIDE,
)
async def approve(
    instance_id: InstanceId,
    step_id: StepId,
    request: Request,
    ctx: Context,
    principal: Operator,
    body: DecisionRequest | None = None,
) -> DecisionPublished:
    return await _decide(ctx, request, principal, instance_id, step_id, "approve", body)


@router.post(
    "/{instance_id}/{step_id}/reject",
    summary="Reject, as the calling person (publishes a signed decision)",
    **_DECIDE,
)
async def reject(
    instance_id: InstanceId,
    step_id: StepId,
    request: Request,
    ctx: Context,
    principal: Operator,
    body: DecisionRequest | None = None,
) -> DecisionPublished:
    return await _decide(ctx, request, principal, instance_id, step_id, "reject", body)


async def _decide(
    ctx: ApiContext,
    request: Request,
    principal: Principal,
    instance_id: uuid.UUID,
    step_id: str,
    answer: Answer,
    body: DecisionRequest | None,
) -> DecisionPublished:
    body = body or DecisionRequest()
    person = _decider(ctx, request, principal, body)
    async with ctx.engine.connect() as conn:
        found = await approvals_of_step(conn, str(instance_id), step_id, limit=1)
    if not found:
        raise not_found(f"instance {instance_id} has no approval at step {step_id!r}")
    _check_decidable(found[0], person)
    approval = found[0].approval
    published = await publish_decision(
        ctx.broker,
        ctx.settings,
        approval_id=approval.approval_id,
        instance_id=approval.instance_id,
        decision=answer,
        person=person,
        comment=body.comment,
    )
    accepted = DecisionPublished(
        decision_id=published.event_id,
        decision=answer,
        approval_id=approval.approval_id,
        instance_id=approval.instance_id,
        step_id=approval.step_id,
        decided_by=person.user,
        groups=list(person.groups),
        topic=published.topic,
        partition=published.partition,
        offset=published.offset,
    )
    try:
        async with ctx.engine.begin() as conn:
            await record_audit(
                conn,
                actor=principal.subject or person.user,
                action="approval.decide",
                subject=approval.approval_id,
                details=accepted.model_dump(mode="json", by_alias=True) | {"comment": body.comment},
            )
    except Exception as exc:
        # The decision is on its topic already: answering an error would invite a repeat.
        log.error("approvals.audit_failed", error=repr(exc), approval_id=approval.approval_id)
    return accepted


def _decider(
    ctx: ApiContext, request: Request, principal: Principal, body: DecisionRequest
) -> Person:
    if not ctx.settings.api.auth.enabled:
        groups = tuple(g for g in body.groups or () if g)
        return Person(body.decided_by or ANONYMOUS_DECIDER, groups)
    for name in ("decided_by", "groups"):
        if getattr(body, name) is not None:
            pointer = "#/decidedBy" if name == "decided_by" else "#/groups"
            detail = "the decider is the bearer token's subject and groups when auth is on"
            raise ApiProblem(
                422,
                "invalid-request",
                f"{pointer[2:]}: {detail}",
                title="Invalid request",
                errors=[ProblemItem(detail=detail, pointer=pointer)],
            )
    return _token_person(request, principal)


def _token_person(request: Request, principal: Principal) -> Person:
    if not principal.subject:
        raise ApiProblem(403, "forbidden", "the bearer token names no subject (sub)")
    return Person(principal.subject, token_groups(request))


def _check_decidable(progress: ApprovalProgress, person: Person) -> None:
    """The rules the instance applies, checked first so that a person hears at once why a
    decision would change nothing; the instance checks them again when it arrives."""
    approval = progress.approval
    if approval.status != "pending":
        raise conflict(
            "approval-closed",
            f"approval {approval.approval_id} is {approval.status}: it takes no decisions",
            approvalStatus=approval.status,
        )
    if not any(matches(e, person.user, person.groups) for e in approval.assignees):
        raise ApiProblem(
            403,
            "not-an-assignee",
            f"{person.user} is not among the assignees of approval {approval.approval_id} "
            f"({', '.join(approval.assignees)})",
        )
    if any(d.get("by") == person.user for d in progress.decisions):
        raise conflict(
            "already-decided", f"{person.user} has already decided on {approval.approval_id}"
        )
    if approval.deadline is not None and approval.deadline < datetime.now(UTC):
        raise conflict(
            "deadline-passed",
            f"the deadline of approval {approval.approval_id} has passed",
        )
