"""Triggers in definition documents: what is accepted, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flowbus.definitions.errors import DefinitionError, Problem
from flowbus.definitions.loader import validate_definition
from flowbus.definitions.schema import definition_json_schema
from flowbus.store.definitions import canonical_document
from tests.unit.triggers.support import definition


def problems_of(*triggers: dict[str, Any]) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition(*triggers))
    return caught.value.problems


def test_pattern_error_names_the_trigger_and_the_path_inside_the_pattern() -> None:
    trigger = {"topic": "orders", "pattern": {"data": {"amount": [{"numeric": [">"]}]}}}

    assert problems_of(trigger) == [
        Problem(
            "data.amount[0]: numeric needs pairs of operator and number",
            field="triggers.0.pattern",
        )
    ]


def test_pattern_error_renders_with_definition_id_and_field() -> None:
    trigger = {"topic": "orders", "pattern": {"type": "order.created"}}

    with pytest.raises(DefinitionError, match=r"^wf: triggers\.0\.pattern: type: must be an array"):
        validate_definition(definition(trigger))


def test_second_trigger_errors_name_index_one() -> None:
    good = {"topic": "orders", "type": "a"}
    bad = {"topic": "orders", "pattern": {"data": {"n": [{"numeric": ["<", "x"]}]}}}

    [problem] = problems_of(good, bad)

    assert problem.field == "triggers.1.pattern"
    assert problem.message.startswith("data.n[0]: ")


def test_malformed_transition_is_refused() -> None:
    assert problems_of({"topic": "records", "transition": "order:status"}) == [
        Problem("needs exactly three parts, 'entity:field:to_state'", field="triggers.0.transition")
    ]


def test_event_trigger_needs_a_topic_or_something_to_match() -> None:
    assert problems_of({"description": "anything"}) == [
        Problem(
            "a trigger needs a topic, a type, a pattern or a transition (or a schedule)",
            field="triggers.0",
        )
    ]


def test_schedule_trigger_takes_no_topic_or_event_fields() -> None:
    [problem] = problems_of({"schedule": {"cron": "*/5 * * * *"}, "topic": "orders", "type": "x"})

    assert problem.field == "triggers.0"
    assert problem.message == (
        "a schedule trigger takes no topic, type: its input is schedule.input"
    )


def test_schedule_fields_are_checked_each_on_its_own() -> None:
    problems = problems_of(
        {"schedule": {"cron": "*/5 * * *", "timezone": "Mars/Olympus", "misfire": "later"}}
    )

    assert [p.field for p in problems] == [
        "triggers.0.schedule.cron",
        "triggers.0.schedule.timezone",
        "triggers.0.schedule.misfire",
    ]
    assert "needs 5 fields" in problems[0].message
    assert problems[1].message == "unknown time zone 'Mars/Olympus'"


def test_cron_that_matches_no_date_is_refused() -> None:
    [problem] = problems_of({"schedule": {"cron": "0 0 30 2 *"}})

    assert (problem.field, problem.message) == (
        "triggers.0.schedule.cron",
        "'0 0 30 2 *' matches no date",
    )


def test_type_given_twice_is_refused_rather_than_silently_dropped() -> None:
    [problem] = problems_of({"topic": "o", "type": "a", "pattern": {"type": ["b"]}})

    assert problem.message == (
        "type is constrained by both type and pattern: state it once, in the pattern"
    )


def test_transition_field_restated_in_the_pattern_is_refused() -> None:
    [problem] = problems_of(
        {
            "topic": "records",
            "transition": "order:status:approved",
            "pattern": {"data": {"to": ["rejected"]}},
        }
    )

    assert problem.message.startswith("data.to is constrained by both transition and pattern")


def test_jsonata_transform_that_does_not_compile_names_the_expression_field() -> None:
    [problem] = problems_of(
        {"topic": "o", "transform": {"type": "jsonata", "expression": "{'a': "}}
    )

    assert problem.field == "triggers.0.transform.expression"
    assert problem.message.startswith("expression does not compile: ")


def test_jmespath_transform_is_still_the_default() -> None:
    [problem] = problems_of({"topic": "o", "transform": {"expression": "data..x"}})

    assert problem.field == "triggers.0.transform.expression"


def test_unknown_transform_type_is_refused() -> None:
    [problem] = problems_of({"topic": "o", "transform": {"type": "xslt", "expression": "x"}})

    assert problem.field == "triggers.0.transform.type"


def test_correlation_must_be_a_jmespath_query() -> None:
    [problem] = problems_of({"topic": "o", "correlation": "data..order_id"})

    assert problem.field == "triggers.0.correlation"


def test_every_trigger_kind_loads_and_stores_as_written() -> None:
    raw = definition(
        {
            "topic": "orders",
            "type": "order.created",
            "pattern": {"data": {"amount": [{"numeric": [">", 100]}]}},
            "transform": {"type": "jsonata", "expression": "{'orderId': data.order_id}"},
            "correlation": "data.order_id",
        },
        {"topic": "records", "transition": "order:status:approved"},
        {"schedule": {"cron": "*/5 * * * *", "timezone": "Europe/Berlin", "input": {"a": 1}}},
    )

    stored = canonical_document(validate_definition(raw))

    assert stored["triggers"] == [
        raw["triggers"][0],
        raw["triggers"][1],
        {
            "schedule": {
                "cron": "*/5 * * * *",
                "timezone": "Europe/Berlin",
                "misfire": "fire_once",
                "grace": "PT1M",
                "input": {"a": 1},
            }
        },
    ]
    assert validate_definition(stored).triggers[0].event_pattern() == {
        "type": ["order.created"],
        "data": {"amount": [{"numeric": [">", 100]}]},
    }


def test_published_schema_stays_valid_and_accepts_every_trigger_kind() -> None:
    schema = definition_json_schema()
    Draft202012Validator.check_schema(schema)
    document = definition(
        {"topic": "orders", "pattern": {"data": {"n": [1]}}, "correlation": "data.id"},
        {"topic": "records", "transition": "order:status:*"},
        {"schedule": {"cron": "0 9 * * 1-5", "timezone": "UTC", "misfire": "skip"}},
    )

    assert list(Draft202012Validator(schema).iter_errors(document)) == []
