"""What every CLI command shares: settings, logging, errors without tracebacks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from flowbus.config import Settings, load_settings
from flowbus.logging import configure_logging

T = TypeVar("T")


def settings_for_cli() -> Settings:
    settings = load_settings()
    configure_logging(
        settings.log_level, settings.log_format, value_chars=settings.limits.log_value_chars
    )
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def fail(message: str) -> click.ClickException:
    return click.ClickException(message)
