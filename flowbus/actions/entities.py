"""`set_field` and `create_record`: change an entity the Kafka-native way, by publishing
the entity-change event through the outbox.

flowbus owns no business tables: the service that owns the entity applies the change
when it reads the event. Each action publishes one CloudEvent, in the transaction that
completes the step, to the entity's topic (`topic`, by default `entities.<entity>`),
keyed by the record id so the changes of one record stay in order:

- `flowbus.entity.field_set`, data `{entity, recordId, field, value, instanceId,
  workflowId, stepId}`;
- `flowbus.entity.created`, data `{entity, recordId, data, instanceId, workflowId,
  stepId}`; without a `recordId` in the config, the record id is derived from the step
  execution's idempotency key, so a rerun names the same record.

Their schemas are in `topics/schemas/entity-*.schema.json`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field

from flowbus.actions.base import ActionConfig, ActionContext, ActionType, InlineOutcome
from flowbus.engine.effects import PublishEvent

FIELD_SET = "flowbus.entity.field_set"
CREATED = "flowbus.entity.created"
DEFAULT_TOPIC = "entities.{entity}"
"""The entity's topic when the step names none."""
RECORD_NAMESPACE = uuid.UUID("8f0d4c1e-5b7a-4e2f-9c3d-2a6b1e8f7d40")

_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
_TOPIC = r"^[A-Za-z0-9._-]+$"


def _text(value: Any) -> Any:
    # A whole {{ path }} keeps a number a number; record ids are text.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


RecordId = Annotated[str, BeforeValidator(_text), Field(min_length=1, max_length=1000)]


class EntityChangeConfig(ActionConfig):
    model_config = ConfigDict(populate_by_name=True)

    entity: str = Field(
        pattern=_NAME, max_length=200, description="The entity's name, e.g. `invoice`."
    )
    topic: str | None = Field(
        None,
        pattern=_TOPIC,
        max_length=249,
        description="Topic of the entity's change events; `entities.<entity>` by default.",
    )

    def topic_name(self) -> str:
        return self.topic or DEFAULT_TOPIC.format(entity=self.entity)


class SetFieldConfig(EntityChangeConfig):
    record_id: RecordId = Field(
        validation_alias=AliasChoices("recordId", "record_id"),
        description="The record whose field changes; the event's key.",
    )
    field: str = Field(min_length=1, max_length=200)
    value: Any = Field(description="The field's new value (null clears it).")


class CreateRecordConfig(EntityChangeConfig):
    record_id: RecordId | None = Field(
        None,
        validation_alias=AliasChoices("recordId", "record_id"),
        description="The new record's id; derived from the step execution when absent.",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The new record's fields.")


class SetField(ActionType):
    """Publish `flowbus.entity.field_set`: the record's `field` is now `value`."""

    name = "set_field"
    config_model = SetFieldConfig
    inline = True

    def run_inline(self, config: dict[str, Any], context: ActionContext) -> InlineOutcome:
        cfg = SetFieldConfig.model_validate(config)
        data = {"field": cfg.field, "value": cfg.value}
        return _publish(cfg, cfg.record_id, FIELD_SET, data, context, {"field": cfg.field})


class CreateRecord(ActionType):
    """Publish `flowbus.entity.created`: a record of `entity` with `data`."""

    name = "create_record"
    config_model = CreateRecordConfig
    inline = True

    def run_inline(self, config: dict[str, Any], context: ActionContext) -> InlineOutcome:
        cfg = CreateRecordConfig.model_validate(config)
        record_id = cfg.record_id or str(uuid.uuid5(RECORD_NAMESPACE, context.idempotency_key))
        return _publish(cfg, record_id, CREATED, {"data": cfg.data}, context, {})


def _publish(
    cfg: EntityChangeConfig,
    record_id: str,
    event_type: str,
    change: dict[str, Any],
    context: ActionContext,
    output: dict[str, Any],
) -> InlineOutcome:
    topic = cfg.topic_name()
    event = PublishEvent(
        topic=topic,
        key=record_id,
        id=context.new_event_id(),
        type=event_type,
        time=context.now,
        data={
            "entity": cfg.entity,
            "recordId": record_id,
            **change,
            "instanceId": context.instance_id,
            "workflowId": context.workflow_id,
            "stepId": context.step_id,
        },
        subject=context.instance_id,
    )
    return InlineOutcome(
        output={
            "eventId": event.id,
            "topic": topic,
            "type": event_type,
            "entity": cfg.entity,
            "recordId": record_id,
            **output,
        },
        effects=[event],
    )
