"""Definitions: list, read, store new versions, validate, deprecate, delete, draw."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import orjson
import yaml
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.api.auth import Role, guarded
from flowbus.api.context import ApiContext, Context
from flowbus.api.limits import check_expanded, refusal
from flowbus.api.models import (
    WORKFLOW_ID_PATTERN,
    DefinitionChange,
    DefinitionSaved,
    DefinitionsDeleted,
    DefinitionVersion,
    StoredDefinition,
    ValidationReport,
    WorkflowList,
    WorkflowSummary,
)
from flowbus.api.problems import ApiProblem, ProblemItem, conflict, definition_items, not_found
from flowbus.definitions.errors import DefinitionConflict, DefinitionError
from flowbus.definitions.loader import validate_definition
from flowbus.definitions.mermaid import to_mermaid
from flowbus.definitions.model import WorkflowDefinition
from flowbus.limits import JsonLimits, LimitExceeded
from flowbus.service.definitions import store_definition
from flowbus.store.definitions import (
    DefinitionInUse,
    definition_from_row,
    delete_definition,
    set_deprecated,
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


def _summary(workflow_id: str, rows: list[Any]) -> WorkflowSummary:
    active = [r.version for r in rows if not r.deprecated]
    return WorkflowSummary(
        id=workflow_id,
        name=rows[-1].name,
        latest_version=rows[-1].version,
        active_version=max(active) if active else None,
        versions=[_version(r) for r in rows],
    )


def _version(row: Any) -> DefinitionVersion:
    return DefinitionVersion(
        version=row.version,
        deprecated=row.deprecated,
        name=row.name,
        description=row.description,
        checksum=row.checksum,
        created_at=row.created_at,
    )


async def _stored(conn: AsyncConnection, workflow_id: str, version: int | None) -> Any:
    row = await stored_definition(conn, workflow_id, version)
    if row is None:
        what = f"workflow {workflow_id!r}" + (f" version {version}" if version else "")
        raise not_found(f"{what} is not stored")
    return row


def _stored_model(row: Any) -> StoredDefinition:
    return StoredDefinition(id=row.workflow_id, document=row.document, **_version(row).model_dump())


@router.get("", summary="List workflows and their versions", **guarded(Role.VIEWER))
async def list_workflows(ctx: Context) -> WorkflowList:
    async with ctx.engine.connect() as conn:
        rows = await definition_versions(conn)
    by_workflow: dict[str, list[Any]] = {}
    for row in rows:
        by_workflow.setdefault(row.workflow_id, []).append(row)
    return WorkflowList(items=[_summary(w, versions) for w, versions in by_workflow.items()])


async def _save(
    ctx: Context, definition: WorkflowDefinition, response: Response
) -> DefinitionSaved:
    try:
        stored = await store_definition(ctx.engine, definition)
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
    return await _save(ctx, await _validated(await _document(request, ctx)), response)


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
        definition = await _checked(raw)
    except DefinitionError as exc:
        return ValidationReport(
            valid=False, id=exc.definition_id, problems=definition_items(exc.problems)
        )
    return ValidationReport(valid=True, id=definition.id, steps=len(definition.steps))


@router.get("/{workflow_id}", summary="The latest version of a workflow", **guarded(Role.VIEWER))
async def latest_definition(workflow_id: WorkflowId, ctx: Context) -> StoredDefinition:
    async with ctx.engine.connect() as conn:
        return _stored_model(await _stored(conn, workflow_id, None))


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
    return await _save(ctx, await _validated(raw), response)


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
async def list_versions(workflow_id: WorkflowId, ctx: Context) -> WorkflowSummary:
    async with ctx.engine.connect() as conn:
        rows = await definition_versions(conn, workflow_id)
    if not rows:
        raise not_found(f"workflow {workflow_id!r} is not stored")
    return _summary(workflow_id, rows)


@router.get(
    "/{workflow_id}/versions/{version}", summary="One stored version", **guarded(Role.VIEWER)
)
async def get_version(workflow_id: WorkflowId, version: Version, ctx: Context) -> StoredDefinition:
    async with ctx.engine.connect() as conn:
        return _stored_model(await _stored(conn, workflow_id, version))


@router.patch(
    "/{workflow_id}/versions/{version}",
    summary="Deprecate a version (it starts no new instances) or undo that",
    **guarded(Role.ADMIN),
)
async def change_version(
    workflow_id: WorkflowId, version: Version, change: DefinitionChange, ctx: Context
) -> StoredDefinition:
    async with ctx.engine.begin() as conn:
        if not await set_deprecated(conn, workflow_id, version, change.deprecated):
            raise not_found(f"workflow {workflow_id!r} version {version} is not stored")
        return _stored_model(await _stored(conn, workflow_id, version))


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
