"""`send_event`: publish a CloudEvent to a Kafka topic, through the outbox."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from flowbus.actions.base import ActionConfig, ActionContext, ActionType, InlineOutcome
from flowbus.engine.effects import PublishEvent


def _text(value: Any) -> Any:
    # A whole {{ path }} keeps a number a number; keys and subjects are text.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class SendEventConfig(ActionConfig):
    topic: str = Field(min_length=1)
    type: str = Field(min_length=1, description="CloudEvents type of the published event.")
    key: Annotated[str | None, BeforeValidator(_text)] = Field(
        None, description="Record key; the instance id by default."
    )
    subject: Annotated[str | None, BeforeValidator(_text)] = None
    data: Any = None


class SendEvent(ActionType):
    name = "send_event"
    config_model = SendEventConfig
    inline = True

    def run_inline(self, config: dict[str, Any], context: ActionContext) -> InlineOutcome:
        cfg = SendEventConfig.model_validate(config)
        event = PublishEvent(
            topic=cfg.topic,
            key=cfg.key if cfg.key is not None else context.instance_id,
            id=context.new_event_id(),
            type=cfg.type,
            time=context.now,
            data=cfg.data,
            subject=cfg.subject if cfg.subject is not None else context.instance_id,
        )
        return InlineOutcome(
            output={"eventId": event.id, "topic": cfg.topic, "type": cfg.type},
            effects=[event],
        )
