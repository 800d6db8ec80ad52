"""What an instance computes: context variables at start, and its output at the end."""

from __future__ import annotations

from typing import Any

from flowbus.engine.core import Transition, start
from flowbus.engine.state import InstanceStatus

from .support import NOW, define, emitted, event_types, log_step


def run(raw: dict[str, Any], input: Any, trigger: dict[str, Any] | None = None) -> Transition:
    return start(define(raw), instance_id="inst-1", input=input, now=NOW, trigger=trigger)


def test_context_mappings_set_variables_from_input_and_trigger_at_start() -> None:
    raw = {
        "id": "ctx",
        "context": {"orderId": "input.order.id", "source": "trigger.source"},
        "steps": [log_step("only")],
    }

    transition = run(raw, {"order": {"id": "o-1"}}, trigger={"source": "/shop"})

    assert transition.state.variables == {"orderId": "o-1", "source": "/shop"}


def test_context_mapping_may_be_a_jmespath_query() -> None:
    raw = {"id": "ctx", "context": {"skus": "input.items[*].sku"}, "steps": [log_step("only")]}

    transition = run(raw, {"items": [{"sku": "A"}, {"sku": "B"}]})

    assert transition.state.variables == {"skus": ["A", "B"]}


def test_context_mapping_of_a_missing_field_is_null() -> None:
    raw = {"id": "ctx", "context": {"orderId": "input.order.id"}, "steps": [log_step("only")]}

    transition = run(raw, {})

    assert transition.state.variables == {"orderId": None}


def test_context_mapping_that_fails_on_the_data_fails_the_instance_before_any_step() -> None:
    raw = {"id": "ctx", "context": {"n": "length(input.n)"}, "steps": [log_step("only")]}

    transition = run(raw, {"n": 1})

    assert transition.state.status is InstanceStatus.FAILED
    assert transition.state.error is not None
    assert transition.state.error.type == "ContextError"
    assert event_types(transition.effects) == [
        "flowbus.instance.started",
        "flowbus.instance.failed",
    ]


def test_output_defaults_to_the_variables() -> None:
    raw = {
        "id": "out",
        "steps": [{"id": "set", "type": "action", "action": "set_variables", "config": {"a": 1}}],
    }

    transition = run(raw, {})

    assert transition.state.output == {"a": 1}


def test_output_template_is_rendered_against_the_final_scope() -> None:
    raw = {
        "id": "out",
        "output": {
            "whole": "{{ input.order }}",
            "text": "n={{ variables.n }}",
            "fromStep": "{{ steps.set.n }}",
            "instance": "{{ instance.id }}",
        },
        "steps": [{"id": "set", "type": "action", "action": "set_variables", "config": {"n": 2}}],
    }

    transition = run(raw, {"order": {"id": "o-1"}})

    assert transition.state.output == {
        "whole": {"id": "o-1"},
        "text": "n=2",
        "fromStep": 2,
        "instance": "inst-1",
    }


def test_instance_completed_event_carries_the_output() -> None:
    raw = {"id": "out", "output": {"echo": "{{ input }}"}, "steps": [log_step("only")]}

    completed = emitted(run(raw, {"x": 1}).effects)[-1]

    assert completed.type == "flowbus.instance.completed"
    assert completed.data["status"] == "completed"
    assert completed.data["output"] == {"echo": {"x": 1}}
