"""`executionLog`: how much step history is recorded, and metadata on every event."""

from __future__ import annotations

from typing import Any

from flowbus.engine.effects import RecordAttempt
from flowbus.engine.inputs import ActionResult
from flowbus.engine.state import ErrorInfo

from .support import Instance, at, emitted, log_step, of_kind, webhook_step


def logged(execution_log: dict[str, Any], input: Any = None, **options: Any) -> Instance:
    raw = {
        "id": "logged",
        "executionLog": execution_log,
        "steps": [
            {
                "id": "set",
                "type": "action",
                "action": "set_variables",
                "config": {"who": "{{ input.user }}"},
                "next": "call",
            },
            webhook_step("call"),
        ],
    }
    return Instance(raw, input=input, **options)


def records(instance: Instance) -> list[tuple[str, str]]:
    return [(r.step_id, r.status) for r in of_kind(instance.history, RecordAttempt)]


def test_level_error_records_no_attempt_that_did_not_fail() -> None:
    instance = logged({"level": "error"})

    instance.apply(ActionResult("call", 1, output={"status": 200}), at(1))

    assert records(instance) == []


def test_level_error_records_failed_attempts_with_their_error_only() -> None:
    instance = logged({"level": "error"}, input={"user": "ada"})

    instance.apply(ActionResult("call", 1, error=ErrorInfo(type="HttpError", message="500")), at(1))

    [record] = of_kind(instance.history, RecordAttempt)
    assert (record.step_id, record.status) == ("call", "failed")
    assert record.error is not None
    assert record.error.type == "HttpError"
    assert (record.input, record.output) == (None, None)


def test_level_info_records_every_attempt_with_its_output_and_no_input() -> None:
    instance = logged({"level": "info"}, input={"user": "ada"})

    completed = [r for r in of_kind(instance.effects, RecordAttempt) if r.status == "completed"]

    assert [(r.step_id, r.input, r.output) for r in completed] == [("set", None, {"who": "ada"})]


def test_level_debug_records_the_rendered_action_config_as_input() -> None:
    instance = logged({"level": "debug"}, input={"user": "ada"})

    instance.apply(ActionResult("call", 1, output={"status": 200}), at(1))

    completed = {r.step_id: r for r in of_kind(instance.history, RecordAttempt)}
    assert completed["set"].input == {"who": "ada"}
    assert completed["call"].input == {"url": "https://example.test/call"}
    assert completed["call"].output == {"status": 200}


def test_metadata_fields_from_the_input_are_on_every_event() -> None:
    instance = logged(
        {"metadata": ["customer", "region"]}, input={"customer": "c-1", "region": "eu"}
    )

    instance.apply(ActionResult("call", 1, output={}), at(1))

    events = emitted(instance.history)
    assert [e.data.get("metadata") for e in events] == [{"customer": "c-1", "region": "eu"}] * len(
        events
    )


def test_metadata_field_missing_from_the_input_is_taken_from_the_trigger_data() -> None:
    instance = logged(
        {"metadata": ["customer", "region"]},
        input={"customer": "c-1"},
        trigger={"type": "order.created", "data": {"customer": "c-2", "region": "us"}},
    )

    assert emitted(instance.effects)[0].data["metadata"] == {"customer": "c-1", "region": "us"}


def test_metadata_field_found_nowhere_is_left_out() -> None:
    instance = logged({"metadata": ["customer", "region"]}, input={"customer": "c-1"})

    assert emitted(instance.effects)[0].data["metadata"] == {"customer": "c-1"}


def test_events_carry_no_metadata_without_metadata_fields() -> None:
    instance = Instance({"id": "plain", "steps": [log_step("only")]}, input={"customer": "c-1"})

    assert all("metadata" not in e.data for e in emitted(instance.effects))
