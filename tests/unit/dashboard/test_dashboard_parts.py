"""The dashboard's pure parts: graphs with a run on them, start forms, triggers in words."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flowbus.dashboard.forms import InputFormError, input_fields, read_input
from flowbus.dashboard.graph import instance_chart, node_ids, step_runs
from flowbus.dashboard.words import cron_words, trigger_words
from flowbus.definitions.loader import validate_definition
from flowbus.definitions.mermaid import to_mermaid
from flowbus.definitions.model import WorkflowDefinition

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "workflows" / "order-fulfilment.yaml"


def fulfilment() -> WorkflowDefinition:
    return validate_definition(yaml.safe_load(EXAMPLE.read_text()))


def test_every_step_has_the_node_id_the_mermaid_chart_gives_it() -> None:
    definition = fulfilment()
    source = to_mermaid(definition)

    for node in node_ids(definition).values():
        assert f"  {node}" in source or f"subgraph {node} " in source


def test_a_run_colours_its_steps_and_thickens_the_edges_it_took() -> None:
    history = [
        {
            "stepId": "check-amount",
            "status": "completed",
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:00:01Z",
        },
        {"stepId": "reserve-stock", "status": "running", "startedAt": "2026-01-01T00:00:02Z"},
    ]

    chart = instance_chart(fulfilment(), step_runs(history), completed=False)

    assert "style s_check_amount fill:#d3f0dc" in chart
    assert "style s_reserve_stock fill:#d6e6ff" in chart
    taken = chart.strip().splitlines()[-1]
    assert taken.startswith("  linkStyle 0,")
    assert len(taken.split()[1].split(",")) == 2


def test_the_start_form_types_its_fields_from_the_schema_required_first() -> None:
    schema = {
        "type": "object",
        "required": ["orderId"],
        "properties": {
            "tier": {"enum": ["gold", "silver"]},
            "amount": {"type": "number"},
            "orderId": {"type": "string"},
            "rush": {"type": "boolean"},
            "items": {"type": ["array", "null"]},
        },
    }

    fields = input_fields(schema)

    assert fields is not None
    assert [(f.name, f.kind) for f in fields] == [
        ("orderId", "text"),
        ("amount", "number"),
        ("items", "json"),
        ("rush", "checkbox"),
        ("tier", "select"),
    ]
    form = {"field.orderId": "o-1", "field.amount": "5", "field.items": "[1]", "field.tier": ""}
    assert read_input(schema, form) == {"orderId": "o-1", "amount": 5, "items": [1], "rush": False}
    with pytest.raises(InputFormError, match="amount"):
        read_input(schema, {**form, "field.amount": "nan"})


def test_triggers_read_as_sentences() -> None:
    event = {"topic": "orders", "type": "order.created", "correlation": "data.id"}

    assert trigger_words(event) == (
        "Starts on each event on topic “orders” of type “order.created”; its input is the "
        "event's data; correlation id: data.id."
    )
    assert cron_words("*/5 * * * *") == "every 5 minutes"
    assert cron_words("30 9 * * 1-5") == "on weekdays at 09:30"
