"""Structured logging: readable lines in a terminal, JSON lines in production.

A log line costs the same whatever was logged, so logging can never stall the process:

- every field is cut to `value_chars` characters; containers are rendered only as far as
  that allows, never by a full `repr`; tracebacks are plain text (no locals), the
  innermost frames only, each line cut and the whole capped at a few kilobytes;
- URLs lose their password and their query values (`?api_key=***`), fields named like
  secrets are masked, and `headers` keep their names only; httpx and httpcore, whose own
  loggers print full URLs and headers, are held at WARNING;
- a warning or error that repeats (same logger, level, message template and exception
  type) is written once per window; the next line of that cause says how many were left
  out (`repeated=N`);
- control characters in console output are shown as symbols (a newline as ␊), so a value
  can neither forge log lines nor send escape sequences to the terminal.

These rules hold for third-party loggers too, as they all go through the root handler,
and for exceptions that end a thread.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

import structlog

from flowbus.logging.bounds import BoundedArgs, BoundedFields
from flowbus.logging.repeats import REPEAT_WINDOW_S, RepeatLimiter, StartupTransients

__all__ = [
    "REPEAT_WINDOW_S",
    "BoundedArgs",
    "BoundedFields",
    "RepeatLimiter",
    "StartupTransients",
    "configure_logging",
]


def configure_logging(level: str = "info", fmt: str = "console", *, value_chars: int = 512) -> None:
    """Route structlog and stdlib logging through one bounded renderer at `level`.

    `value_chars` is the longest rendering of one log field (setting
    `limits.log_value_chars`).
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    console = fmt != "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        if console
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    handler = _RootHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                _add_repeats,
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                BoundedFields(value_chars, escape_control=console),
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    handler.addFilter(StartupTransients(numeric))
    handler.addFilter(BoundedArgs(value_chars))
    handler.addFilter(RepeatLimiter(report=handler.handle, value_chars=value_chars))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # The Kafka client libraries are chatty at INFO about routine rebalances; httpx and
    # httpcore log full request URLs at INFO and header values at DEBUG.
    for noisy in ("aiokafka", "kafka", "faust", "mode", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    for leaky in ("httpx", "httpcore"):
        logging.getLogger(leaky).setLevel(logging.WARNING)
    threading.excepthook = _log_thread_exception


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    structlog.get_logger(__name__).error(
        "thread.died",
        thread=args.thread.name if args.thread else None,
        exc_info=args.exc_value,
    )


class _RootHandler(logging.StreamHandler[TextIO]):
    """The one handler on the root logger; at shutdown it reports repeats still counted."""

    def close(self) -> None:
        for limiter in self.filters:
            if isinstance(limiter, RepeatLimiter):
                limiter.flush()
        super().close()


def _add_repeats(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    record = event_dict.get("_record")
    if record is not None and hasattr(record, "repeats"):
        event_dict["repeated"] = record.repeats
        event_dict["window_s"] = record.window_s
    return event_dict
