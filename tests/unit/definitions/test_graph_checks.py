"""The graph check of a definition: loops, and chains longer than any stack."""

from __future__ import annotations

import pytest

from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import validate_definition


def chain(length: int, back_to: str | None = None) -> dict[str, object]:
    steps: list[dict[str, object]] = [
        {
            "id": f"s{n}",
            "type": "action",
            "action": "log",
            "config": {"message": "m"},
            "next": f"s{n + 1}",
        }
        for n in range(length - 1)
    ]
    last: dict[str, object] = {
        "id": f"s{length - 1}",
        "type": "action",
        "action": "log",
        "config": {"message": "m"},
    }
    if back_to is not None:
        last["next"] = back_to
    return {"id": "long", "steps": [*steps, last]}


def test_a_chain_of_thousands_of_steps_is_checked_without_exhausting_the_stack() -> None:
    assert len(validate_definition(chain(5000)).steps) == 5000


def test_a_long_loop_that_never_waits_is_refused_naming_its_first_step() -> None:
    with pytest.raises(DefinitionError, match="loop s0 → s1") as caught:
        validate_definition(chain(3000, back_to="s0"))
    assert caught.value.problems[0].step_id == "s0"


def test_a_non_string_id_is_a_problem_not_a_crash() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition({"id": 5, "steps": [{"id": "a", "type": "fail", "error": "X"}]})
    assert caught.value.definition_id is None
    assert any(p.field == "id" for p in caught.value.problems)
