"""An invalid definition is refused with problems that name the step and the field."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.definitions.errors import DefinitionError, Problem
from flowbus.definitions.loader import validate_definition


def log_step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": "log", "config": {"message": "m"}, **extra}


def definition(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "wf", "steps": list(steps) or [log_step("only")], **fields}


def problems_of(raw: dict[str, Any]) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(raw)
    assert caught.value.definition_id == "wf"
    return caught.value.problems


def test_valid_definition_loads() -> None:
    loaded = validate_definition(definition(log_step("a", next="b"), log_step("b")))

    assert (loaded.id, loaded.version, loaded.first_step_id) == ("wf", None, "a")


def test_legacy_workflow_id_and_step_id_keys_are_accepted() -> None:
    raw = {
        "workflowId": "wf",
        "steps": [
            {"stepId": "a", "type": "condition", "next": [{"nextStepId": "b"}]},
            log_step("b"),
        ],
    }

    loaded = validate_definition(raw)

    assert (loaded.id, loaded.steps[0].id, loaded.steps[0].successor_ids()) == ("wf", "a", ["b"])


def test_unknown_step_type_names_the_step_and_the_type_field() -> None:
    [problem] = problems_of(definition({"id": "a", "type": "teleport"}))

    assert (problem.step_id, problem.field) == ("a", "type")
    assert "unknown step type 'teleport'" in problem.message


def test_unknown_step_type_is_refused_naming_the_step_in_the_message() -> None:
    with pytest.raises(DefinitionError, match=r"step 'a'.*unknown step type 'teleport'"):
        validate_definition(definition({"id": "a", "type": "teleport"}))


def test_each_missing_config_field_is_its_own_problem() -> None:
    step = {"id": "send", "type": "action", "action": "send_event", "config": {}}

    assert problems_of(definition(step)) == [
        Problem("Field required", field="config.topic", step_id="send"),
        Problem("Field required", field="config.type", step_id="send"),
    ]


def test_unknown_action_config_key_is_refused() -> None:
    step = log_step("a") | {"config": {"message": "m", "colour": "red"}}

    assert problems_of(definition(step)) == [
        Problem("Extra inputs are not permitted", field="config.colour", step_id="a")
    ]


def test_malformed_template_in_config_is_refused_with_its_location() -> None:
    step = log_step("a") | {"config": {"message": "{{ input..x }}"}}

    [problem] = problems_of(definition(step))

    assert (problem.step_id, problem.field) == ("a", "config")
    assert problem.message.startswith("message: bad path 'input..x'")


def test_whole_placeholder_may_stand_for_an_object_config_field() -> None:
    step = log_step("a") | {"config": {"message": "m", "fields": "{{ input.details }}"}}

    validate_definition(definition(step))


def test_condition_that_does_not_compile_is_refused() -> None:
    step = {"id": "check", "type": "condition", "condition": "input.x >", "onTrue": "end"}

    [problem] = problems_of(definition(step, log_step("end")))

    assert (problem.step_id, problem.field) == ("check", "condition")
    assert problem.message.startswith("expression does not compile")


BAD_TRANSITION = {"id": "check", "type": "condition", "next": [{"to": "end", "condition": "1 +"}]}


def test_transition_condition_that_does_not_compile_is_refused() -> None:
    [problem] = problems_of(definition(BAD_TRANSITION, log_step("end")))

    assert problem.step_id == "check"
    assert problem.message.startswith("expression does not compile")


def test_malformed_output_template_is_refused() -> None:
    with pytest.raises(DefinitionError, match="output"):
        validate_definition(definition(output={"total": "{{ variables..total }}"}))


def test_every_bad_step_is_reported() -> None:
    bad_a = {"id": "a", "type": "action", "action": "send_event", "config": {"type": "t"}}
    bad_b = {"id": "b", "type": "action", "action": "log", "config": {}}

    problems = problems_of(definition(bad_a | {"next": "b"}, bad_b))

    assert {p.step_id for p in problems} == {"a", "b"}


def test_error_message_names_definition_step_and_field() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition(log_step("a", next="nowhere")), source="wf.yaml")

    assert str(caught.value) == "wf.yaml: wf: step 'a': next: refers to unknown step 'nowhere'"


def test_error_message_lists_several_problems_one_per_line() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(definition(log_step("a"), log_step("b"), log_step("c")))

    assert str(caught.value).splitlines()[1:] == [
        "  wf: step 'b': unreachable: no step leads here",
        "  wf: step 'c': unreachable: no step leads here",
    ]


def test_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(DefinitionError, match="a definition must be an object"):
        validate_definition(["not", "an", "object"])


def test_a_nul_character_anywhere_is_refused_naming_the_field() -> None:
    step = {"id": "a", "type": "approval", "assignees": ["ok", "x\x00y"]}

    [problem] = problems_of({"id": "wf", "steps": [step]})

    assert problem.field == "steps[0].assignees[1]"
    assert "NUL character" in problem.message
