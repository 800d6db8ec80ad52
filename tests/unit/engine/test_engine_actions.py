"""Inline actions run inside the transition: set_variables, send_event and log."""

from __future__ import annotations

from typing import Any

from flowbus.engine.core import Transition, start
from flowbus.engine.effects import LogLine, PublishEvent
from flowbus.engine.ids import published_event_id
from flowbus.engine.state import InstanceStatus

from .support import NOW, NOW_TEXT, define, event_types


def action(step_id: str, name: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": name, "config": config, **extra}


def run_steps(*steps: dict[str, Any], input: Any = None) -> Transition:
    raw = {"id": "actions", "steps": list(steps)}
    return start(define(raw), instance_id="inst-1", input=input, now=NOW)


def published(transition: Transition) -> list[PublishEvent]:
    return [e for e in transition.effects if isinstance(e, PublishEvent)]


def test_set_variables_renders_templates_into_variables() -> None:
    transition = run_steps(
        action(
            "set", "set_variables", {"total": "{{ input.total }}", "label": "t={{ input.total }}"}
        ),
        input={"total": 12.5},
    )

    assert transition.state.variables == {"total": 12.5, "label": "t=12.5"}


def test_set_variables_output_is_the_values_it_set() -> None:
    transition = run_steps(action("set", "set_variables", {"a": 1}))

    assert transition.state.steps["set"].output == {"a": 1}


def test_set_variables_keeps_variables_it_does_not_name() -> None:
    transition = run_steps(
        action("first", "set_variables", {"a": 1, "b": 1}, next="second"),
        action("second", "set_variables", {"b": 2}),
    )

    assert transition.state.variables == {"a": 1, "b": 2}


def test_later_steps_see_variables_set_earlier() -> None:
    transition = run_steps(
        action("set", "set_variables", {"who": "{{ input.name }}"}, next="greet"),
        action("greet", "log", {"message": "hello {{ variables.who }}"}),
        input={"name": "Ada"},
    )

    [line] = [e for e in transition.effects if isinstance(e, LogLine)]
    assert line.message == "hello Ada"


def test_send_event_publishes_rendered_key_and_data() -> None:
    transition = run_steps(
        action(
            "send",
            "send_event",
            {
                "topic": "orders-out",
                "type": "order.confirmed",
                "key": "{{ input.orderId }}",
                "subject": "order/{{ input.orderId }}",
                "data": {"orderId": "{{ input.orderId }}", "lines": "{{ input.lines }}"},
            },
        ),
        input={"orderId": "o-7", "lines": [{"sku": "A"}]},
    )

    assert published(transition) == [
        PublishEvent(
            topic="orders-out",
            key="o-7",
            id=published_event_id("inst-1", 1),
            type="order.confirmed",
            time=NOW_TEXT,
            data={"orderId": "o-7", "lines": [{"sku": "A"}]},
            subject="order/o-7",
        )
    ]


def test_send_event_key_and_subject_default_to_the_instance_id() -> None:
    transition = run_steps(action("send", "send_event", {"topic": "out", "type": "ping"}))

    [event] = published(transition)
    assert (event.key, event.subject, event.data) == ("inst-1", "inst-1", None)


def test_send_event_output_names_the_published_event() -> None:
    transition = run_steps(action("send", "send_event", {"topic": "out", "type": "ping"}))

    assert transition.state.steps["send"].output == {
        "eventId": published_event_id("inst-1", 1),
        "topic": "out",
        "type": "ping",
    }


def test_send_event_key_from_a_numeric_field_is_published_as_text() -> None:
    transition = run_steps(
        action(
            "send", "send_event", {"topic": "out", "type": "ping", "key": "{{ input.orderNo }}"}
        ),
        input={"orderNo": 1234},
    )

    assert [e.key for e in published(transition)] == ["1234"]


def test_log_yields_a_log_line_with_rendered_message_level_and_fields() -> None:
    transition = run_steps(
        action(
            "note",
            "log",
            {"message": "got {{ input.n }}", "level": "warning", "fields": {"n": "{{ input.n }}"}},
        ),
        input={"n": 4},
    )

    assert [e for e in transition.effects if isinstance(e, LogLine)] == [
        LogLine(level="warning", message="got 4", fields={"n": 4})
    ]


def test_log_level_defaults_to_info() -> None:
    transition = run_steps(action("note", "log", {"message": "hi"}))

    assert [e.level for e in transition.effects if isinstance(e, LogLine)] == ["info"]


def test_config_invalid_after_rendering_fails_the_step_with_action_config_error() -> None:
    transition = run_steps(
        action("send", "send_event", {"topic": "{{ input.topic }}", "type": "ping"}), input={}
    )

    error = transition.state.steps["send"].error
    assert error is not None
    assert (error.type, error.step_id) == ("ActionConfigError", "send")
    assert error.message == "topic: Input should be a valid string"


def test_config_invalid_after_rendering_fails_the_instance_and_publishes_nothing() -> None:
    transition = run_steps(
        action("send", "send_event", {"topic": "{{ input.topic }}", "type": "ping"}), input={}
    )

    assert transition.state.status is InstanceStatus.FAILED
    assert published(transition) == []
    assert event_types(transition.effects) == [
        "flowbus.instance.started",
        "flowbus.step.started",
        "flowbus.step.failed",
        "flowbus.instance.failed",
    ]
