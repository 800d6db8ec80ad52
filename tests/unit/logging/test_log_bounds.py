"""A log line is bounded whatever was logged: fields, containers, tracebacks, arguments."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import structlog

from tests.unit.logging.conftest import LogOutput

FIVE_MB = "x" * 5_000_000
LINE_BUDGET = 4_000
TRACEBACK_BUDGET = 16 * 512 + 2_000


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def walk(value: object, depth: int = 0) -> None:
    payload_seen_by_this_frame = f"LOCAL-{depth}"
    if isinstance(value, list):
        if not value:
            raise ValueError(f"too deep at {payload_seen_by_this_frame}: {FIVE_MB}")
        walk(value[0], depth + 1)


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_100000_deep_list_field_renders_a_short_line(output: LogOutput, fmt: str) -> None:
    output.configure(fmt)
    structlog.get_logger("t").info("event.received", data=nested(100_000))
    assert len(output.text()) < LINE_BUDGET
    assert "[[[[[[…]]]]]]" in output.shown()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_5_mb_string_field_is_cut_with_the_number_of_chars_left_out(
    output: LogOutput, fmt: str
) -> None:
    output.configure(fmt)
    structlog.get_logger("t").info("event.received", value=FIVE_MB)
    assert len(output.text()) < LINE_BUDGET
    assert f"…(+{5_000_000 - 512} chars)" in output.shown()


def test_the_field_limit_follows_the_setting(output: LogOutput) -> None:
    output.configure("json", value_chars=100)
    structlog.get_logger("t").info("event.received", value=FIVE_MB)
    assert json.loads(output.text())["value"] == "x" * 100 + f"…(+{5_000_000 - 100} chars)"


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_an_error_over_a_deep_payload_logs_a_short_plain_traceback(
    output: LogOutput, fmt: str
) -> None:
    output.configure(fmt)
    try:
        walk(nested(300))
    except ValueError:
        structlog.get_logger("t").exception("batch.record_failed", value=FIVE_MB)
    text = output.text()
    assert len(text) < LINE_BUDGET + TRACEBACK_BUDGET
    assert "(innermost 20 of 302 frames)" in text
    assert "ValueError: too deep at LOCAL-300" in text
    assert "LOCAL-299" not in text  # no locals


def test_an_exception_holding_a_100000_deep_list_logs_a_short_traceback(
    output: LogOutput,
) -> None:
    output.configure()
    try:
        raise KeyError(nested(100_000))
    except KeyError:
        structlog.get_logger("t").exception("lookup.failed")
    assert len(output.text()) < TRACEBACK_BUDGET
    assert "KeyError" in output.text()


def test_a_third_party_error_with_a_huge_argument_is_cut_before_formatting(
    output: LogOutput,
) -> None:
    output.configure()
    logging.getLogger("aiokafka.consumer").error("bad record %s %r", FIVE_MB, nested(100_000))
    assert len(output.text()) < LINE_BUDGET
    assert "bad record xxx" in output.text()


def test_a_third_party_exception_is_a_short_plain_traceback(output: LogOutput) -> None:
    output.configure()
    try:
        walk(nested(300))
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    assert len(output.text()) < LINE_BUDGET + TRACEBACK_BUDGET
    assert "(innermost 20 of 302 frames)" in output.text()


def test_small_containers_stay_structured_in_json(output: LogOutput) -> None:
    output.configure("json")
    structlog.get_logger("t").info("definitions.loaded", workflows=["a@v1", "b@v2"])
    assert json.loads(output.text())["workflows"] == ["a@v1", "b@v2"]


def test_a_value_cannot_forge_a_console_line(output: LogOutput) -> None:
    output.configure()
    structlog.get_logger("t").warning("event\n.refused", reason="x\n2026-01-01 [error] x\x1b[2J")
    assert len(output.lines()) == 1
    assert "event␊.refused" in output.text()
    assert "x␊2026-01-01 [error] x␛[2J" in output.text()


def test_the_number_of_fields_is_bounded(output: LogOutput) -> None:
    output.configure("json")
    structlog.get_logger("t").info("many", **{f"f{i}": i for i in range(100_000)})
    line = json.loads(output.text())
    assert line["fields_dropped"] > 99_000
    assert len(output.text()) < LINE_BUDGET


def test_an_exception_ending_a_thread_is_logged_as_a_short_traceback(output: LogOutput) -> None:
    output.configure()
    thread = threading.Thread(target=walk, args=(nested(300),), name="fetcher")
    thread.start()
    thread.join()
    assert "thread.died" in output.text()
    assert "thread=fetcher" in output.text()
    assert len(output.text()) < LINE_BUDGET + TRACEBACK_BUDGET
