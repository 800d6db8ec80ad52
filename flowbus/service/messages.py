"""What the message bus handles: the work consumers ask for, and the follow-ups that
effects ask for within the same unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.effects import StartChild
from flowbus.engine.inputs import EngineInput
from flowbus.engine.state import ParentLink
from flowbus.store.subscriptions import Subscription


@dataclass(frozen=True, slots=True)
class StartRequest:
    """An instance to start: which definition, with what, and why."""

    definition: WorkflowDefinition
    instance_id: str
    input: Any
    trigger: dict[str, Any] | None = None
    trigger_event_id: str | None = None
    correlation_id: str | None = None
    parent: ParentLink | None = None


@dataclass(frozen=True, slots=True)
class StartInstances:
    """Start instances whose ids are not taken yet."""

    requests: Sequence[StartRequest]


@dataclass(frozen=True, slots=True)
class DeliverInputs:
    """Apply inputs to stored instances, in the given order."""

    items: Sequence[tuple[str, EngineInput]]


@dataclass(frozen=True, slots=True)
class TakeBufferedEvent:
    """A wait just began: hand it an event that arrived a moment before, if one is kept."""

    subscription: Subscription


@dataclass(frozen=True, slots=True)
class StartSubflow:
    """A step asked for a child instance."""

    parent_id: str
    child: StartChild


Message = StartInstances | DeliverInputs | TakeBufferedEvent | StartSubflow
