"""What the operations commands share: they reach a running deployment through its HTTP
API. Each takes `--api-url URL` (or FLOWBUS_API_URL) and `--json`; the bearer token comes
from FLOWBUS_API_TOKEN only, so it stays out of shell history and process lists."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from flowbus.cli.api_client import DEFAULT_URL, TOKEN_VARIABLE, URL_VARIABLE, ApiClient, ApiError

F = TypeVar("F", bound=Callable[..., Any])


def api_command(func: F) -> F:
    """Give a command `--api-url` and `--json`, a client as `api`, and API errors as
    messages (exit status 1, no traceback)."""

    @click.option(
        "--api-url",
        "api_url",
        envvar=URL_VARIABLE,
        default=DEFAULT_URL,
        show_default=True,
        help=f"Base URL of the flowbus API (env {URL_VARIABLE}; token: env {TOKEN_VARIABLE}).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @functools.wraps(func)
    def wrapper(api_url: str, as_json: bool, **kwargs: Any) -> Any:
        client = ApiClient(api_url, os.environ.get(TOKEN_VARIABLE))
        try:
            return func(api=client, as_json=as_json, **kwargs)
        except ApiError as exc:
            hint = f"\n  - the bearer token comes from {TOKEN_VARIABLE}"
            raise click.ClickException(f"{exc}{hint if exc.status == 401 else ''}") from None
        finally:
            client.close()

    return wrapper  # type: ignore[return-value]


def print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Columns padded to their widest cell; `None` shows as `-`."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def json_argument(value: str) -> Any:
    """A JSON argument: text, `@file`, or `-` for standard input."""
    text = sys.stdin.read() if value == "-" else value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {value[1:]}: {exc.strerror}") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None


def print_events(stream: Any, as_json: bool) -> None:
    """Server-Sent outcome events, one line each (the CloudEvent as JSON with --json)."""
    for item in stream:
        if as_json:
            click.echo(orjson.dumps(item.data).decode())
            continue
        data = item.data.get("data") or {}
        step = f" {data['stepId']}" if isinstance(data, dict) and data.get("stepId") else ""
        click.echo(
            f"{item.data.get('flowbusseq', ''):>4} {item.event}{step} {item.data.get('time', '')}"
        )
