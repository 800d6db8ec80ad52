"""`log_message` (seed 002's name for `log`): one bounded, structured log line."""

from __future__ import annotations

from typing import Any

import pytest

from flowbus.actions.log import MESSAGE_CHARS
from flowbus.actions.registry import check_action_config
from flowbus.engine.core import Transition, start
from flowbus.engine.effects import LogLine
from tests.unit.engine.support import NOW, define


def run(config: dict[str, Any], input: Any = None) -> Transition:
    step = {"id": "say", "type": "action", "action": "log_message", "config": config}
    return start(
        define({"id": "logs", "steps": [step]}), instance_id="inst-1", input=input, now=NOW
    )


def line(transition: Transition) -> LogLine:
    [logged] = [e for e in transition.effects if isinstance(e, LogLine)]
    return logged


def test_the_rendered_message_is_logged_at_its_level() -> None:
    transition = run(
        {"message": "Invalid email provided: {{ input.email }}", "level": "error"},
        input={"email": "nope"},
    )

    assert (line(transition).level, line(transition).message) == (
        "error",
        "Invalid email provided: nope",
    )
    assert transition.state.steps["say"].output == {"logged": "Invalid email provided: nope"}


def test_the_level_is_info_by_default() -> None:
    assert line(run({"message": "Welcome email sent successfully"})).level == "info"


@pytest.mark.parametrize(
    ("given", "level"),
    [("WARN", "warning"), ("Warning", "warning"), ("critical", "error"), ("DEBUG", "debug")],
)
def test_level_names_of_other_loggers_are_understood(given: str, level: str) -> None:
    assert line(run({"message": "m", "level": given})).level == level


def test_an_unknown_level_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match=r"config\.level"):
        check_action_config("log_message", {"message": "m", "level": "loud"})


def test_a_long_rendered_message_is_cut_and_marked() -> None:
    transition = run({"message": "{{ input.text }}"}, input={"text": "x" * 50_000})

    message = line(transition).message
    assert len(message) == MESSAGE_CHARS
    assert message.endswith("…")


def test_only_the_named_fields_are_logged_never_the_instance_data() -> None:
    transition = run(
        {"message": "checked", "fields": {"order": "{{ input.id }}"}},
        input={"id": "o-1", "card": "4111 1111 1111 1111"},
    )

    assert line(transition).fields == {"order": "o-1"}
