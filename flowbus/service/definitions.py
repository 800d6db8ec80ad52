"""Definitions as the service layer needs them: active ones for triggers, any stored
version for running instances (loaded once, then kept)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.model import WorkflowDefinition
from flowbus.store.definitions import get_definition


class UnknownDefinition(LookupError):
    """No stored version of that workflow (or not that version)."""


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
