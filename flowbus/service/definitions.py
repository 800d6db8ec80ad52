"""Definitions as the service layer needs them: the one way to store them (used by the
worker at start, the API, and through it the CLI, and the dev stack), with the task
references of their steps resolved against the stored tasks; active ones for triggers, and
any stored version for running instances (loaded once, then kept)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import definition_files, parse_document, validate_definition
from flowbus.definitions.model import WorkflowDefinition
from flowbus.definitions.tasks import (
    ResolvedDocument,
    TaskDefinition,
    TaskUse,
    is_task_document,
    referenced_task_ids,
    resolve_tasks,
    validate_task,
)
from flowbus.store.definitions import get_definition, save_definition
from flowbus.store.tasks import record_task_uses, save_task, task_library

TASKS_FOLDER = "tasks"
"""Files in this folder of a workflows directory are tasks (as is any file of `kind: task`)."""


class UnknownDefinition(LookupError):
    """No stored version of that workflow (or not that version)."""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """What storing a definition did: the definition with its version, and whether that
    version is new (False: this content was already stored)."""

    definition: WorkflowDefinition
    created: bool

    @property
    def version(self) -> int:
        assert self.definition.version is not None
        return self.definition.version


@dataclass(frozen=True, slots=True)
class StoredTask:
    """What storing a task did: the task with its version, and whether that version is new."""

    task: TaskDefinition
    created: bool

    @property
    def version(self) -> int:
        assert self.task.version is not None
        return self.task.version


@dataclass(frozen=True, slots=True)
class StoredLibrary:
    """What storing a workflows directory did, tasks first."""

    tasks: list[StoredTask] = field(default_factory=list)
    definitions: list[StoredVersion] = field(default_factory=list)


async def store_definition(
    engine: AsyncEngine, definition: WorkflowDefinition, uses: Sequence[TaskUse] = ()
) -> StoredVersion:
    """Store a definition that `validate_definition` accepted, in a transaction of its own,
    with the task versions its steps were made from (`resolve_task_references`).

    New content becomes a new version and running workers reload at once (PostgreSQL
    NOTIFY, sent on commit); content already stored is a no-op; other content under a
    version that is already stored is refused with `DefinitionConflict`.
    """
    async with engine.begin() as conn:
        return await _save(conn, definition, uses)


async def _save(
    conn: AsyncConnection, definition: WorkflowDefinition, uses: Sequence[TaskUse]
) -> StoredVersion:
    stored, created = await save_definition(conn, definition)
    assert stored.version is not None
    await record_task_uses(conn, stored.id, stored.version, uses)
    return StoredVersion(stored, created)


async def resolve_task_references(engine: AsyncEngine, raw: Any) -> ResolvedDocument:
    """A raw definition document with its steps' `taskId` references replaced by the stored
    tasks (see `flowbus.definitions.tasks`), ready for `validate_definition`; raises
    `DefinitionError` naming each step whose task or version is not stored."""
    async with engine.connect() as conn:
        return await _resolved(conn, raw)


async def _resolved(conn: AsyncConnection, raw: Any) -> ResolvedDocument:
    wanted = referenced_task_ids(raw)
    return resolve_tasks(raw, await task_library(conn, wanted) if wanted else {})


async def store_document(engine: AsyncEngine, raw: Any, source: str | None = None) -> StoredVersion:
    """Resolve a raw definition document's task references, validate it and store it."""
    resolved = await resolve_task_references(engine, raw)
    definition = validate_definition(resolved.document, source)
    return await store_definition(engine, definition, resolved.uses)


async def store_task(engine: AsyncEngine, task: TaskDefinition) -> StoredTask:
    """Store a task that `validate_task` accepted, in a transaction of its own: new content
    becomes a new version, content already stored is a no-op, other content under a stored
    version is refused with `DefinitionConflict`. Stored workflow versions do not change:
    store a workflow again to make a version of it from the new task version."""
    async with engine.begin() as conn:
        stored, created = await save_task(conn, task)
    return StoredTask(stored, created)


async def store_definitions(
    engine: AsyncEngine, definitions: Iterable[WorkflowDefinition]
) -> list[StoredVersion]:
    """`store_definition` for each, in order."""
    return [await store_definition(engine, definition) for definition in definitions]


async def store_definition_files(engine: AsyncEngine, path: Path) -> list[StoredVersion]:
    """`store_library_files`, for the definitions it stored."""
    return (await store_library_files(engine, path)).definitions


def is_task_file(file: Path, path: Path, raw: Any) -> bool:
    """Whether `file`, found at `path` and parsed as `raw`, is a task: a document of
    `kind: task`, or any file in a `tasks` folder of `path`."""
    in_tasks = path.is_dir() and TASKS_FOLDER in file.relative_to(path).parts[:-1]
    return in_tasks or is_task_document(raw)


def library_documents(path: Path) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """The files at `path` (a file or a folder) as parsed documents: (tasks, definitions)."""
    tasks: list[tuple[str, Any]] = []
    definitions: list[tuple[str, Any]] = []
    for file in definition_files(path):
        raw = parse_document(file.read_text(), str(file))
        (tasks if is_task_file(file, path, raw) else definitions).append((str(file), raw))
    return tasks, definitions


def local_task_library(path: Path) -> dict[str, dict[int, TaskDefinition]]:
    """The valid tasks at `path` as a library (a task without a version as version 1), to
    check definitions against without a deployment; files that do not load are left out."""
    library: dict[str, dict[int, TaskDefinition]] = {}
    for file in definition_files(path):
        try:
            raw = parse_document(file.read_text(), str(file))
            if is_task_file(file, path, raw):
                task = validate_task(raw, str(file))
                library.setdefault(task.id, {})[task.version or 1] = task
        except DefinitionError:
            continue
    return library


async def store_library_files(engine: AsyncEngine, path: Path) -> StoredLibrary:
    """Store the tasks and definitions at `path` (a file or a folder) in one transaction:
    every file is validated (definitions once their task references are resolved, against
    the stored tasks and those at `path`) and one invalid file (`DefinitionError`) stores
    nothing."""
    task_documents, documents = library_documents(path)
    tasks = [validate_task(raw, source) for source, raw in task_documents]
    # Definitions without task references are checked before anything is stored.
    checked = [
        (source, raw, None if referenced_task_ids(raw) else validate_definition(raw, source))
        for source, raw in documents
    ]
    stored = StoredLibrary()
    async with engine.begin() as conn:
        for task in tasks:
            saved, created = await save_task(conn, task)
            stored.tasks.append(StoredTask(saved, created))
        for source, raw, definition in checked:
            uses: tuple[TaskUse, ...] = ()
            if definition is None:
                try:
                    resolved = await _resolved(conn, raw)
                except DefinitionError as exc:
                    raise DefinitionError(exc.definition_id, exc.problems, source) from None
                definition = validate_definition(resolved.document, source)
                uses = resolved.uses
            stored.definitions.append(await _save(conn, definition, uses))
    return stored


async def definition_version(
    conn: AsyncConnection, catalog: DefinitionCatalog, workflow_id: str, version: int
) -> WorkflowDefinition:
    found = catalog.version(workflow_id, version)
    if found is None:
        found = await get_definition(conn, workflow_id, version)
        if found is None:
            raise UnknownDefinition(f"{workflow_id} v{version} is not stored")
        catalog.remember(found)
    return found


async def definition_to_start(
    conn: AsyncConnection, catalog: DefinitionCatalog, workflow_id: str, version: int | None
) -> WorkflowDefinition:
    """The version a new instance starts on: the one asked for, else the latest active."""
    if version is not None:
        definition = await definition_version(conn, catalog, workflow_id, version)
        if definition.deprecated:
            raise UnknownDefinition(f"{workflow_id} v{version} is deprecated")
        return definition
    for active in catalog.active:
        if active.id == workflow_id:
            return active
    raise UnknownDefinition(f"no active version of workflow {workflow_id!r}")
