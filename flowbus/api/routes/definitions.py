"""Definitions: list, read, store new versions, validate, deprecate, disable, delete, draw.

New instances start on the latest version, and only while it is not deprecated:
deprecating it stops triggers and starts that name no version instead of falling back to an
older version (a start naming an older, non-deprecated version still works). Disabling a
workflow stops every start of it (triggers, start commands, API starts: 409) until it is
enabled again; its running instances go on."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import orjson
import yaml
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.api.auth import Principal, Role, guarded, requires
from flowbus.api.context import ApiContext, Context
from flowbus.api.definition_views import WorkflowState, stored_definition_model, workflow_state
from flowbus.api.limits import check_expanded, refusal
from flowbus.api.models import (
    WORKFLOW_ID_PATTERN,
    DefinitionChange,
    DefinitionSaved,
    DefinitionsDeleted,
    StoredDefinition,
    ValidationReport,
    WorkflowList,
)
from flowbus.api.problems import ApiProblem, ProblemItem, conflict, definition_items, not_found
from flowbus.definitions.errors import DefinitionConflict, DefinitionError
from flowbus.definitions.loader import validate_definition
from flowbus.definitions.mermaid import to_mermaid
from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.tasks import ResolvedDocument
from flowbus.limits import JsonLimits, LimitExceeded
from flowbus.service.definitions import resolve_task_references, store_definition
from flowbus.store.definitions import (
    DefinitionInUse,
    definition_from_row,
    delete_definition,
    disabled_workflow_ids,
    set_deprecated,
    set_disabled,
    workflow_disabled,
)
from flowbus.store.read_models import definition_versions, stored_definition

router = APIRouter(prefix="/v1/definitions", tags=["definitions"])

WorkflowId = Annotated[
    str, Path(pattern=WORKFLOW_ID_PATTERN, max_length=200, description="The workflow id.")
]
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="A stored version.")]

_DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A workflow definition document (JSON, or YAML with "
        "`Content-Type: application/yaml`). Without `version` the store assigns the next.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/WorkflowDefinition"}},
            "application/yaml": {"schema": {"$ref": "#/components/schemas/WorkflowDefinition"}},
        },
    }
}
_MERMAID: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
}


def _with(role: Role, **extra: Any) -> dict[str, Any]:
    arguments = guarded(role)
    arguments["openapi_extra"] = {**arguments["openapi_extra"], **extra}
    return arguments


_YAML_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(body: bytes, limits: JsonLimits) -> Any:
    document = yaml.load(body, Loader=_YAML_LOADER)
    check_expanded(document, limits)
    return document


async def _document(request: Request, ctx: ApiContext) -> Any:
    body = await request.body()
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        if media in _YAML_MEDIA_TYPES:
            # YAML parses at seconds per megabyte: off the event loop, which keeps serving.
            return await anyio.to_thread.run_sync(_parse_yaml, body, ctx.body_limits)
        return orjson.loads(body)
    except LimitExceeded as exc:
        raise refusal(exc) from None
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ApiProblem(
            400,
            "malformed-json",
            f"the request body is not valid {'YAML' if 'yaml' in media else 'JSON'}: {exc}",
            title="Malformed document",
        ) from None
    except RecursionError:
        # Block-style YAML nests by indentation, which the byte check on bodies cannot see.
        raise ApiProblem(
            400, "too-deep", "the request body is nested too deeply", title="Request body too deep"
        ) from None


def _id_problem(raw: Any) -> ProblemItem | None:
    """A definition id that is not a string, which the definition checks cannot name."""
    if not isinstance(raw, dict):
        return None
    for key in ("id", "workflowId"):
        if key in raw and not isinstance(raw[key], str):
            return ProblemItem(detail=f"{key} must be a string", pointer=f"#/{key}", field=key)
    return None


async def _checked(raw: Any) -> WorkflowDefinition:
    """`validate_definition` off the event loop (a large definition takes a while); raises
    its `DefinitionError`."""
    try:
        return await anyio.to_thread.run_sync(validate_definition, raw)
    except RecursionError:
        raise ApiProblem(
            422,
            "invalid-definition",
            "the definition's steps nest or chain too deeply to be checked",
            title="Invalid definition",
        ) from None


async def _resolved(ctx: Context, raw: Any) -> ResolvedDocument:
    """`raw` with its steps' `taskId` references replaced by the stored tasks; 422 naming the
    step and field of a task or version that is not stored."""
    try:
        return await resolve_task_references(ctx.engine, raw)
    except DefinitionError as exc:
        raise ApiProblem(
            422,
            "invalid-definition",
            f"the definition is not valid: {exc}",
            title="Invalid definition",
            errors=definition_items(exc.problems),
        ) from None


async def _validated(raw: Any) -> WorkflowDefinition:
    wrong_id = _id_problem(raw)
    if wrong_id is not None:
        raise ApiProblem(
            422,
            "invalid-definition",
            f"the definition is not valid: {wrong_id.detail}",
            title="Invalid definition",
            errors=[wrong_id],
        )
    try:
        return await _checked(raw)
    except DefinitionError as exc:
        raise ApiProblem(
            422,
            "invalid-definition",
            f"the definition is not valid: {exc}",
            title="Invalid definition",
            errors=definition_items(exc.problems),
        ) from None


async def _stored(conn: AsyncConnection, workflow_id: str, version: int | None) -> Any:
    row = await stored_definition(conn, workflow_id, version)
    if row is None:
        what = f"workflow {workflow_id!r}" + (f" version {version}" if version else "")
        raise not_found(f"{what} is not stored")
    return row


@router.get("", summary="List workflows and their versions", **guarded(Role.VIEWER))
async def list_workflows(ctx: Context) -> WorkflowList:
    async with ctx.engine.connect() as conn:
        rows = await definition_versions(conn)
        disabled = await disabled_workflow_ids(conn)
    by_workflow: dict[str, list[Any]] = {}
    for row in rows:
        by_workflow.setdefault(row.workflow_id, []).append(row)
    return WorkflowList(
        items=[workflow_state(w, versions, w in disabled) for w, versions in by_workflow.items()]
    )


async def _save(ctx: Context, resolved: ResolvedDocument, response: Response) -> DefinitionSaved:
    definition = await _validated(resolved.document)
    try:
        stored = await store_definition(ctx.engine, definition, resolved.uses)
    except DefinitionConflict as exc:
        raise conflict("version-conflict", str(exc)) from None
    response.status_code = 201 if stored.created else 200
    if stored.created:
        response.headers["Location"] = f"/v1/definitions/{definition.id}/versions/{stored.version}"
    return DefinitionSaved(id=definition.id, version=stored.version, created=stored.created)


@router.post(
    "",
    summary="Store a definition (a new version when its content changed)",
    status_code=201,
    responses={200: {"description": "This content is already stored.", "model": DefinitionSaved}},
    **_with(Role.ADMIN, **_DOCUMENT_BODY),
)
async def create_definition(request: Request, response: Response, ctx: Context) -> DefinitionSaved:
    return await _save(ctx, await _resolved(ctx, await _document(request, ctx)), response)


@router.post(
    "/validate",
    summary="Check a definition without storing it",
    **_with(Role.VIEWER, **_DOCUMENT_BODY),
)
async def validate(request: Request, ctx: Context) -> ValidationReport:
    raw = await _document(request, ctx)
    wrong_id = _id_problem(raw)
    if wrong_id is not None:
        return ValidationReport(valid=False, problems=[wrong_id])
    try:
        definition = await _checked((await resolve_task_references(ctx.engine, raw)).document)
    except DefinitionError as exc:
        return ValidationReport(
            valid=False, id=exc.definition_id, problems=definition_items(exc.problems)
        )
    return ValidationReport(valid=True, id=definition.id, steps=len(definition.steps))


@router.get("/{workflow_id}", summary="The latest version of a workflow", **guarded(Role.VIEWER))
async def latest_definition(workflow_id: WorkflowId, ctx: Context) -> StoredDefinition:
    async with ctx.engine.connect() as conn:
        return stored_definition_model(await _stored(conn, workflow_id, None))


@router.put(
    "/{workflow_id}",
    summary="Store a new version of a workflow (the body's id must match or be left out)",
    status_code=201,
    responses={200: {"description": "This content is already stored.", "model": DefinitionSaved}},
    **_with(Role.ADMIN, **_DOCUMENT_BODY),
)
async def update_definition(
    workflow_id: WorkflowId, request: Request, response: Response, ctx: Context
) -> DefinitionSaved:
    raw = await _document(request, ctx)
    if isinstance(raw, dict):
        given = raw.get("id", raw.get("workflowId"))
        if given is not None and given != workflow_id:
            raise ApiProblem(
                422,
                "invalid-definition",
                f"the body's id {given!r} is not the path's {workflow_id!r}",
                title="Invalid definition",
            )
        if given is None:
            raw = {"id": workflow_id, **raw}
    return await _save(ctx, await _resolved(ctx, raw), response)


@router.delete(
    "/{workflow_id}",
    summary="Delete every version of a workflow (refused while instances of it run)",
    **guarded(Role.ADMIN),
)
async def delete_workflow(workflow_id: WorkflowId, ctx: Context) -> DefinitionsDeleted:
    return await _delete(ctx, workflow_id, None)


async def _delete(ctx: Context, workflow_id: str, version: int | None) -> DefinitionsDeleted:
    try:
        async with ctx.engine.begin() as conn:
            versions = await delete_definition(conn, workflow_id, version)
    except DefinitionInUse as exc:
        raise conflict("definition-in-use", str(exc)) from None
    if not versions:
        what = f"workflow {workflow_id!r}" + (f" version {version}" if version else "")
        raise not_found(f"{what} is not stored")
    return DefinitionsDeleted(id=workflow_id, versions=versions)


@router.get(
    "/{workflow_id}/versions", summary="The stored versions of a workflow", **guarded(Role.VIEWER)
)
async def list_versions(workflow_id: WorkflowId, ctx: Context) -> WorkflowState:
    async with ctx.engine.connect() as conn:
        return await _state(conn, workflow_id)


async def _state(conn: AsyncConnection, workflow_id: str) -> WorkflowState:
    rows = await definition_versions(conn, workflow_id)
    if not rows:
        raise not_found(f"workflow {workflow_id!r} is not stored")
    return workflow_state(workflow_id, rows, await workflow_disabled(conn, workflow_id))


@router.put(
    "/{workflow_id}/disabled",
    summary="Disable a workflow as a whole: nothing starts it; running instances go on",
    **guarded(Role.ADMIN),
)
async def disable_workflow(
    workflow_id: WorkflowId, ctx: Context, principal: Annotated[Principal, requires(Role.ADMIN)]
) -> WorkflowState:
    return await _set_disabled(ctx, workflow_id, True, principal.subject)


@router.delete(
    "/{workflow_id}/disabled", summary="Enable a disabled workflow again", **guarded(Role.ADMIN)
)
async def enable_workflow(workflow_id: WorkflowId, ctx: Context) -> WorkflowState:
    return await _set_disabled(ctx, workflow_id, False, None)


async def _set_disabled(
    ctx: Context, workflow_id: str, disabled: bool, by: str | None
) -> WorkflowState:
    async with ctx.engine.begin() as conn:
        if not await set_disabled(conn, workflow_id, disabled, by):
            raise not_found(f"workflow {workflow_id!r} is not stored")
        return await _state(conn, workflow_id)


@router.get(
    "/{workflow_id}/versions/{version}", summary="One stored version", **guarded(Role.VIEWER)
)
async def get_version(workflow_id: WorkflowId, version: Version, ctx: Context) -> StoredDefinition:
    async with ctx.engine.connect() as conn:
        return stored_definition_model(await _stored(conn, workflow_id, version))


@router.patch(
    "/{workflow_id}/versions/{version}",
    summary="Deprecate a version (it starts no new instances; the latest one deprecated, "
    "triggers start nothing) or undo that",
    **guarded(Role.ADMIN),
)
async def change_version(
    workflow_id: WorkflowId, version: Version, change: DefinitionChange, ctx: Context
) -> StoredDefinition:
    async with ctx.engine.begin() as conn:
        if not await set_deprecated(conn, workflow_id, version, change.deprecated):
            raise not_found(f"workflow {workflow_id!r} version {version} is not stored")
        return stored_definition_model(await _stored(conn, workflow_id, version))


@router.delete(
    "/{workflow_id}/versions/{version}",
    summary="Delete one version (refused while instances of it run)",
    **guarded(Role.ADMIN),
)
async def delete_version(
    workflow_id: WorkflowId, version: Version, ctx: Context
) -> DefinitionsDeleted:
    return await _delete(ctx, workflow_id, version)


@router.get(
    "/{workflow_id}/mermaid",
    summary="The latest version's step graph as a Mermaid flowchart",
    response_class=PlainTextResponse,
    responses=_MERMAID,
    **guarded(Role.VIEWER),
)
async def latest_mermaid(workflow_id: WorkflowId, ctx: Context) -> PlainTextResponse:
    return await _mermaid(ctx, workflow_id, None)


@router.get(
    "/{workflow_id}/versions/{version}/mermaid",
    summary="A version's step graph as a Mermaid flowchart",
    response_class=PlainTextResponse,
    responses=_MERMAID,
    **guarded(Role.VIEWER),
)
async def version_mermaid(
    workflow_id: WorkflowId, version: Version, ctx: Context
) -> PlainTextResponse:
    return await _mermaid(ctx, workflow_id, version)


async def _mermaid(ctx: Context, workflow_id: str, version: int | None) -> PlainTextResponse:
    async with ctx.engine.connect() as conn:
        row = await _stored(conn, workflow_id, version)
    return PlainTextResponse(to_mermaid(definition_from_row(row)))
