"""Definition documents: the shipped example and the published JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import load_file, load_path, parse_document
from flowbus.definitions.schema import definition_json_schema

EXAMPLE = Path(__file__).parents[3] / "config" / "workflows" / "order-fulfilment.yaml"
EXAMPLES = sorted(p.stem for p in EXAMPLE.parent.glob("*.yaml"))


def example_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return document


def test_example_definition_loads() -> None:
    definition = load_file(EXAMPLE)

    assert definition.id == "order-fulfilment"
    assert [s.id for s in definition.steps][:3] == [
        "check-amount",
        "finance-approval",
        "reserve-stock",
    ]
    assert {s.type for s in definition.step_map().values()} == {
        "condition",
        "approval",
        "subflow",
        "wait",
        "parallel",
        "action",
        "fail",
    }
    assert [(t.topic, t.type) for t in definition.triggers] == [("orders", "order.created")]


def test_loading_a_folder_loads_every_definition_in_it() -> None:
    assert sorted(d.id for d in load_path(EXAMPLE.parent)) == EXAMPLES


def test_document_that_is_not_yaml_is_refused_naming_the_source() -> None:
    with pytest.raises(DefinitionError, match=r"^broken\.yaml: .*not valid JSON/YAML"):
        parse_document("steps: [unclosed", "broken.yaml")


def test_json_document_is_parsed_as_json() -> None:
    assert parse_document('{"id": "wf"}', "wf.json") == {"id": "wf"}


def test_definition_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(definition_json_schema())


def test_definition_schema_declares_draft_2020_12() -> None:
    schema = definition_json_schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_definition_schema_accepts_the_example() -> None:
    validator = Draft202012Validator(definition_json_schema())

    assert list(validator.iter_errors(example_document())) == []


def test_definition_schema_refuses_a_step_of_unknown_type() -> None:
    document = example_document()
    document["steps"].append({"id": "beam-up", "type": "teleport"})
    validator = Draft202012Validator(definition_json_schema())

    assert not validator.is_valid(document)


def test_definition_schema_refuses_an_unknown_top_level_key() -> None:
    document = example_document() | {"retries": 3}
    validator = Draft202012Validator(definition_json_schema())

    assert not validator.is_valid(document)
