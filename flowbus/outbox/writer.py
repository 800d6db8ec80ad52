"""Turns engine effects, notices and dead letters into outbox rows; the unit of work
writes them in its transaction.

The last line of defence on size: the engine fails a step whose output or published
event is too large, but an event it could not foresee (an instance started with a large
input, a long error message) is never written over `limits.max_event_bytes` as it is.
Its largest `data` members are replaced, largest first, by `{"truncated": true,
"bytes": N}` until it fits (or its whole `data`, when that is not an object): the event
keeps its id and `flowbusseq`, so the instance's numbered events stay gap-free.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog

from flowbus import metrics
from flowbus.config import TopicNames
from flowbus.engine.effects import EmitEvent, PublishEvent
from flowbus.engine.limits import DEFAULT_LIMITS, Limits
from flowbus.envelope import STRUCTURED_CONTENT_TYPE, cloudevent, encode
from flowbus.limits import encoded_size

log = structlog.get_logger(__name__)

DEADLETTER_NAMESPACE = uuid.UUID("0d7e3f7a-5b8c-4c0e-9a51-3f3b2f0c8d42")
_HEADERS = [["content-type", STRUCTURED_CONTENT_TYPE]]


@dataclass(slots=True)
class OutboxBatch:
    """Rows for the outbox, written by the unit of work before it commits."""

    source: str
    topics: TopicNames
    limits: Limits = DEFAULT_LIMITS
    """The bounds of what this transaction may produce; the unit of work gives them to
    the engine, and no row is written over `max_event_bytes`."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    truncated: int = 0

    def emit(self, instance_id: str, effect: EmitEvent) -> None:
        event = cloudevent(
            id=effect.id,
            source=self.source,
            type=effect.type,
            time=effect.time,
            subject=instance_id,
            data=effect.data,
            extensions={"flowbusseq": effect.seq},
        )
        self._add(effect.id, getattr(self.topics, effect.channel), instance_id, event)

    def publish(self, effect: PublishEvent) -> None:
        event = cloudevent(
            id=effect.id,
            source=self.source,
            type=effect.type,
            time=effect.time,
            subject=effect.subject,
            data=effect.data,
        )
        self._add(effect.id, effect.topic, effect.key, event)

    def notice(
        self,
        *,
        identity: str,
        topic: str,
        type: str,
        time: str,
        key: str | None,
        data: dict[str, Any],
        subject: str | None = None,
    ) -> str:
        """An event about a consumed record (not an instance transition); `identity` makes
        its id stable across redeliveries."""
        event_id = str(uuid.uuid5(DEADLETTER_NAMESPACE, f"{type}|{identity}"))
        event = cloudevent(
            id=event_id, source=self.source, type=type, time=time, subject=subject, data=data
        )
        self._add(event_id, topic, key, event)
        return event_id

    def dead_letter(
        self, *, identity: str, time: str, key: str | None, data: dict[str, Any]
    ) -> str:
        """A dead-letter event; `identity` makes its id stable across redeliveries."""
        event_id = str(uuid.uuid5(DEADLETTER_NAMESPACE, identity))
        event = cloudevent(
            id=event_id, source=self.source, type="flowbus.deadletter", time=time, data=data
        )
        self._add(event_id, self.topics.deadletter, key, event)
        return event_id

    def _add(self, event_id: str, topic: str, key: str | None, event: dict[str, Any]) -> None:
        value = encode(event)
        if len(value) > self.limits.max_event_bytes:
            value = self._shrink(topic, event, len(value))
        self.rows.append(
            {
                "event_id": event_id,
                "topic": topic,
                "key": key.encode() if key is not None else None,
                "headers": _HEADERS,
                "value": value,
            }
        )

    def _shrink(self, topic: str, event: dict[str, Any], size: int) -> bytes:
        limit = self.limits.max_event_bytes
        data = event.get("data")
        value = b""
        if isinstance(data, dict):
            members = sorted(((encoded_size(v), k) for k, v in data.items()), reverse=True)
            smaller = dict(data)
            excess = size - limit
            for member_size, name in members:
                smaller[name] = _marker(member_size)
                excess -= member_size
                if excess < 0:
                    value = encode({**event, "data": smaller})
                    if len(value) <= limit:
                        break
        if not value or len(value) > limit:
            value = encode({**event, "data": _marker(encoded_size(data))})
        self.truncated += 1
        metrics.OUTBOX_TRUNCATED.inc()
        log.warning(
            "outbox.event_truncated",
            event_id=event.get("id"),
            type=event.get("type"),
            topic=topic,
            bytes=size,
            written=len(value),
            limit=limit,
        )
        return value


def _marker(size: int) -> dict[str, Any]:
    return {"truncated": True, "bytes": size}
