"""What the recorder keeps of a record: a dead letter's row, or a refused decision's.

Nothing a record holds is trusted. Every text is cut to a bound, and the NUL character
(which PostgreSQL text cannot hold) is written as `\\u0000`; a record that is not a
readable flowbus event still becomes a row (`kind` = `unreadable`), so nothing on the
dead-letter topic goes unseen.

A dead-letter event quotes the record: `value` is the start of its value as text (at
most 64 KiB), decoded with replacement characters. The copy is taken as the whole value
(`value_complete`, so a replay may publish it) only when that is certain enough to act on:
it has no replacement character, is under 64 KiB, and is a JSON object or array; a value
that was cut is neither of the latter (a cut object or array does not parse). A dead-letter
event that states the value's size (`valueBytes`) is judged by that instead.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from flowbus.times import parse_time

DEAD_LETTER = "flowbus.deadletter"
PARKED = "flowbus.outbox.parked"
REFUSED = "flowbus.approval.decision_refused"

COPY_LIMIT = 65536
"""Bytes of a value a dead-letter event quotes at most (see `flowbus.ingest.batch`)."""
TEXT_LIMIT = 4096
NAME_LIMIT = 500
READ_LIMIT = 2_000_000
"""Records larger than this on the recorded topics are not parsed (flowbus writes none)."""
_CUT_KEY = re.compile(r"… \(\d+ characters in all\)$")


def dead_letter_row(
    topic: str, partition: int, offset: int, timestamp_ms: int | None, value: bytes | None
) -> dict[str, Any]:
    """The `dead_letters` row of one record of the dead-letter topic."""
    row: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "event_id": None,
        "kind": "unreadable",
        "reason": "",
        "definition_id": None,
        "source_topic": None,
        "source_partition": None,
        "source_offset": None,
        "event_type": None,
        "key": None,
        "key_complete": False,
        "value": None,
        "value_complete": False,
        "dead_lettered_at": _record_time(timestamp_ms),
    }
    event, why = _event(value)
    if event is None:
        row["reason"] = f"not a flowbus dead-letter event: {why}"
        row["value"] = value[:COPY_LIMIT] if value else None
        return row
    data = event.get("data")
    kind = event.get("type")
    row["event_id"] = _text(event.get("id"), NAME_LIMIT)
    row["dead_lettered_at"] = _time(event.get("time")) or row["dead_lettered_at"]
    if kind == DEAD_LETTER and isinstance(data, dict):
        row.update(_dead_letter(data))
    elif kind == PARKED and isinstance(data, dict):
        row.update(_parked(data))
    else:
        row["reason"] = f"not a flowbus dead-letter event: type {_text(kind, 200)!r}"
        row["value"] = value[:COPY_LIMIT] if value else None
    return row


def _dead_letter(data: dict[str, Any]) -> dict[str, Any]:
    key = data.get("key")
    copy = data.get("value")
    copied, whole = _bytes(copy) if isinstance(copy, str) else (None, False)
    size = _integer(data.get("valueBytes"))
    if size is not None:
        complete = whole and copied is not None and len(copied) == size
    else:
        complete = whole and copied is not None and _whole_json(copied)
    key_bytes, key_whole = _bytes(key) if isinstance(key, str) else (None, key is None)
    return {
        "kind": "deadletter",
        "reason": _text(data.get("reason"), TEXT_LIMIT) or "no reason given",
        "definition_id": _text(data.get("definitionId"), NAME_LIMIT),
        "source_topic": _text(data.get("topic"), NAME_LIMIT),
        "source_partition": _integer(data.get("partition")),
        "source_offset": _integer(data.get("offset")),
        "event_type": _event_type(copied) if complete and copied is not None else None,
        "key": key_bytes,
        "key_complete": key_whole and not (isinstance(key, str) and _CUT_KEY.search(key)),
        "value": copied,
        "value_complete": complete,
    }


def _parked(data: dict[str, Any]) -> dict[str, Any]:
    reason = _text(data.get("reason"), NAME_LIMIT) or "refused by the broker"
    error = _text(data.get("error"), TEXT_LIMIT)
    key = data.get("key")
    return {
        "kind": "parked",
        "reason": f"outbox event parked: {reason}" + (f" ({error})" if error else ""),
        "source_topic": _text(data.get("topic"), NAME_LIMIT),
        "event_type": None,
        "key": _bytes(key)[0] if isinstance(key, str) else None,
    }


def refusal_row(value: bytes | None) -> dict[str, Any] | None:
    """The `decision_refusals` row of a record of the approvals topic, or None when it is
    not a refused decision of a known approval (an approval and an instance named by
    their UUIDs)."""
    if value is None or REFUSED.encode() not in value:
        return None
    event, _ = _event(value)
    if event is None or event.get("type") != REFUSED or not isinstance(event.get("data"), dict):
        return None
    data: dict[str, Any] = event["data"]
    approval_id = _uuid(data.get("approvalId"))
    instance_id = _uuid(data.get("instanceId")) or _uuid(event.get("subject"))
    event_id = _text(event.get("id"), NAME_LIMIT)
    refused_at = _time(event.get("time"))
    if approval_id is None or instance_id is None or not event_id or refused_at is None:
        return None
    return {
        "event_id": event_id,
        "approval_id": approval_id,
        "instance_id": instance_id,
        "decided_by": _text(data.get("decidedBy"), NAME_LIMIT),
        "decision": _text(data.get("decision"), 20),
        "reason": _text(data.get("reason"), TEXT_LIMIT) or "no reason given",
        "decision_id": _text(data.get("decisionId"), NAME_LIMIT),
        "numbered": "flowbusseq" in event,
        "refused_at": refused_at,
    }


def _event(value: bytes | None) -> tuple[dict[str, Any] | None, str]:
    if value is None:
        return None, "the record has no value"
    if len(value) > READ_LIMIT:
        return None, f"the value is {len(value)} bytes, more than flowbus writes"
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, "the value is not JSON"
    if not isinstance(event, dict):
        return None, "the value is not a JSON object"
    return event, ""


def _text(value: Any, limit: int) -> str | None:
    """A bounded, storable text of `value` (None stays None)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} characters in all)"
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\\u0000")


def _bytes(text: str) -> tuple[bytes | None, bool]:
    """The UTF-8 of `text`, and whether it is exactly what was sent: no replacement
    character, nothing that UTF-8 cannot hold."""
    try:
        return text.encode("utf-8"), "\ufffd" not in text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace"), False


def _whole_json(value: bytes) -> bool:
    if len(value) >= COPY_LIMIT:
        return False
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict | list)


def _event_type(value: bytes) -> str | None:
    """The quoted event's type: its `type` (a CloudEvent's, or a plain JSON body's)."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    kind = parsed.get("type") if isinstance(parsed, dict) else None
    return _text(kind, NAME_LIMIT) if isinstance(kind, str) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = parse_time(value)
        moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment


def _record_time(timestamp_ms: int | None) -> datetime:
    if timestamp_ms is not None and timestamp_ms > 0:
        try:
            return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return datetime.now(UTC)
