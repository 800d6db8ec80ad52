"""Tasks: list, read and store versions of the reusable tasks that steps reference by
`taskId` (`flowbus.definitions.tasks`), with the definition versions made from each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request, Response
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.api.auth import Role, guarded
from flowbus.api.context import Context
from flowbus.api.models import WORKFLOW_ID_PATTERN, ApiModel
from flowbus.api.problems import ApiProblem, conflict, definition_items, not_found
from flowbus.api.routes.definitions import _document
from flowbus.definitions.errors import DefinitionConflict, DefinitionError
from flowbus.definitions.tasks import TaskDefinition, validate_task
from flowbus.service.definitions import store_task
from flowbus.store.tasks import stored_task, task_versions, uses_of_task

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

TaskId = Annotated[
    str, Path(pattern=WORKFLOW_ID_PATTERN, max_length=200, description="The task id.")
]
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="A stored version.")]


class TaskVersion(ApiModel):
    version: int
    name: str | None = None
    description: str | None = None
    action: str
    checksum: str
    created_at: datetime


class TaskSummary(ApiModel):
    id: str
    name: str | None = None
    latest_version: int
    versions: list[TaskVersion]


class TaskList(ApiModel):
    items: list[TaskSummary]


class TaskUsed(ApiModel):
    workflow_id: str
    workflow_version: int
    step_id: str
    task_version: int


class StoredTaskVersion(TaskVersion):
    id: str
    document: dict[str, Any] = Field(description="The task document as stored.")
    used_by: list[TaskUsed] = Field(
        description="The definition versions whose steps were made from this task version."
    )


class TaskSaved(ApiModel):
    id: str
    version: int
    created: bool = Field(description="False when this content was already stored.")


_TASK_BODY = {
    "requestBody": {
        "required": True,
        "description": "A task document (JSON, or YAML with `Content-Type: application/yaml`): "
        "id, action, config, and optionally name, description, version, inputSchema, "
        "outputSchema, retryPolicy, timeout, compensate. Without `version` the store assigns "
        "the next.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "object"}},
        },
    }
}


def _with_body(role: Role) -> dict[str, Any]:
    arguments = guarded(role)
    arguments["openapi_extra"] = {**arguments["openapi_extra"], **_TASK_BODY}
    return arguments


def _version(row: Any) -> TaskVersion:
    return TaskVersion(
        version=row.version,
        name=row.name,
        description=row.description,
        action=row.action,
        checksum=row.checksum,
        created_at=row.created_at,
    )


def _summary(task_id: str, rows: list[Any]) -> TaskSummary:
    return TaskSummary(
        id=task_id,
        name=rows[-1].name,
        latest_version=rows[-1].version,
        versions=[_version(r) for r in rows],
    )


async def _stored(conn: AsyncConnection, task_id: str, version: int | None) -> StoredTaskVersion:
    row = await stored_task(conn, task_id, version)
    if row is None:
        what = f"task {task_id!r}" + (f" version {version}" if version else "")
        raise not_found(f"{what} is not stored")
    uses = await uses_of_task(conn, task_id, row.version)
    return StoredTaskVersion(
        id=row.task_id,
        document=row.document,
        used_by=[
            TaskUsed(
                workflow_id=u.workflow_id,
                workflow_version=u.workflow_version,
                step_id=u.step_id,
                task_version=u.task_version,
            )
            for u in uses
        ],
        **_version(row).model_dump(),
    )


async def _validated(raw: Any) -> TaskDefinition:
    try:
        return await anyio.to_thread.run_sync(validate_task, raw)
    except DefinitionError as exc:
        raise ApiProblem(
            422,
            "invalid-task",
            f"the task is not valid: {exc}",
            title="Invalid task",
            errors=definition_items(exc.problems),
        ) from None


async def _save(ctx: Context, task: TaskDefinition, response: Response) -> TaskSaved:
    try:
        stored = await store_task(ctx.engine, task)
    except DefinitionConflict as exc:
        raise conflict("version-conflict", str(exc)) from None
    response.status_code = 201 if stored.created else 200
    if stored.created:
        response.headers["Location"] = f"/v1/tasks/{task.id}/versions/{stored.version}"
    return TaskSaved(id=task.id, version=stored.version, created=stored.created)


@router.get("", summary="List tasks and their versions", **guarded(Role.VIEWER))
async def list_tasks(ctx: Context) -> TaskList:
    async with ctx.engine.connect() as conn:
        rows = await task_versions(conn)
    by_task: dict[str, list[Any]] = {}
    for row in rows:
        by_task.setdefault(row.task_id, []).append(row)
    return TaskList(items=[_summary(t, versions) for t, versions in by_task.items()])


@router.post(
    "",
    summary="Store a task (a new version when its content changed)",
    status_code=201,
    responses={200: {"description": "This content is already stored.", "model": TaskSaved}},
    **_with_body(Role.ADMIN),
)
async def create_task(request: Request, response: Response, ctx: Context) -> TaskSaved:
    return await _save(ctx, await _validated(await _document(request, ctx)), response)


@router.get("/{task_id}", summary="The latest version of a task", **guarded(Role.VIEWER))
async def latest_task(task_id: TaskId, ctx: Context) -> StoredTaskVersion:
    async with ctx.engine.connect() as conn:
        return await _stored(conn, task_id, None)


@router.put(
    "/{task_id}",
    summary="Store a new version of a task (the body's id must match or be left out)",
    status_code=201,
    responses={200: {"description": "This content is already stored.", "model": TaskSaved}},
    **_with_body(Role.ADMIN),
)
async def update_task(
    task_id: TaskId, request: Request, response: Response, ctx: Context
) -> TaskSaved:
    raw = await _document(request, ctx)
    if isinstance(raw, dict):
        given = raw.get("id", raw.get("taskId"))
        if given is not None and given != task_id:
            raise ApiProblem(
                422,
                "invalid-task",
                f"the body's id {given!r} is not the path's {task_id!r}",
                title="Invalid task",
            )
        if given is None:
            raw = {"id": task_id, **raw}
    return await _save(ctx, await _validated(raw), response)


@router.get("/{task_id}/versions", summary="The stored versions of a task", **guarded(Role.VIEWER))
async def list_task_versions(task_id: TaskId, ctx: Context) -> TaskSummary:
    async with ctx.engine.connect() as conn:
        rows = await task_versions(conn, task_id)
    if not rows:
        raise not_found(f"task {task_id!r} is not stored")
    return _summary(task_id, rows)


@router.get(
    "/{task_id}/versions/{version}",
    summary="One stored version, with the definition versions made from it",
    **guarded(Role.VIEWER),
)
async def get_task_version(task_id: TaskId, version: Version, ctx: Context) -> StoredTaskVersion:
    async with ctx.engine.connect() as conn:
        return await _stored(conn, task_id, version)
