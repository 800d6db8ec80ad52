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

import dataclasses
import itertools
import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import structlog

REPEAT_WINDOW_S = 10.0
"""Repeats of one warning or error within this many seconds are counted, not written."""

_MAX_CAUSES = 1000  # distinct causes tracked; the least recently seen is forgotten first
_MAX_FIELDS = 64
_MAX_DEPTH = 6  # nesting rendered inside one field; deeper levels show as `[…]`
_TRACEBACK_FRAMES = 20
_TRACEBACK_LINES = 16  # the traceback budget, in multiples of value_chars
_TRACEBACK_KEYS = ("exception", "stack", "stack_info")
_COORDINATOR_GRACE_S = 60.0

_SECRET_WORDS = (
    *("token", "password", "passwd", "secret", "authorization", "jwt"),
    *("api_key", "apikey", "cookie", "credential"),
)
_MASK = "***"

# A fresh broker creates __consumer_offsets while the first consumer asks for its group
# coordinator; aiokafka logs each retry as an error (and drops the coordinator it found
# with a warning) though it all resolves within seconds.
_STARTUP_TRANSIENT_ERRORS = frozenset(
    {"GroupCoordinatorNotAvailableError", "GroupLoadInProgressError"}
)
_STARTUP_TRANSIENT_MESSAGES = ("Marking the coordinator dead",)

_QUERY = re.compile(r"\?([^\s?#\"'<>]*=[^\s#\"'<>]*)")
_PASSWORD = re.compile(r"(//[^/\s:@]*):[^/\s@]*@")
# Shown as their Unicode pictures (newline as ␊, escape as ␛): printable, and left alone
# by the console renderer's quoting.
_CONTROL = {code: chr(0x2400 + code) for code in range(0x20) if code != ord("\t")}
_CONTROL |= {0x7F: "\u2421"} | {code: "\ufffd" for code in range(0x80, 0xA0)}


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


class BoundedFields:
    """structlog processor: every field bounded, secrets masked, exceptions as short text."""

    def __init__(self, value_chars: int, *, escape_control: bool = False) -> None:
        self.value_chars = value_chars
        self.traceback_chars = _TRACEBACK_LINES * value_chars
        self.escape_control = escape_control

    def __call__(
        self, _logger: object, _method: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        exc_info = event_dict.pop("exc_info", None)
        tracebacks = {key: event_dict.pop(key) for key in _TRACEBACK_KEYS if key in event_dict}
        bounded: structlog.types.EventDict = {}
        for key, value in itertools.islice(event_dict.items(), _MAX_FIELDS):
            name = self._text(str(key))
            bounded[name] = _MASK if _is_secret(name) else self._value(name, value)
        if len(event_dict) > _MAX_FIELDS:
            bounded["fields_dropped"] = len(event_dict) - _MAX_FIELDS
        for key, text in tracebacks.items():
            bounded[key] = self._traceback_text(str(text).splitlines())
        if exception := _exception_of(exc_info):
            lines = format_exception(exception, self.value_chars, self.traceback_chars)
            bounded["exception"] = self._traceback_text(lines)
        return bounded

    def _value(self, key: str, value: object) -> object:
        if key == "headers":
            value = _header_names(value)
        if value is None or isinstance(value, bool | float):
            return value
        if isinstance(value, int) and value.bit_length() <= 64:
            return value
        if isinstance(value, str):
            return self._text(value)
        rendering = _Rendering(self.value_chars)
        rendering.add_value(value, 0)
        if rendering.exact and isinstance(value, list | tuple | dict):
            return value
        return self._text(rendering.text())

    def _text(self, text: str) -> str:
        cut = cut_text(text, self.value_chars)
        return cut.translate(_CONTROL) if self.escape_control else cut

    def _traceback_text(self, lines: list[str]) -> str:
        kept: list[str] = []
        size = 0
        for line in lines:
            line = self._text(line.rstrip("\n"))
            size += len(line) + 1
            if size > self.traceback_chars:
                kept.append(f"…(traceback cut at {self.traceback_chars} chars)")
                break
            kept.append(line)
        return "\n".join(kept)


def format_exception(exception: BaseException, line_chars: int, total_chars: int) -> list[str]:
    """The innermost frames of `exception`'s traceback as plain lines, without locals.

    Each line is cut to `line_chars`, URLs in them redacted, and lines stop once
    `total_chars` are reached; the cost does not depend on the exception's contents.
    """
    depth = sum(1 for _ in traceback.walk_tb(exception.__traceback__))
    lines: list[str] = []
    if depth > _TRACEBACK_FRAMES:
        lines.append(f"(innermost {_TRACEBACK_FRAMES} of {depth} frames)")
    size = 0
    summary = traceback.TracebackException.from_exception(
        exception, limit=-_TRACEBACK_FRAMES, max_group_width=5, max_group_depth=3
    )
    for chunk in summary.format():
        for line in chunk.splitlines():
            lines.append(cut_text(line, line_chars))
            size += len(lines[-1]) + 1
        if size > total_chars:
            break
    return lines


def cut_text(text: str, limit: int) -> str:
    """`text` at most `limit` characters long, redacted, with a marker of what was cut."""
    rest = len(text) - limit
    if rest > 0:
        return f"{redact_urls(text[:limit])}…(+{rest} chars)"
    return redact_urls(text)


def redact_urls(text: str) -> str:
    """Mask the values of query strings and the passwords of URLs found in `text`."""
    if "?" in text:
        text = _QUERY.sub(_masked_query, text)
    if "@" in text:
        text = _PASSWORD.sub(rf"\1:{_MASK}@", text)
    return text


def _masked_query(match: re.Match[str]) -> str:
    pairs = (pair.partition("=") for pair in match.group(1).split("&"))
    return "?" + "&".join(f"{name}={_MASK}" if eq else name for name, eq, _ in pairs)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _header_names(headers: object) -> object:
    if isinstance(headers, Mapping):
        return {name: _MASK for name in headers}
    if isinstance(headers, list | tuple):
        return [pair[0] if isinstance(pair, tuple | list) and pair else _MASK for pair in headers]
    return _MASK


def _exception_of(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info:
        return sys.exc_info()[1]
    return None


class _Rendering:
    """A repr-like rendering of a value that stops after `budget` characters.

    It walks containers item by item (dicts unsorted) to at most `_MAX_DEPTH` levels, so
    the cost depends on the budget, not on the value. `exact` says whether the text is
    the whole value with nothing cut, masked or redacted.
    """

    def __init__(self, budget: int) -> None:
        self.left = budget
        self.parts: list[str] = []
        self.exact = True

    def text(self) -> str:
        return "".join(self.parts)

    def add(self, text: str) -> bool:
        if len(text) > self.left:
            self.parts.append(text[: self.left])
            self.left = 0
            self.exact = False
            return False
        self.parts.append(text)
        self.left -= len(text)
        return True

    def add_value(self, value: object, depth: int) -> bool:
        if isinstance(value, str | bytes):
            return self._add_string(value)
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4096:
            self.exact = False
            return self.add(f"<int of {value.bit_length()} bits>")
        if isinstance(value, Mapping):
            return self._add_items(value.items(), "{", "}", depth, mapping=True)
        if isinstance(value, list | tuple | set | frozenset):
            opener, closer = _BRACKETS.get(type(value), (f"{type(value).__name__}([", "])"))
            return self._add_items(value, opener, closer, depth, mapping=False)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
            opener = f"{type(value).__name__}("
            return self._add_items(fields, opener, ")", depth, mapping=True, keyword=True)
        try:
            text = repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
        return self.add(text)

    def _add_string(self, value: str | bytes) -> bool:
        head = value[: self.left]
        text = repr(head)
        if isinstance(head, str):
            redacted = redact_urls(text)
            self.exact = self.exact and redacted == text
            text = redacted
        if len(head) < len(value):
            self.exact = False
        return self.add(text) and len(head) == len(value)

    def _add_items(
        self,
        items: Iterable[Any],
        opener: str,
        closer: str,
        depth: int,
        *,
        mapping: bool,
        keyword: bool = False,
    ) -> bool:
        if depth >= _MAX_DEPTH:
            self.exact = False
            return self.add(f"{opener}…{closer}")
        if not self.add(opener):
            return False
        for index, item in enumerate(items):
            if index and not self.add(", "):
                return False
            if mapping:
                key, value = item
                if keyword and not self.add(f"{key}="):
                    return False
                if not keyword and not (self.add_value(key, depth + 1) and self.add(": ")):
                    return False
                if isinstance(key, str) and _is_secret(key):
                    self.exact = False
                    value = _MASK
            else:
                value = item
            if not self.add_value(value, depth + 1):
                return False
        return self.add(closer)


_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}


def _add_repeats(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    record = event_dict.get("_record")
    if record is not None and hasattr(record, "repeats"):
        event_dict["repeated"] = record.repeats
        event_dict["window_s"] = record.window_s
    return event_dict


class BoundedArgs(logging.Filter):
    """Cut the string and container arguments of stdlib records before they are formatted.

    Third-party libraries log with `%s` arguments; a payload among them would otherwise be
    rendered in full before any field limit applies.
    """

    def __init__(self, value_chars: int) -> None:
        super().__init__()
        self.value_chars = value_chars

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._bounded(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: self._bounded(arg) for key, arg in record.args.items()}
        return True

    def _bounded(self, arg: object) -> object:
        if isinstance(arg, str):
            return cut_text(arg, self.value_chars)
        if isinstance(arg, bytes | Mapping | list | tuple | set | frozenset):
            rendering = _Rendering(self.value_chars)
            rendering.add_value(arg, 0)
            return arg if rendering.exact else cut_text(rendering.text(), self.value_chars)
        return arg


class StartupTransients(logging.Filter):
    """Demote aiokafka's group-coordinator retries to DEBUG while the worker starts.

    On a fresh broker they last a few seconds and resolve themselves; past the grace
    period they are real errors again.
    """

    def __init__(
        self,
        level: int,
        grace: float = _COORDINATOR_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.level = level
        self.clock = clock
        self.until = clock() + grace

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka") or record.levelno <= logging.DEBUG:
            return True
        if self.clock() >= self.until or not _startup_transient(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.level <= logging.DEBUG


def _startup_transient(record: logging.LogRecord) -> bool:
    if isinstance(record.msg, str) and record.msg.startswith(_STARTUP_TRANSIENT_MESSAGES):
        return True
    args = record.args if isinstance(record.args, tuple) else ()
    return any(type(arg).__name__ in _STARTUP_TRANSIENT_ERRORS for arg in args)


@dataclasses.dataclass
class _Window:
    started: float
    logger: str
    level: int
    message: str
    repeats: int = 0


class RepeatLimiter(logging.Filter):
    """One warning or error per cause per window; the repeats are counted, not written.

    A cause is the logger, the level, the message template and the exception type. The
    first record of a cause opens a window; its repeats within the window are dropped and
    counted. The first record after the window carries the count (`repeats`) and opens
    the next. A cause that went quiet has its count sent to `report` as a record of its
    own a window later, when any record passes through. At most `max_causes` windows are
    kept; the one seen least recently is closed first.
    """

    def __init__(
        self,
        report: Callable[[logging.LogRecord], object],
        *,
        value_chars: int = 512,
        window: float = REPEAT_WINDOW_S,
        max_causes: int = _MAX_CAUSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.report = report
        self.value_chars = value_chars
        self.window = window
        self.max_causes = max_causes
        self.clock = clock
        self._windows: dict[tuple[object, ...], _Window] = {}
        self._next_sweep = 0.0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or hasattr(record, "repeats"):
            return True
        now = self.clock()
        cause = _cause(record)
        with self._lock:
            closed = self._sweep(now) if now >= self._next_sweep else []
            current = self._windows.pop(cause, None)
            if current is not None and now - current.started < self.window:
                current.repeats += 1
                self._windows[cause] = current
                return False
            if current is not None and current.repeats:
                record.__dict__.update(repeats=current.repeats, window_s=self.window)
            if len(self._windows) >= self.max_causes:
                closed.append(self._windows.pop(next(iter(self._windows))))
            message = cut_text(_message(record), self.value_chars)
            self._windows[cause] = _Window(now, record.name, record.levelno, message)
        for window in closed:
            if window.repeats:
                self.report(self._summary(window))
        return True

    def flush(self) -> None:
        """Report the repeats of every open window now (e.g. at shutdown)."""
        with self._lock:
            ended, self._windows = list(self._windows.values()), {}
        for window in ended:
            if window.repeats:
                self.report(self._summary(window))

    def _sweep(self, now: float) -> list[_Window]:
        self._next_sweep = now + min(1.0, self.window)
        quiet = [c for c, w in self._windows.items() if now - w.started >= 2 * self.window]
        return [self._windows.pop(cause) for cause in quiet]

    def _summary(self, window: _Window) -> logging.LogRecord:
        record = logging.LogRecord(window.logger, window.level, "", 0, window.message, None, None)
        record.__dict__.update(repeats=window.repeats, window_s=self.window)
        return record


def _cause(record: logging.LogRecord) -> tuple[object, ...]:
    exc_info: object = record.exc_info
    template: object = record.msg
    if isinstance(record.msg, dict):  # a structlog event dict
        template = record.msg.get("event")
        exc_info = record.msg.get("exc_info")
    exception = _exception_of(exc_info)
    return (record.name, record.levelno, str(template)[:200], type(exception))


def _message(record: logging.LogRecord) -> str:
    if isinstance(record.msg, dict):
        return str(record.msg.get("event", ""))
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)
