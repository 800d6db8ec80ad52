"""Seed 000's context mappings (`trigger.record_id`) and action paths (`context.x`): read
the seed's way, or refused at load naming the path; never a silent null."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.definitions.compat import convert_document
from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import validate_definition
from flowbus.engine.core import start
from flowbus.engine.effects import PublishEvent
from tests.unit.engine.support import NOW, define

# The context resolution example of seed 000, as printed.
SEED_000_CONTEXT = {"record_id": "trigger.record_id", "amount": "trigger.record.amount"}

TRANSITION_EVENT = {
    "id": "ev-1",
    "source": "records-service",
    "type": "record.transitioned",
    "subject": None,
    "time": "2024-05-06T07:08:09Z",
    "topic": "records",
    "key": "o-1",
    "headers": {},
    "data": {
        "entity": "order",
        "field": "status",
        "from": "pending",
        "to": "approved",
        "record_id": "o-1",
        "record": {"id": "o-1", "amount": 250, "status": "approved"},
    },
}


def document(context: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": "order-approved",
        "triggers": [{"topic": "records", "transition": "order:status:approved"}],
        "context": context,
        "steps": steps
        or [{"id": "note", "type": "action", "action": "log", "config": {"message": "x"}}],
    }


def refusal(context: dict[str, Any]) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(document(context))
    return caught.value


def test_the_seed_mapping_reads_the_transition_in_the_event_data() -> None:
    converted, problems = convert_document(document(dict(SEED_000_CONTEXT)))

    assert problems == []
    assert converted["context"] == {
        "record_id": "trigger.data.record_id",
        "amount": "trigger.data.record.amount",
    }


def test_the_seed_mapping_fills_the_variables_at_start() -> None:
    definition = define(document(dict(SEED_000_CONTEXT)))

    transition = start(definition, instance_id="i", input=None, trigger=TRANSITION_EVENT, now=NOW)

    assert transition.state.variables == {"record_id": "o-1", "amount": 250}


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("trigger.entity", "trigger.data.entity"),
        ("trigger.field", "trigger.data.field"),
        ("trigger.to_state", "trigger.data.to"),
        ("trigger.from_state", "trigger.data.from"),
        ("trigger.record.lines[0].sku", "trigger.data.record.lines[0].sku"),
    ],
)
def test_every_field_of_the_seed_trigger_has_its_place(path: str, read: str) -> None:
    converted, _ = convert_document(document({"x": path}))

    assert converted["context"] == {"x": read}


def test_flowbus_paths_are_kept() -> None:
    context = {"a": "trigger.data.record_id", "b": "input.orderId", "c": "trigger.headers.tenant"}

    converted, problems = convert_document(document(dict(context)))

    assert (converted["context"], problems) == (context, [])


def test_an_event_field_that_does_not_exist_is_refused_naming_the_mapping() -> None:
    error = refusal({"who": "trigger.user_id"})

    [problem] = error.problems
    assert problem.field == "context.who"
    assert "trigger.user_id" in problem.message
    assert "trigger.data.user_id" in problem.message


def test_a_mapping_that_reads_context_is_refused() -> None:
    [problem] = refusal({"copy": "context.record_id"}).problems

    assert problem.field == "context.copy"
    assert "cannot read it" in problem.message


def test_a_mapping_from_an_unknown_root_is_refused() -> None:
    [problem] = refusal({"amount": "record.amount"}).problems

    assert problem.field == "context.amount"
    assert "'record'" in problem.message


def test_a_wrong_read_inside_a_larger_query_is_refused() -> None:
    [problem] = refusal({"pair": "{id: trigger.record_id, amount: input.amount}"}).problems

    assert problem.field == "context.pair"
    assert "trigger.record_id" in problem.message


def test_names_inside_projections_are_not_taken_for_roots() -> None:
    definition = validate_definition(
        document({"skus": "trigger.data.record.lines[*].sku", "n": "length(input.items)"})
    )

    assert set(definition.context) == {"skus", "n"}


def test_an_action_config_path_into_context_reads_the_context() -> None:
    steps = [
        {
            "id": "announce",
            "type": "action",
            "action": "send_event",
            "config": {
                "topic": "orders-approved",
                "type": "order.approved",
                "key": "context.record_id",
                "data": {"order": "context.record_id", "amount": "context.amount", "note": "as is"},
            },
        }
    ]
    definition = define(document(dict(SEED_000_CONTEXT), steps))

    transition = start(definition, instance_id="i", input=None, trigger=TRANSITION_EVENT, now=NOW)

    [event] = [e for e in transition.effects if isinstance(e, PublishEvent)]
    assert event.key == "o-1"
    assert event.data == {"order": "o-1", "amount": 250, "note": "as is"}


def test_templates_and_conditions_read_context_as_the_variables() -> None:
    steps = [
        {
            "id": "big",
            "type": "condition",
            "condition": "context.amount > 100",
            "onTrue": "announce",
        },
        {
            "id": "announce",
            "type": "action",
            "action": "log",
            "config": {"message": "order {{ context.record_id }} approved"},
        },
    ]
    definition = define(document(dict(SEED_000_CONTEXT), steps))

    transition = start(definition, instance_id="i", input=None, trigger=TRANSITION_EVENT, now=NOW)

    assert transition.state.steps["big"].output == {"result": True}
    assert transition.state.steps["announce"].output == {"logged": "order o-1 approved"}
