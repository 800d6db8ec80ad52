"""Log filters: repeated causes counted instead of written, and the start-up transients of a
fresh broker demoted."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from flowbus.logging.bounds import cut_text, exception_of

REPEAT_WINDOW_S = 10.0
"""Repeats of one warning or error within this many seconds are counted, not written."""

_MAX_CAUSES = 1000  # distinct causes tracked; the least recently seen is forgotten first
_COORDINATOR_GRACE_S = 60.0

# A fresh broker creates __consumer_offsets while the first consumer asks for its group
# coordinator; aiokafka logs each retry as an error (and drops the coordinator it found
# with a warning) though it all resolves within seconds.
_STARTUP_TRANSIENT_ERRORS = frozenset(
    {"GroupCoordinatorNotAvailableError", "GroupLoadInProgressError"}
)
_STARTUP_TRANSIENT_MESSAGES = ("Marking the coordinator dead",)


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
    exception = exception_of(exc_info)
    return (record.name, record.levelno, str(template)[:200], type(exception))


def _message(record: logging.LogRecord) -> str:
    if isinstance(record.msg, dict):
        return str(record.msg.get("event", ""))
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)
