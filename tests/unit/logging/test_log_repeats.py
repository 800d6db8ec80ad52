"""A repeated warning or error is written once per window, then counted."""

from __future__ import annotations

import logging

import structlog
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaConnectionError

from flowbus.logging import RepeatLimiter, StartupTransients
from tests.unit.logging.conftest import LogOutput


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def error(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def broker_down(logger: logging.Logger, node: int) -> None:
    try:
        raise KafkaConnectionError(f"Connect call failed ('127.0.0.1', 9092) node {node}")
    except KafkaConnectionError as exc:
        logger.error("Unable connect to node with id %s: %s", node, exc)


def test_a_thousand_identical_errors_write_one_line_then_the_count(output: LogOutput) -> None:
    output.configure()
    logger = logging.getLogger("aiokafka.conn")
    for attempt in range(1000):
        broker_down(logger, attempt % 3)
    assert len(output.lines()) == 1
    logging.getLogger().handlers[0].close()  # at shutdown, open windows report their count
    assert len(output.lines()) == 2
    assert "Unable connect to node with id 0" in output.lines()[1]
    assert "repeated=999" in output.lines()[1]


def test_structlog_errors_repeat_by_event_and_exception_type(output: LogOutput) -> None:
    output.configure()
    log = structlog.get_logger("t")
    for _ in range(500):
        for error_type in (ValueError, KeyError):
            try:
                raise error_type("boom")
            except Exception:
                log.exception("batch.record_failed")
    assert output.text().count("batch.record_failed") == 2


def test_the_first_line_after_the_window_carries_the_count() -> None:
    clock, reported = Clock(), []
    limiter = RepeatLimiter(reported.append, window=10.0, clock=clock)
    metadata_error = error("aiokafka", "Unable to update metadata from %s", [1])
    assert limiter.filter(metadata_error)
    assert [limiter.filter(metadata_error) for _ in range(41)] == [False] * 41
    clock.now += 10.0
    next_error = error("aiokafka", "Unable to update metadata from %s", [1])
    assert limiter.filter(next_error)
    assert next_error.__dict__["repeats"] == 41
    assert reported == []


def test_a_cause_that_went_quiet_has_its_count_written_a_window_later() -> None:
    clock, reported = Clock(), []
    limiter = RepeatLimiter(reported.append, window=10.0, clock=clock)
    for _ in range(42):
        limiter.filter(error("aiokafka", "Unable to update metadata from %s", [1]))
    clock.now += 20.0
    assert limiter.filter(error("faust", "Something else"))
    assert [(r.getMessage(), r.__dict__["repeats"]) for r in reported] == [
        ("Unable to update metadata from [1]", 41)
    ]


def test_other_causes_pass_the_limiter_on_their_own() -> None:
    limiter = RepeatLimiter(lambda _: None, clock=Clock())
    assert limiter.filter(error("aiokafka.conn", "Unable connect to node %s", 1))
    assert limiter.filter(error("aiokafka.cluster", "Unable connect to node %s", 1))
    assert limiter.filter(error("aiokafka.conn", "Metadata for topic %s not ready", "x"))


def test_info_lines_are_not_limited(output: LogOutput) -> None:
    output.configure()
    for _ in range(100):
        logging.getLogger("uvicorn.access").info("GET /healthz 200")
    assert len(output.lines()) == 100


def test_the_oldest_cause_is_forgotten_when_too_many_are_tracked() -> None:
    limiter = RepeatLimiter(lambda _: None, max_causes=2, clock=Clock())
    for message in ("a", "b", "c"):
        assert limiter.filter(error("x", message))
    assert limiter.filter(error("x", "a"))
    assert not limiter.filter(error("x", "c"))


def test_coordinator_retries_while_starting_are_debug_lines() -> None:
    clock = Clock()
    transients = StartupTransients(logging.INFO, grace=60.0, clock=clock)
    record = error(
        "aiokafka.consumer.group_coordinator",
        "Group Coordinator Request failed: %s",
        GroupCoordinatorNotAvailableError(),
    )
    assert not transients.filter(record)
    assert record.levelno == logging.DEBUG


def test_dropping_the_coordinator_while_starting_is_a_debug_line() -> None:
    transients = StartupTransients(logging.INFO, grace=60.0, clock=Clock())
    record = logging.LogRecord(
        "aiokafka.consumer.group_coordinator",
        logging.WARNING,
        __file__,
        1,
        "Marking the coordinator dead (node %s)for group %s.",
        (1, "flowbus"),
        None,
    )
    assert not transients.filter(record)


def test_coordinator_retries_after_the_start_are_errors() -> None:
    clock = Clock()
    transients = StartupTransients(logging.INFO, grace=60.0, clock=clock)
    clock.now += 61.0
    record = error(
        "aiokafka.consumer.group_coordinator",
        "Group Coordinator Request failed: %s",
        GroupCoordinatorNotAvailableError(),
    )
    assert transients.filter(record)
    assert record.levelno == logging.ERROR
