"""`log` (alias `log_message`): write a structured log line carrying the instance's
identifiers.

The line is the message and the step's `fields`, never the instance's data: what a
workflow logs is what its definition names. A rendered message longer than
`MESSAGE_CHARS` is cut (and marked), and the log pipeline bounds every field as well.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from flowbus.actions.base import ActionConfig, ActionContext, ActionType, InlineOutcome
from flowbus.engine.effects import LogLine

MESSAGE_CHARS = 2000
"""Longest message a log action writes; a longer one is cut and ends with `…`."""

_LEVEL_NAMES = {"warn": "warning", "fatal": "error", "critical": "error"}


class LogConfig(ActionConfig):
    message: str = Field(min_length=1)
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Any case; `warn` is `warning`, `critical` and `fatal` are `error`."
    )
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("level", mode="before")
    @classmethod
    def _level_name(cls, level: Any) -> Any:
        if not isinstance(level, str):
            return level
        lowered = level.lower()
        return _LEVEL_NAMES.get(lowered, lowered)


class Log(ActionType):
    name = "log"
    config_model = LogConfig
    inline = True

    def run_inline(self, config: dict[str, Any], context: ActionContext) -> InlineOutcome:
        cfg = LogConfig.model_validate(config)
        message = cfg.message
        if len(message) > MESSAGE_CHARS:
            message = message[: MESSAGE_CHARS - 1] + "…"
        return InlineOutcome(
            output={"logged": message},
            effects=[LogLine(level=cfg.level, message=message, fields=dict(cfg.fields))],
        )


class LogMessage(Log):
    """`log_message`: the same action as `log` under the name seed documents use."""

    name = "log_message"
