"""`log`: write a structured log line carrying the instance's identifiers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flowbus.actions.base import ActionConfig, ActionContext, ActionType, InlineOutcome
from flowbus.engine.effects import LogLine


class LogConfig(ActionConfig):
    message: str = Field(min_length=1)
    level: Literal["debug", "info", "warning", "error"] = "info"
    fields: dict[str, Any] = Field(default_factory=dict)


class Log(ActionType):
    name = "log"
    config_model = LogConfig
    inline = True

    def run_inline(self, config: dict[str, Any], context: ActionContext) -> InlineOutcome:
        cfg = LogConfig.model_validate(config)
        return InlineOutcome(
            output={"logged": cfg.message},
            effects=[LogLine(level=cfg.level, message=cfg.message, fields=dict(cfg.fields))],
        )
