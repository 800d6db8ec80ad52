"""The topic catalog's JSON Schemas, for checking the events flowbus emits."""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from flowbus.topic_catalog import TOPICS_DIR, event_schemas


@cache
def validator_for(event_type: str) -> Draft202012Validator:
    """The validator of an event type's `data`, as the catalog declares it."""
    registry: Registry = Registry()
    for path in (TOPICS_DIR / "schemas").glob("*.json"):
        resource = Resource.from_contents(orjson.loads(path.read_bytes()))
        registry = registry.with_resource(path.name, resource)
    return Draft202012Validator(event_schemas()[event_type], registry=registry)


def contract_violations(events: list[dict[str, Any]]) -> list[str]:
    """Events whose type is not in the catalog, or whose data breaks its schema."""
    known = event_schemas()
    problems = []
    for event in events:
        if event["type"] not in known:
            problems.append(f"{event['type']}: not in topics/catalog.yaml")
            continue
        for error in validator_for(event["type"]).iter_errors(event["data"]):
            problems.append(f"{event['type']}: {error.json_path}: {error.message}")
    return problems
