"""Logging configured as the CLI configures it, written to a buffer the test can read."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
import structlog

from flowbus.logging import configure_logging

_TOUCHED = ("aiokafka", "kafka", "faust", "mode", "alembic", "httpx", "httpcore")


class LogOutput:
    def __init__(self) -> None:
        self._buffer = io.StringIO()

    def configure(
        self, fmt: str = "console", *, level: str = "info", value_chars: int = 512
    ) -> None:
        configure_logging(level, fmt, value_chars=value_chars)
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(self._buffer)

    def text(self) -> str:
        return self._buffer.getvalue()

    def shown(self) -> str:
        """The text as a reader sees it: JSON lines decoded, console lines as they are."""
        return "\n".join(_decoded(line) for line in self.lines())

    def lines(self) -> list[str]:
        return self.text().splitlines()


def _decoded(line: str) -> str:
    if not line.startswith("{"):
        return line
    return json.dumps(json.loads(line), ensure_ascii=False)


@pytest.fixture
def output() -> Iterator[LogOutput]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, structlog.get_config()
    levels = {name: logging.getLogger(name).level for name in _TOUCHED}
    excepthook = threading.excepthook
    yield LogOutput()
    threading.excepthook = excepthook
    root.handlers[:], level, config = saved
    root.setLevel(level)
    structlog.configure(**config)
    for name, saved_level in levels.items():
        logging.getLogger(name).setLevel(saved_level)
