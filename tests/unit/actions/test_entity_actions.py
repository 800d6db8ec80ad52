"""`set_field` and `create_record`: the entity-change event, published through the outbox
by the transition that runs the step."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from flowbus.actions.entities import RECORD_NAMESPACE
from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import validate_definition
from flowbus.engine.core import Transition, start
from flowbus.engine.effects import PublishEvent
from flowbus.engine.ids import published_event_id
from flowbus.engine.state import InstanceStatus
from tests.unit.engine.support import NOW, NOW_TEXT, define

SCHEMAS = Path(__file__).resolve().parents[3] / "topics" / "schemas"


def step(step_id: str, action: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": action, "config": config, **extra}


def run(*steps: dict[str, Any], input: Any = None) -> Transition:
    definition = define({"id": "records", "steps": list(steps)})
    return start(definition, instance_id="inst-1", input=input, now=NOW)


def published(transition: Transition) -> list[PublishEvent]:
    return [e for e in transition.effects if isinstance(e, PublishEvent)]


def schema_errors(name: str, data: Any) -> list[str]:
    schema = orjson.loads((SCHEMAS / name).read_bytes())
    return [e.message for e in Draft202012Validator(schema).iter_errors(data)]


def test_set_field_publishes_field_set_keyed_by_the_record_on_the_entity_topic() -> None:
    transition = run(
        step(
            "approve",
            "set_field",
            {"entity": "invoice", "recordId": "{{ input.id }}", "field": "status", "value": "ok"},
        ),
        input={"id": "inv-9"},
    )

    [event] = published(transition)
    assert (event.topic, event.key, event.type, event.subject, event.time) == (
        "entities.invoice",
        "inv-9",
        "flowbus.entity.field_set",
        "inst-1",
        NOW_TEXT,
    )
    assert event.data == {
        "entity": "invoice",
        "recordId": "inv-9",
        "field": "status",
        "value": "ok",
        "instanceId": "inst-1",
        "workflowId": "records",
        "stepId": "approve",
    }
    assert event.id == published_event_id("inst-1", 1)


def test_set_field_output_names_the_event_and_the_record() -> None:
    transition = run(
        step("s", "set_field", {"entity": "invoice", "record_id": 7, "field": "n", "value": 1})
    )

    assert transition.state.status == InstanceStatus.COMPLETED
    assert transition.state.steps["s"].output == {
        "eventId": published_event_id("inst-1", 1),
        "topic": "entities.invoice",
        "type": "flowbus.entity.field_set",
        "entity": "invoice",
        "recordId": "7",
        "field": "n",
    }


def test_set_field_keeps_the_rendered_type_of_its_value() -> None:
    transition = run(
        step(
            "s",
            "set_field",
            {"entity": "order", "recordId": "o-1", "field": "lines", "value": "{{ input.lines }}"},
        ),
        input={"lines": [{"sku": "A", "qty": 2}]},
    )

    [event] = published(transition)
    assert event.data["value"] == [{"sku": "A", "qty": 2}]


def test_set_field_to_null_is_a_change_like_any_other() -> None:
    transition = run(
        step(
            "s", "set_field", {"entity": "order", "recordId": "o-1", "field": "note", "value": None}
        )
    )

    [event] = published(transition)
    assert event.data["value"] is None


def test_the_step_topic_replaces_the_entity_topic() -> None:
    transition = run(
        step(
            "s",
            "set_field",
            {"entity": "order", "recordId": "o", "field": "f", "value": 1, "topic": "crm.orders"},
        )
    )

    [event] = published(transition)
    assert event.topic == "crm.orders"


def test_create_record_publishes_created_with_the_record_data() -> None:
    transition = run(
        step(
            "create",
            "create_record",
            {
                "entity": "task",
                "recordId": "t-1",
                "data": {"title": "Review {{ input.id }}", "amount": "{{ input.amount }}"},
            },
        ),
        input={"id": "inv-9", "amount": 12.5},
    )

    [event] = published(transition)
    assert (event.topic, event.key, event.type) == (
        "entities.task",
        "t-1",
        "flowbus.entity.created",
    )
    assert event.data["data"] == {"title": "Review inv-9", "amount": 12.5}
    assert transition.state.steps["create"].output["recordId"] == "t-1"


def test_create_record_without_an_id_derives_it_from_the_step_execution() -> None:
    first = run(step("create", "create_record", {"entity": "task", "data": {"a": 1}}))
    again = run(step("create", "create_record", {"entity": "task", "data": {"a": 1}}))

    [event] = published(first)
    [same] = published(again)
    assert event.key == same.key == str(uuid.uuid5(RECORD_NAMESPACE, "inst-1:create"))
    assert event.data["recordId"] == event.key


def test_a_later_step_reads_the_created_record_id() -> None:
    transition = run(
        step("create", "create_record", {"entity": "task"}, next="assign"),
        step(
            "assign",
            "set_field",
            {
                "entity": "task",
                "recordId": "{{ steps.create.recordId }}",
                "field": "owner",
                "value": "ada",
            },
        ),
    )

    created, assigned = published(transition)
    assert assigned.key == created.key


def test_published_events_match_their_catalog_schemas() -> None:
    transition = run(
        step("c", "create_record", {"entity": "task", "data": {"a": 1}}, next="s"),
        step("s", "set_field", {"entity": "task", "recordId": "r", "field": "f", "value": 2}),
    )

    created, field_set = published(transition)
    assert schema_errors("entity-created.schema.json", created.data) == []
    assert schema_errors("entity-field-set.schema.json", field_set.data) == []


def test_a_set_field_without_record_id_is_refused_naming_the_step_and_field() -> None:
    raw = {
        "id": "wf",
        "steps": [step("s", "set_field", {"entity": "task", "field": "f", "value": 1})],
    }

    with pytest.raises(DefinitionError, match=r"step 's'.*config\.recordId"):
        validate_definition(raw)


def test_an_entity_name_that_cannot_name_a_topic_is_refused() -> None:
    raw = {
        "id": "wf",
        "steps": [step("s", "create_record", {"entity": "my task"})],
    }

    with pytest.raises(DefinitionError, match=r"step 's'.*config\.entity"):
        validate_definition(raw)


def test_a_templated_entity_is_checked_when_the_step_runs() -> None:
    transition = run(
        step("s", "create_record", {"entity": "{{ input.kind }}"}),
        input={"kind": "not a name"},
    )

    assert transition.state.status == InstanceStatus.FAILED
    error = transition.state.steps["s"].error
    assert error is not None
    assert (error.type, error.step_id) == ("ActionConfigError", "s")
    assert "entity" in error.message
    assert published(transition) == []
