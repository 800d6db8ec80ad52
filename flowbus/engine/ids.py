"""Ids and keys the engine derives from an instance: the same on every replay, so a
transition computed again yields the same events and the same idempotency keys."""

from __future__ import annotations

import uuid

EVENT_NAMESPACE = uuid.UUID("6f1c3c52-8d0e-4d59-a7a4-1f0b9a3e2c11")


def event_id(instance_id: str, seq: int) -> str:
    """Stable id of the `seq`-th outcome event of an instance: the same on every replay."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{instance_id}/{seq}"))


def published_event_id(instance_id: str, n: int) -> str:
    """Stable id of the `n`-th event an instance's actions published."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{instance_id}/published/{n}"))


def step_key(instance_id: str, step_id: str, execution: int) -> str:
    """The idempotency key of one execution of a step: the same on every retry of it.

    `<instance>:<step>` for the step's first execution, `<instance>:<step>:<n>` for its n-th
    (the workflow looped back to it, or an operator retried the instance).
    """
    key = f"{instance_id}:{step_id}"
    return key if execution == 1 else f"{key}:{execution}"
