"""Engine inputs as JSON, for the durable inbox (timer rows of kind `input`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flowbus.engine.inputs import (
    ApprovalDecision,
    ChildFinished,
    Command,
    EngineInput,
    EventReceived,
)
from flowbus.engine.state import ErrorInfo

_KINDS: dict[str, type[Any]] = {
    "child_finished": ChildFinished,
    "command": Command,
    "event": EventReceived,
    "decision": ApprovalDecision,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def encode_input(value: EngineInput) -> dict[str, Any]:
    data = asdict(value)
    if isinstance(value, ChildFinished) and value.error is not None:
        data["error"] = value.error.model_dump(mode="json")
    return {"input": _NAMES[type(value)], **data}


def decode_input(payload: dict[str, Any]) -> EngineInput:
    data = dict(payload)
    cls = _KINDS[data.pop("input")]
    if cls is ChildFinished and data.get("error") is not None:
        data["error"] = ErrorInfo.model_validate(data["error"])
    if cls is ApprovalDecision:
        data["groups"] = tuple(data.get("groups", ()))
    value: EngineInput = cls(**data)
    return value
