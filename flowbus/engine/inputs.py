"""Everything that can happen to a running instance, as engine inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowbus.engine.state import ErrorInfo


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An action run by the shell finished: with an output, or with an error."""

    step_id: str
    attempt: int
    output: Any = None
    error: ErrorInfo | None = None


EngineInput = ActionResult
