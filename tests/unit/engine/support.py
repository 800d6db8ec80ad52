"""Helpers for engine specifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flowbus.definitions.loader import validate_definition
from flowbus.definitions.model import WorkflowDefinition
from flowbus.engine.core import apply, start
from flowbus.engine.effects import Effect, EmitEvent
from flowbus.engine.inputs import EngineInput
from flowbus.engine.state import InstanceState

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
NOW_TEXT = "2024-05-06T07:08:09.123Z"


def define(raw: dict[str, Any]) -> WorkflowDefinition:
    """Validate a raw definition and give it version 1, as the store would."""
    return validate_definition(raw).model_copy(update={"version": 1})


def emitted(effects: list[Effect]) -> list[EmitEvent]:
    return [e for e in effects if isinstance(e, EmitEvent)]


def event_types(effects: list[Effect]) -> list[str]:
    return [e.type for e in emitted(effects)]


def log_step(step_id: str, **extra: Any) -> dict[str, Any]:
    """An inline step that only logs its own id: the simplest step that completes."""
    return {
        "id": step_id,
        "type": "action",
        "action": "log",
        "config": {"message": step_id},
        **extra,
    }


# Appended helpers (support.py only grows at its end, so their imports sit here).


E = TypeVar("E")


def at(seconds: float) -> datetime:
    """A moment `seconds` after NOW."""
    return NOW + timedelta(seconds=seconds)


def webhook_step(step_id: str, **extra: Any) -> dict[str, Any]:
    """An external step: the engine asks the shell to run it and waits for its result."""
    return {
        "id": step_id,
        "type": "action",
        "action": "webhook",
        "config": {"url": f"https://example.test/{step_id}"},
        **extra,
    }


def of_kind(effects: list[Effect], kind: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, kind)]


def events_of(effects: list[Effect], type: str) -> list[EmitEvent]:
    return [e for e in emitted(effects) if e.type == type]


class Instance:
    """One instance driven through the engine input by input, as the shell would."""

    def __init__(
        self, raw: dict[str, Any], *, input: Any = None, now: datetime = NOW, **options: Any
    ) -> None:
        self.definition = define(raw)
        options.setdefault("instance_id", "inst-1")
        transition = start(self.definition, input=input, now=now, **options)
        self.state: InstanceState = transition.state
        self.effects: list[Effect] = transition.effects
        self.history: list[Effect] = list(transition.effects)

    def apply(self, event: EngineInput, now: datetime = NOW) -> list[Effect]:
        """Feed one input; returns (and keeps as `effects`) what this transition asked for."""
        transition = apply(self.definition, self.state, event, now)
        self.state = transition.state
        self.effects = transition.effects
        self.history.extend(transition.effects)
        return transition.effects
