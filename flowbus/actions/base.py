"""The interface every action type implements. One action type = one small class.

An action is either *inline*: pure, run inside the engine in the same transaction as
the step (`set_variables`, `send_event` through the outbox, `log`); or *external*: it
needs I/O (`webhook`), so the engine asks the shell to run it and continues when the
result comes back. The core declares an external action (its name and config) and no
more; what runs it lives in the shell, in `flowbus.external`.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from flowbus.engine.effects import Effect


class ActionConfig(BaseModel):
    """Base of action configs: validated when the definition loads."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


@dataclass(slots=True)
class InlineOutcome:
    """What an inline action produced: its output, variable updates and effects."""

    output: Any = None
    variables: dict[str, Any] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action may know of where it runs."""

    instance_id: str
    workflow_id: str
    step_id: str
    attempt: int
    now: str
    idempotency_key: str
    """One key per step execution, the same on every retry and rerun of it."""
    new_event_id: Callable[[], str]
    """A fresh stable event id, for an action that publishes an event."""
    tries: int = 1
    """Attempt of this step execution: 1, then 2, 3 on retries (a rerun keeps it)."""
    max_json_depth: int = 64
    """Deepest nesting of JSON an action may parse from outside (`limits.max_depth`)."""


class ActionType(ABC):
    """Behaviour of one `action:` name: `inline = False` makes the engine ask the shell to
    run it (a `RunAction` effect)."""

    name: ClassVar[str]
    config_model: ClassVar[type[ActionConfig]]
    inline: ClassVar[bool]

    def run_inline(self, config: dict[str, Any], context: ActionContext) -> InlineOutcome:
        """Run a pure action inside the engine (inline actions only)."""
        raise NotImplementedError(f"action {self.name} is not inline")

    def heartbeat(self, config: dict[str, Any]) -> timedelta | None:
        """Longest silence allowed from whoever runs this external action (its validated,
        rendered `config` says); None when it need not report while it works."""
        return None
