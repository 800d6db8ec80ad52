"""Definitions as the service layer needs them: the one way to store them (used by the
worker at start, the API, and through it the CLI, and the dev stack), active ones for
triggers, and any stored version for running instances (loaded once, then kept)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.loader import load_path
from flowbus.definitions.model import WorkflowDefinition
from flowbus.store.definitions import get_definition, save_definition


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


async def store_definition(engine: AsyncEngine, definition: WorkflowDefinition) -> StoredVersion:
    """Store a definition that `validate_definition` accepted, in a transaction of its own.

    New content becomes a new version and running workers reload at once (PostgreSQL
    NOTIFY, sent on commit); content already stored is a no-op; other content under a
    version that is already stored is refused with `DefinitionConflict`.
    """
    async with engine.begin() as conn:
        stored, created = await save_definition(conn, definition)
    return StoredVersion(stored, created)


async def store_definitions(
    engine: AsyncEngine, definitions: Iterable[WorkflowDefinition]
) -> list[StoredVersion]:
    """`store_definition` for each, in order."""
    return [await store_definition(engine, definition) for definition in definitions]


async def store_definition_files(engine: AsyncEngine, path: Path) -> list[StoredVersion]:
    """Validate every definition file at `path` (a file or a folder), then store them: one
    invalid file (`DefinitionError`) stores none."""
    return await store_definitions(engine, load_path(path))


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
