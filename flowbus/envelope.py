"""CloudEvents in and out, and the normalised view of a consumed domain event.

flowbus emits CloudEvents 1.0 in *structured* JSON mode: the Kafka record value is
the whole event as JSON and the `content-type` header is `application/cloudevents+json`.
On input it accepts structured CloudEvents, binary-mode CloudEvents (`ce_*` headers,
value = data) and plain JSON.

Every part of a consumed record is measured against `RecordLimits` before it is decoded or
parsed (value size and nesting depth, key size, header count and size, and the decoded
`data_base64`), so a hostile record is refused in milliseconds with the limit it broke.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from flowbus.limits import JsonLimits, LimitExceeded
from flowbus.storable import nul_path

SPEC_VERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
_REQUIRED_ATTRIBUTES = ("id", "source", "type")
# Context attributes and data members of the spec; anything else is an extension.
_ATTRIBUTES = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
    }
)


class BadEvent(ValueError):
    """A consumed record that cannot be read as an event; carries the reason."""


@dataclass(frozen=True, slots=True)
class RecordLimits:
    """Bounds on one consumed record, each checked before the part it bounds is decoded.

    `json` bounds the value (size and nesting depth) and the JSON decoded from a
    structured CloudEvent's `data_base64`. The key and the headers become attributes of
    the event, its identity and the document triggers see, so they are held to much
    smaller bounds than the value.
    """

    json: JsonLimits
    max_key_bytes: int = 4096
    max_headers: int = 64
    max_header_bytes: int = 65536

    def check(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
    ) -> None:
        """Raise `BadEvent` naming the first bound the raw record breaks."""
        if value is not None and len(value) > self.json.max_bytes:
            raise BadEvent(f"value is {len(value)} bytes, over the limit of {self.json.max_bytes}")
        if key is not None and len(key) > self.max_key_bytes:
            raise BadEvent(
                f"record key is {len(key)} bytes, over the limit of {self.max_key_bytes}"
            )
        if len(headers) > self.max_headers:
            raise BadEvent(
                f"record has {len(headers)} headers, over the limit of {self.max_headers}"
            )
        size = sum(len(name) + len(raw or b"") for name, raw in headers)
        if size > self.max_header_bytes:
            raise BadEvent(
                f"record headers are {size} bytes, over the limit of {self.max_header_bytes}"
            )

    def loads(self, raw: bytes, what: str) -> Any:
        """Parse JSON `raw` after checking its size and depth; `what` names it in reasons."""
        try:
            return self.json.loads(raw, what)
        except LimitExceeded as exc:
            raise BadEvent(str(exc)) from None
        except orjson.JSONDecodeError as exc:
            raise BadEvent(f"{what} is not JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A consumed record, normalised: CloudEvents attributes, the JSON body, Kafka metadata."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: Mapping[str, str]
    data: Any
    id: str
    type: str | None = None
    source: str | None = None
    subject: str | None = None
    time: str | None = None
    is_cloudevent: bool = False
    extensions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        """Identity of the event: CloudEvents source+id, else the record's position."""
        if self.is_cloudevent:
            return f"ce:{self.source}:{self.id}"
        return f"kafka:{self.topic}:{self.partition}:{self.offset}"

    def match_document(self) -> dict[str, Any]:
        """The document trigger patterns, transforms and templates see as `trigger`."""
        return {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "topic": self.topic,
            "key": self.key,
            "headers": dict(self.headers),
            "data": self.data,
        }


def decode_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is None:
            continue
        try:
            result[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return result


def parse_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    limits: RecordLimits,
) -> DomainEvent:
    """Read one Kafka record as an event, or raise `BadEvent` saying why not.

    The record is held to `limits` before anything in it is decoded or parsed.
    """
    headers = headers or ()
    limits.check(key, value, headers)
    event = _parse_record(topic, partition, offset, key, value, headers, limits)
    # JSON can only carry NUL escaped, so the full walk runs only when the escape is there.
    suspicious = (
        (value is not None and b"\\u0000" in value)
        or any("\x00" in k or "\x00" in v for k, v in event.headers.items())
        or "\x00" in (event.key or "")
    )
    if suspicious:
        _refuse_nul(nul_path(event.match_document()))
    return event


def _refuse_nul(where: str | None) -> None:
    if where is not None:
        raise BadEvent(f"{where} contains a NUL character (\\u0000), which cannot be stored")


def _parse_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
    limits: RecordLimits,
) -> DomainEvent:
    text_headers = decode_headers(headers)
    text_key = key.decode("utf-8", errors="replace") if key is not None else None
    position = _Position(topic, partition, offset, text_key)
    if "ce_specversion" in text_headers:
        return _binary_cloudevent(position, text_headers, value, limits)
    if value is None:
        raise BadEvent("record has no value")
    body = limits.loads(value, "value")
    if isinstance(body, dict) and "specversion" in body:
        return _structured_cloudevent(position, text_headers, body, limits)
    plain_type = body.get("type") if isinstance(body, dict) else None
    return DomainEvent(
        *position,
        headers=text_headers,
        data=body,
        id=f"{topic}-{partition}-{offset}",
        type=plain_type if isinstance(plain_type, str) else None,
    )


class _Position(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: str | None


def _structured_cloudevent(
    position: _Position, headers: dict[str, str], body: dict[str, Any], limits: RecordLimits
) -> DomainEvent:
    if body.get("specversion") != SPEC_VERSION:
        raise BadEvent(f"unsupported CloudEvents specversion {_excerpt(body.get('specversion'))}")
    missing = [name for name in _REQUIRED_ATTRIBUTES if not _non_empty(body.get(name))]
    if missing:
        raise BadEvent(f"CloudEvent lacks required attribute(s): {', '.join(missing)}")
    return DomainEvent(
        *position,
        headers=headers,
        data=_structured_data(body, limits),
        id=body["id"],
        type=body["type"],
        source=body["source"],
        subject=_optional_str(body.get("subject")),
        time=_optional_str(body.get("time")),
        is_cloudevent=True,
        extensions={k: v for k, v in body.items() if k not in _ATTRIBUTES},
    )


def _structured_data(body: dict[str, Any], limits: RecordLimits) -> Any:
    """`data`, or the JSON that `data_base64` encodes (its decoded size and depth bounded)."""
    if "data_base64" not in body:
        return body.get("data")
    if "data" in body:
        raise BadEvent("CloudEvent has both data and data_base64")
    encoded = body["data_base64"]
    if not isinstance(encoded, str):
        raise BadEvent("CloudEvent data_base64 is not a string")
    content_type = body.get("datacontenttype")
    if content_type is not None and not _is_json(content_type):
        raise BadEvent(
            f"CloudEvent data_base64 holds {_excerpt(content_type)}, not JSON; "
            "flowbus reads only JSON data"
        )
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadEvent("CloudEvent data_base64 is not valid base64") from None
    data = limits.loads(raw, "CloudEvent data_base64 (decoded)")
    # The NUL check on the record value cannot see through base64.
    if b"\\u0000" in raw:
        _refuse_nul(nul_path(data, "data"))
    return data


def _is_json(content_type: Any) -> bool:
    if not isinstance(content_type, str):
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def _excerpt(value: Any, limit: int = 64) -> str:
    """A value from a record, quoted short: reasons quote records, never copy them."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + "…"
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    return repr(value)


def _binary_cloudevent(
    position: _Position, headers: dict[str, str], value: bytes | None, limits: RecordLimits
) -> DomainEvent:
    if headers["ce_specversion"] != SPEC_VERSION:
        raise BadEvent(f"unsupported CloudEvents specversion {_excerpt(headers['ce_specversion'])}")
    missing = [name for name in _REQUIRED_ATTRIBUTES if not _non_empty(headers.get(f"ce_{name}"))]
    if missing:
        raise BadEvent(
            f"CloudEvent lacks required header(s): {', '.join('ce_' + m for m in missing)}"
        )
    data = limits.loads(value, "binary CloudEvent data") if value is not None else None
    return DomainEvent(
        *position,
        headers=headers,
        data=data,
        id=headers["ce_id"],
        type=headers["ce_type"],
        source=headers["ce_source"],
        subject=headers.get("ce_subject"),
        time=headers.get("ce_time"),
        is_cloudevent=True,
        extensions={
            name[3:]: raw
            for name, raw in headers.items()
            if name.startswith("ce_") and name[3:] not in _ATTRIBUTES
        },
    )


def _non_empty(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def cloudevent(
    *,
    id: str,
    source: str,
    type: str,
    time: str,
    data: Any,
    subject: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A CloudEvents 1.0 event as a JSON-ready dict (structured mode)."""
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": id,
        "source": source,
        "type": type,
        "time": time,
        "datacontenttype": "application/json",
    }
    if subject is not None:
        event["subject"] = subject
    if extensions:
        event.update(extensions)
    event["data"] = data
    return event


def encode(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event)
