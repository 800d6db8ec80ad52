"""Mapping an event to the workflow input (JMESPath or JSONata) and to a correlation id."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from flowbus.definitions.catalog import DefinitionCatalog, TriggerMatch
from flowbus.definitions.triggers import TransformError, Trigger
from flowbus.envelope import DomainEvent, RecordLimits
from flowbus.expressions.jsonata import JsonataError, JsonataExpression
from flowbus.ingest.triggers import StartRefused, TriggerIngest, instance_id_for
from flowbus.limits import JsonLimits
from tests.unit.triggers.support import event_document, stored

ORDER = event_document(
    order_id="o-1", amount=250, items=[{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]
)


def trigger(**fields: Any) -> Trigger:
    return Trigger.model_validate({"topic": "orders", **fields})


def jsonata(expression: str) -> Trigger:
    return trigger(transform={"type": "jsonata", "expression": expression})


def test_jsonata_transform_builds_the_input() -> None:
    mapped = jsonata(
        "{'orderId': data.order_id, 'units': $sum(data.items.qty), 'big': data.amount > 100}"
    )

    assert mapped.input_for(ORDER) == {"orderId": "o-1", "units": 3, "big": True}


def test_jsonata_result_is_plain_json_detached_from_the_event() -> None:
    value = jsonata("data.items.sku").input_for(ORDER)

    assert type(value) is list
    assert value == ["A", "B"]


def test_jsonata_runtime_error_is_a_transform_error() -> None:
    with pytest.raises(TransformError, match=r"^transform failed: .*left side of the \+"):
        jsonata("data.order_id + 1").input_for(ORDER)


def test_jsonata_error_function_reports_its_message() -> None:
    with pytest.raises(TransformError, match="no order id"):
        jsonata("data.missing ? data.missing : $error('no order id')").input_for(ORDER)


def test_jsonata_python_level_failure_is_a_transform_error() -> None:
    with pytest.raises(TransformError, match="transform failed"):
        jsonata("$number('not a number')").input_for(ORDER)


def test_jsonata_that_yields_a_function_is_refused() -> None:
    with pytest.raises(TransformError, match="not a JSON value"):
        jsonata("function($x) { $x }").input_for(ORDER)


def test_jsonata_runaway_recursion_is_stopped() -> None:
    started = time.monotonic()

    with pytest.raises(JsonataError):
        JsonataExpression("($f := function($x) { $f($x) }; $f(1))").evaluate({})

    assert time.monotonic() - started < 5


def test_jsonata_compiled_once_keeps_working_long_after_compiling() -> None:
    expression = JsonataExpression("data.order_id")
    time.sleep(0.6)  # longer than the evaluation bound

    assert expression.evaluate(ORDER) == "o-1"
    assert expression.evaluate(ORDER) == "o-1"


def test_jmespath_transform_still_maps_the_input() -> None:
    mapped = trigger(transform={"expression": "{id: data.order_id, n: length(data.items)}"})

    assert mapped.input_for(ORDER) == {"id": "o-1", "n": 2}


def test_without_transform_the_input_is_the_event_data() -> None:
    assert trigger().input_for(ORDER) == ORDER["data"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"order_id": "o-1"}, "o-1"),
        ({"order_id": 42}, "42"),
        ({"order_id": 4.5}, "4.5"),
        ({}, None),
        ({"order_id": None}, None),
    ],
)
def test_correlation_id_is_the_value_as_text(data: dict[str, Any], expected: str | None) -> None:
    assert trigger(correlation="data.order_id").correlation_for(event_document(**data)) == expected


@pytest.mark.parametrize("value", [{"a": 1}, [1], True])
def test_correlation_that_is_not_a_scalar_is_refused(value: Any) -> None:
    with pytest.raises(TransformError, match="not a string or number"):
        trigger(correlation="data.order_id").correlation_for(event_document(order_id=value))


def test_correlation_can_read_event_attributes() -> None:
    assert trigger(correlation="key").correlation_for(ORDER) == "k-1"


def test_without_correlation_there_is_no_correlation_id() -> None:
    assert trigger().correlation_for(ORDER) is None


def domain_event(**data: Any) -> DomainEvent:
    return DomainEvent(
        topic="orders", partition=0, offset=7, key=None, headers={}, data=data, id="orders-0-7"
    )


def start_request(definition_trigger: dict[str, Any], **data: Any) -> Any:
    definition = stored(definition_trigger, inputSchema={"type": "object", "required": ["id"]})
    catalog = DefinitionCatalog([definition])
    event = domain_event(**data)
    ingest = TriggerIngest(
        engine=None,  # type: ignore[arg-type]
        catalog=lambda: catalog,
        outbox=lambda: None,  # type: ignore[arg-type, return-value]
        consumer_group="g",
        limits=RecordLimits(JsonLimits(max_bytes=1_000_000, max_depth=64)),
        clock=lambda: datetime.now(UTC),
    )
    match = TriggerMatch(definition, definition.triggers[0])
    return ingest._start_request(catalog, match, event, event.match_document())


def test_start_request_records_the_correlation_id() -> None:
    request = start_request(
        {
            "topic": "orders",
            "transform": {"type": "jsonata", "expression": "{'id': data.order_id}"},
            "correlation": "data.order_id",
        },
        order_id="o-9",
    )

    assert (request.input, request.correlation_id) == ({"id": "o-9"}, "o-9")
    assert request.instance_id == instance_id_for(domain_event(order_id="o-9"), "wf")


def test_failing_jsonata_transform_refuses_the_start_with_the_reason() -> None:
    with pytest.raises(StartRefused, match=r"^transform failed: .*boom"):
        start_request(
            {"topic": "orders", "transform": {"type": "jsonata", "expression": "$error('boom')"}},
            order_id="o-9",
        )


def test_input_violating_the_schema_refuses_the_start() -> None:
    with pytest.raises(StartRefused, match=r"^input does not match inputSchema: .*'id'"):
        start_request(
            {"topic": "orders", "transform": {"type": "jsonata", "expression": "{'x': 1}"}}
        )


def test_non_scalar_correlation_refuses_the_start() -> None:
    with pytest.raises(StartRefused, match=r"^correlation 'data\.ref' gave dict"):
        start_request(
            {"topic": "orders", "transform": {"expression": "data"}, "correlation": "data.ref"},
            id="x",
            ref={"nested": True},
        )
