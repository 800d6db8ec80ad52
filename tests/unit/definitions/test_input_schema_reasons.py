"""Input-schema violations name the place and quote the offending value only briefly."""

from __future__ import annotations

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.loader import validate_definition


def test_a_huge_wrong_value_is_quoted_only_by_its_start() -> None:
    definition = validate_definition(
        {
            "id": "typed",
            "version": 1,
            "inputSchema": {"type": "object", "properties": {"n": {"type": "number"}}},
            "steps": [{"id": "a", "type": "fail", "error": "X"}],
        }
    )
    [reason] = DefinitionCatalog().input_errors(definition, {"n": "z" * 1_000_000})
    assert reason.startswith("n: 'zzz")
    assert reason.endswith("chars)")
    assert len(reason) < 400
