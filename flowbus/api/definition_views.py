"""How stored definitions read in API answers: a workflow with its versions, whether it is
disabled and the version new instances start on; one stored version with its document."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowbus.api.models import DefinitionVersion, StoredDefinition, WorkflowSummary


class WorkflowState(WorkflowSummary):
    disabled: bool = Field(description="A disabled workflow starts no instances at all.")


def workflow_state(workflow_id: str, rows: list[Any], disabled: bool = False) -> WorkflowState:
    latest = rows[-1]
    startable = not disabled and not latest.deprecated
    return WorkflowState(
        id=workflow_id,
        name=latest.name,
        latest_version=latest.version,
        active_version=latest.version if startable else None,
        versions=[version_of(r) for r in rows],
        disabled=disabled,
    )


def version_of(row: Any) -> DefinitionVersion:
    return DefinitionVersion(
        version=row.version,
        deprecated=row.deprecated,
        name=row.name,
        description=row.description,
        checksum=row.checksum,
        created_at=row.created_at,
    )


def stored_definition_model(row: Any) -> StoredDefinition:
    return StoredDefinition(
        id=row.workflow_id, document=row.document, **version_of(row).model_dump()
    )
