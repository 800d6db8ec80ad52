"""What the API writes: commands and webhook events go onto Kafka, never straight into
PostgreSQL, so they enter the worker exactly as any producer's records would.

Commands are structured CloudEvents of type `flowbus.command.<kind>` on the commands topic,
keyed by instance id (an instance's commands stay in order); their id is the command id.

A webhook body goes onto its topic as it was sent. When the body is itself a CloudEvent
(`Content-Type: application/cloudevents+json`, or a JSON object with `specversion`) it is
published as that structured event. Otherwise the record value is the body, unchanged,
and the CloudEvents attributes ride in binary-mode `ce_*` headers: `ce-*` request headers
when given, else a new UUID id, the source `<deployment>/api`, and the body's own `type`
field (or the workflow's trigger type). Consumers that ignore headers see the plain JSON
they always saw; flowbus deduplicates on source + id, so a client that retries with the
same `ce-id` starts nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from flowbus.api.broker import Broker
from flowbus.api.problems import ApiProblem, ProblemItem
from flowbus.envelope import SPEC_VERSION, STRUCTURED_CONTENT_TYPE, cloudevent, encode
from flowbus.storable import nul_path
from flowbus.times import rfc3339

WEBHOOK_FALLBACK_TYPE = "flowbus.webhook"
_BINARY_ATTRIBUTES = ("id", "source", "type", "subject", "time", "dataschema")


@dataclass(frozen=True, slots=True)
class Published:
    event_id: str
    topic: str
    partition: int
    offset: int
    mode: Literal["structured", "binary"]


def api_source(deployment: str) -> str:
    return f"{deployment}/api"


async def publish_command(
    broker: Broker,
    *,
    topic: str,
    deployment: str,
    kind: str,
    instance_id: str,
    data: dict[str, Any],
) -> Published:
    """Publish a `flowbus.command.<kind>` CloudEvent for `instance_id`."""
    command_id = str(uuid.uuid4())
    event = cloudevent(
        id=command_id,
        source=api_source(deployment),
        type=f"flowbus.command.{kind}",
        time=rfc3339(datetime.now(UTC)),
        subject=instance_id,
        data=data,
    )
    meta = await broker.send(
        topic,
        encode(event),
        key=instance_id,
        headers=[("content-type", STRUCTURED_CONTENT_TYPE.encode())],
    )
    return Published(command_id, topic, meta.partition, meta.offset, "structured")


async def publish_webhook(
    broker: Broker,
    *,
    topic: str,
    deployment: str,
    body: bytes,
    content_type: str | None,
    headers: Mapping[str, str],
    key: str | None,
    default_type: str | None = None,
) -> Published:
    """Publish a webhook body to `topic` (see the module docstring for how)."""
    parsed = _json(body)
    unstorable = nul_path(parsed) if b"\\u0000" in body else None
    if unstorable is not None:
        raise _invalid(f"{unstorable} holds the NUL character (\\u0000), which cannot be stored")
    if key is not None and "\x00" in key:
        raise _invalid("the key holds the NUL character (\\u0000), which cannot be stored")
    structured = (content_type or "").split(";")[0].strip().lower() == STRUCTURED_CONTENT_TYPE
    if structured or (isinstance(parsed, dict) and "specversion" in parsed):
        event_id = _check_structured(parsed)
        meta = await broker.send(
            topic,
            body,
            key=key,
            headers=[("content-type", STRUCTURED_CONTENT_TYPE.encode())],
        )
        return Published(event_id, topic, meta.partition, meta.offset, "structured")
    attributes = {
        name: headers[f"ce-{name}"] for name in _BINARY_ATTRIBUTES if f"ce-{name}" in headers
    }
    given_version = headers.get("ce-specversion", SPEC_VERSION)
    if given_version != SPEC_VERSION:
        raise _invalid(f"ce-specversion {given_version!r} is not supported; use {SPEC_VERSION}")
    body_type = parsed.get("type") if isinstance(parsed, dict) else None
    attributes.setdefault("id", str(uuid.uuid4()))
    attributes.setdefault("source", api_source(deployment))
    attributes.setdefault(
        "type",
        body_type
        if isinstance(body_type, str) and body_type
        else default_type or WEBHOOK_FALLBACK_TYPE,
    )
    attributes.setdefault("time", rfc3339(datetime.now(UTC)))
    empty = [f"ce-{name}" for name, value in attributes.items() if not value]
    if empty:
        raise _invalid(f"CloudEvents header(s) must not be empty: {', '.join(empty)}")
    record_headers = [("ce_specversion", SPEC_VERSION.encode())]
    record_headers += [(f"ce_{name}", value.encode()) for name, value in attributes.items()]
    record_headers.append(("content-type", b"application/json"))
    meta = await broker.send(topic, body, key=key, headers=record_headers)
    return Published(attributes["id"], topic, meta.partition, meta.offset, "binary")


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiProblem(
            400,
            "malformed-json",
            f"the request body is not valid JSON: {exc}",
            title="Malformed JSON",
        ) from None


def _check_structured(event: Any) -> str:
    """The id of a structured CloudEvent, or a 422 saying what it lacks."""
    if not isinstance(event, dict):
        raise _invalid("a structured CloudEvent must be a JSON object")
    if event.get("specversion") != SPEC_VERSION:
        raise _invalid(f"specversion must be {SPEC_VERSION!r}", pointer="#/specversion")
    for name in ("id", "source", "type"):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise _invalid(f"the CloudEvent needs a non-empty {name!r}", pointer=f"#/{name}")
    event_id: str = event["id"]
    return event_id


def _invalid(detail: str, pointer: str | None = None) -> ApiProblem:
    items = [ProblemItem(detail=detail, pointer=pointer)] if pointer else None
    return ApiProblem(422, "invalid-event", detail, title="Invalid event", errors=items)


def command_data(**fields: Any) -> dict[str, Any]:
    """A command's fields (camelCase), leaving out the unset ones."""
    return {name: value for name, value in fields.items() if value is not None}
