"""Result and command records: CloudEvents 1.0 in structured JSON, as the protocol says."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from flowbus.sdk.values import dumps
from flowbus.times import rfc3339

CONTENT_TYPE = "application/cloudevents+json"
HEADERS = [("content-type", CONTENT_TYPE.encode())]


def source() -> str:
    """`flowbus-sdk/<hostname>`: where this worker's records come from."""
    return f"flowbus-sdk/{socket.gethostname()}"


def encode(event_type: str, subject: str, data: Any, origin: str) -> bytes:
    """A structured CloudEvent of `event_type` about `subject` carrying `data`."""
    return dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": origin,
            "type": event_type,
            "subject": subject,
            "time": rfc3339(datetime.now(UTC)),
            "datacontenttype": "application/json",
            "data": data,
        }
    )


class BadRecord(ValueError):
    """A record on the tasks topic that is not a structured CloudEvent with a JSON object."""


def decode(value: bytes | None) -> tuple[str, dict[str, Any]]:
    """The event type and data of a structured CloudEvent; `BadRecord` otherwise."""
    if not value:
        raise BadRecord("empty record")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise BadRecord(f"not JSON: {exc}") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise BadRecord("not a structured CloudEvent")
    data = event.get("data")
    if not isinstance(data, dict):
        raise BadRecord(f"{event['type']}: data is not a JSON object")
    return event["type"], data
