"""Stored definition versions as the pages need them: the API's document, and the parsed
definition behind the graph (parsed once per stored content: versions are immutable)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flowbus.dashboard.client import Api
from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import validate_definition
from flowbus.definitions.model import WorkflowDefinition

_PARSED: OrderedDict[str, WorkflowDefinition | None] = OrderedDict()
_PARSED_LIMIT = 256


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version as `GET /v1/definitions/{id}/versions/{v}` returns it, parsed."""

    stored: dict[str, Any]
    definition: WorkflowDefinition | None

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = self.stored.get("document") or {}
        return document

    @property
    def code_first(self) -> bool:
        return self.document.get("kind") == "code"


def _parsed(stored: dict[str, Any]) -> WorkflowDefinition | None:
    key = f"{stored.get('id')}/{stored.get('version')}/{stored.get('checksum')}"
    if key in _PARSED:
        _PARSED.move_to_end(key)
        return _PARSED[key]
    document = dict(stored.get("document") or {})
    document["version"] = stored.get("version")
    try:
        parsed: WorkflowDefinition | None = validate_definition(document)
    except (DefinitionError, ValueError, TypeError):
        parsed = None
    _PARSED[key] = parsed
    if len(_PARSED) > _PARSED_LIMIT:
        _PARSED.popitem(last=False)
    return parsed


def path_of(workflow_id: str, version: int | None = None) -> str:
    base = f"/v1/definitions/{quote(workflow_id, safe='')}"
    return base if version is None else f"{base}/versions/{version}"


async def stored_version(api: Api, workflow_id: str, version: int | None) -> StoredVersion | None:
    """The version (the latest when None), or None when it is not stored."""
    stored = await api.optional(path_of(workflow_id, version))
    if stored is None:
        return None
    return StoredVersion(stored, _parsed(stored))
