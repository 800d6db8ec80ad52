"""Ids and keys the engine derives from an instance: the same on every replay, so a
transition computed again yields the same events and the same idempotency keys."""

from __future__ import annotations

import hashlib
import uuid

EVENT_NAMESPACE = uuid.UUID("6f1c3c52-8d0e-4d59-a7a4-1f0b9a3e2c11")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def event_id(instance_id: str, seq: int) -> str:
    """Stable id of the `seq`-th outcome event of an instance: the same on every replay."""
    return _uuid5(f"{instance_id}/{seq}")


def published_event_id(instance_id: str, n: int) -> str:
    """Stable id of the `n`-th event an instance's actions published."""
    return _uuid5(f"{instance_id}/published/{n}")


def _uuid5(name: str) -> str:
    """`str(uuid.uuid5(EVENT_NAMESPACE, name))`, without building UUID objects: the
    engine derives several per instance, on the hot path."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def step_key(instance_id: str, step_id: str, execution: int) -> str:
    """The idempotency key of one execution of a step: the same on every retry of it.

    `<instance>:<step>` for the step's first execution, `<instance>:<step>:<n>` for its n-th
    (the workflow looped back to it, or an operator retried the instance).
    """
    key = f"{instance_id}:{step_id}"
    return key if execution == 1 else f"{key}:{execution}"


def failure_workflow_id(instance_id: str, seq: int) -> str:
    """Stable id of the failure workflow instance started when the instance ended as its
    `seq`-th event says (an instance retried and failed again starts another one)."""
    return _uuid5(f"{instance_id}/failure-workflow/{seq}")
