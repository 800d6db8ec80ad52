"""`flowbus remote ...`: operate a running deployment through its HTTP API.

Every command takes `--api URL` (or FLOWBUS_API_URL) and `--json` (the API's JSON as it
is, for scripts); the bearer token comes from FLOWBUS_API_TOKEN.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import yaml

from flowbus.cli.api_client import (
    DEFAULT_URL,
    TOKEN_VARIABLE,
    URL_VARIABLE,
    ApiClient,
    ApiError,
)
from flowbus.definitions.loader import definition_files

F = TypeVar("F", bound=Callable[..., Any])


def _api_command(func: F) -> F:
    """Give a command `--api` and `--json`, a client as `api`, and API errors as messages."""

    @click.option(
        "--api",
        "api_url",
        envvar=URL_VARIABLE,
        default=DEFAULT_URL,
        show_default=True,
        help=f"Base URL of the API (env {URL_VARIABLE}).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the API's JSON as it is.")
    @functools.wraps(func)
    def wrapper(api_url: str, as_json: bool, **kwargs: Any) -> Any:
        client = ApiClient(api_url, os.environ.get(TOKEN_VARIABLE))
        try:
            return func(api=client, as_json=as_json, **kwargs)
        except ApiError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            client.close()

    return wrapper  # type: ignore[return-value]


def _print_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _json_argument(value: str) -> Any:
    """A JSON argument: text, `@file`, or `-` for standard input."""
    text = sys.stdin.read() if value == "-" else value
    if value.startswith("@"):
        text = Path(value[1:]).read_text()
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None


@click.group()
def remote() -> None:
    """Operate a running deployment through its HTTP API (token: FLOWBUS_API_TOKEN)."""


# -- definitions -------------------------------------------------------------------------


@remote.group("definitions")
def remote_definitions() -> None:
    """Workflow definitions: list, show, apply, validate, deprecate, delete, graph."""


@remote_definitions.command("list")
@_api_command
def list_definitions(api: ApiClient, as_json: bool) -> None:
    """Every workflow with its versions."""
    body = api.json("GET", "/v1/definitions")
    if as_json:
        _print_json(body)
        return
    rows = [
        (
            w["id"],
            w["latestVersion"],
            w["activeVersion"],
            ",".join(
                f"v{v['version']}" + ("(deprecated)" if v["deprecated"] else "")
                for v in w["versions"]
            ),
        )
        for w in body["items"]
    ]
    _table(rows, ["WORKFLOW", "LATEST", "ACTIVE", "VERSIONS"])


def _version_path(workflow_id: str, version: int | None, tail: str = "") -> str:
    base = f"/v1/definitions/{workflow_id}"
    return (f"{base}/versions/{version}" if version else base) + tail


@remote_definitions.command("show")
@click.argument("workflow_id")
@click.option("--version", type=int, help="A stored version (default: the latest).")
@_api_command
def show_definition(api: ApiClient, as_json: bool, workflow_id: str, version: int | None) -> None:
    """A stored version's document (YAML, or JSON with --json)."""
    body = api.json("GET", _version_path(workflow_id, version))
    if as_json:
        _print_json(body)
        return
    deprecated = " (deprecated)" if body["deprecated"] else ""
    click.echo(f"# {body['id']} v{body['version']}{deprecated}, stored {body['createdAt']}")
    click.echo(yaml.safe_dump(body["document"], sort_keys=False).rstrip())


@remote_definitions.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_api_command
def apply_definitions(api: ApiClient, as_json: bool, path: Path) -> None:
    """Store the definitions at PATH (a file or a folder) as new versions when changed."""
    results = []
    for file in definition_files(path):
        body = api.json(
            "POST", "/v1/definitions", content=file.read_bytes(), content_type=_media(file)
        )
        results.append(body)
        if not as_json:
            state = "stored" if body["created"] else "unchanged"
            click.echo(f"{file}: {body['id']} v{body['version']}: {state}")
    if as_json:
        _print_json(results)


def _media(file: Path) -> str:
    return "application/json" if file.suffix == ".json" else "application/yaml"


@remote_definitions.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_api_command
def validate_definitions(api: ApiClient, as_json: bool, path: Path) -> None:
    """Check the definitions at PATH with the deployment's step and action types."""
    failures, reports = 0, []
    for file in definition_files(path):
        report = api.json(
            "POST", "/v1/definitions/validate", content=file.read_bytes(), content_type=_media(file)
        )
        reports.append({"file": str(file), **report})
        if report["valid"]:
            if not as_json:
                click.echo(f"✓ {file}: {report['id']} ({report['steps']} steps)")
            continue
        failures += 1
        if not as_json:
            for problem in report["problems"]:
                where = [report["id"] or "<definition>"]
                if problem.get("stepId"):
                    where.append(f"step {problem['stepId']!r}")
                if problem.get("field"):
                    where.append(problem["field"])
                click.echo(f"✗ {file}: {': '.join(where)}: {problem['detail']}", err=True)
    if as_json:
        _print_json(reports)
    if failures:
        raise SystemExit(1)


@remote_definitions.command("deprecate")
@click.argument("workflow_id")
@click.argument("version", type=int)
@click.option("--undo", is_flag=True, help="Make the version start instances again.")
@_api_command
def deprecate(api: ApiClient, as_json: bool, workflow_id: str, version: int, undo: bool) -> None:
    """Stop (or, with --undo, resume) new instances on VERSION."""
    body = api.json("PATCH", _version_path(workflow_id, version), json={"deprecated": not undo})
    if as_json:
        _print_json(body)
    else:
        state = "deprecated" if body["deprecated"] else "active"
        click.echo(f"{body['id']} v{body['version']}: {state}")


@remote_definitions.command("delete")
@click.argument("workflow_id")
@click.option("--version", type=int, help="Only this version (default: every version).")
@_api_command
def delete(api: ApiClient, as_json: bool, workflow_id: str, version: int | None) -> None:
    """Delete a workflow's versions (refused while instances of them run)."""
    body = api.json("DELETE", _version_path(workflow_id, version))
    if as_json:
        _print_json(body)
    else:
        click.echo(f"{body['id']}: deleted " + ", ".join(f"v{v}" for v in body["versions"]))


@remote_definitions.command("graph")
@click.argument("workflow_id")
@click.option("--version", type=int, help="A stored version (default: the latest).")
@_api_command
def graph(api: ApiClient, as_json: bool, workflow_id: str, version: int | None) -> None:
    """The step graph as a Mermaid flowchart."""
    text = api.call("GET", _version_path(workflow_id, version, "/mermaid")).text
    if as_json:
        _print_json({"mermaid": text})
    else:
        click.echo(text.rstrip())


# -- instances ---------------------------------------------------------------------------


@remote.group("instances")
def remote_instances() -> None:
    """Instances: list, show, start, pause, resume, cancel, retry, send events, watch."""


_STATUSES = [
    "created",
    "running",
    "waiting",
    "paused",
    "completed",
    "failed",
    "cancelled",
    "compensating",
    "compensated",
    "timed_out",
]


@remote_instances.command("list")
@click.option("--workflow", help="Only this workflow.")
@click.option("--version", type=int, help="Only this version (with --workflow).")
@click.option("--status", multiple=True, type=click.Choice(_STATUSES), help="Repeatable.")
@click.option("--correlation-id")
@click.option("--since", help="Created at or after (RFC 3339).")
@click.option("--until", help="Created before (RFC 3339).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--all", "every_page", is_flag=True, help="Follow the cursor to the last page.")
@_api_command
def list_instances(
    api: ApiClient,
    as_json: bool,
    workflow: str | None,
    version: int | None,
    status: tuple[str, ...],
    correlation_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    every_page: bool,
) -> None:
    """Instances, newest first."""
    params: list[tuple[str, str]] = [("limit", str(limit))]
    for name, value in (
        ("workflowId", workflow),
        ("version", version),
        ("correlationId", correlation_id),
        ("createdAfter", since),
        ("createdBefore", until),
    ):
        if value is not None:
            params.append((name, str(value)))
    params += [("status", s) for s in status]
    items, cursor = [], None
    while True:
        page = api.json(
            "GET", "/v1/instances", params=params + ([("cursor", cursor)] if cursor else [])
        )
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None or not every_page:
            break
    if as_json:
        _print_json({"items": items, "nextCursor": cursor})
        return
    rows = [
        (
            i["id"],
            f"{i['workflowId']} v{i['workflowVersion']}",
            i["status"],
            i["correlationId"],
            i["createdAt"],
        )
        for i in items
    ]
    _table(rows, ["INSTANCE", "WORKFLOW", "STATUS", "CORRELATION", "CREATED"])
    if cursor:
        click.echo(f"(more: --all, or the next page after cursor {cursor})", err=True)


@remote_instances.command("show")
@click.argument("instance_id")
@_api_command
def show_instance(api: ApiClient, as_json: bool, instance_id: str) -> None:
    """An instance: status, variables, current steps and step history."""
    body = api.json("GET", f"/v1/instances/{instance_id}")
    if as_json:
        _print_json(body)
        return
    click.echo(f"{body['id']}  {body['workflowId']} v{body['workflowVersion']}  {body['status']}")
    click.echo(f"created {body['createdAt']}  updated {body['updatedAt']}")
    if body.get("correlationId"):
        click.echo(f"correlation {body['correlationId']}")
    click.echo("variables " + orjson.dumps(body["variables"]).decode())
    if body.get("error"):
        click.echo("error " + orjson.dumps(body["error"]).decode())
    current = ", ".join(f"{s['stepId']} ({s['status']})" for s in body["currentSteps"]) or "-"
    click.echo(f"current steps: {current}")
    _history(body["history"])


def _history(history: list[dict[str, Any]]) -> None:
    rows = [
        (h["stepId"], h["attempt"], h["stepType"], h["status"], h["startedAt"], h["finishedAt"])
        for h in history
    ]
    _table(rows, ["STEP", "ATTEMPT", "TYPE", "STATUS", "STARTED", "FINISHED"])


@remote_instances.command("steps")
@click.argument("instance_id")
@_api_command
def steps(api: ApiClient, as_json: bool, instance_id: str) -> None:
    """An instance's step executions."""
    body = api.json("GET", f"/v1/instances/{instance_id}/steps")
    if as_json:
        _print_json(body)
    else:
        _history(body["items"])


def _accepted(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(body)
    else:
        click.echo(
            f"{body['command']} accepted for {body['instanceId']} (command {body['commandId']})"
        )


@remote_instances.command("start")
@click.argument("workflow_id")
@click.option("--input", "input_json", default="null", help="JSON, @file, or - for stdin.")
@click.option("--version", type=int, help="Default: the active version.")
@click.option("--correlation-id")
@_api_command
def start(
    api: ApiClient,
    as_json: bool,
    workflow_id: str,
    input_json: str,
    version: int | None,
    correlation_id: str | None,
) -> None:
    """Start an instance of WORKFLOW_ID (its input is checked against the input schema)."""
    request: dict[str, Any] = {"workflowId": workflow_id, "input": _json_argument(input_json)}
    if version is not None:
        request["version"] = version
    if correlation_id is not None:
        request["correlationId"] = correlation_id
    _accepted(api.json("POST", "/v1/instances", json=request), as_json)


def _simple_command(name: str, summary: str) -> None:
    @remote_instances.command(name, help=summary)
    @click.argument("instance_id")
    @_api_command
    def command(api: ApiClient, as_json: bool, instance_id: str) -> None:
        _accepted(api.json("POST", f"/v1/instances/{instance_id}/{name}"), as_json)


_simple_command("pause", "Pause a running or waiting instance.")
_simple_command("resume", "Resume a paused instance.")
_simple_command("retry", "Run a failed instance again from the step that failed.")


@remote_instances.command("cancel")
@click.argument("instance_id")
@click.option("--no-compensate", is_flag=True, help="Do not undo completed steps.")
@click.option("--reason")
@_api_command
def cancel(
    api: ApiClient, as_json: bool, instance_id: str, no_compensate: bool, reason: str | None
) -> None:
    """Cancel an instance (compensating completed steps unless --no-compensate)."""
    request: dict[str, Any] = {"compensate": not no_compensate}
    if reason is not None:
        request["reason"] = reason
    _accepted(api.json("POST", f"/v1/instances/{instance_id}/cancel", json=request), as_json)


@remote_instances.command("send-event")
@click.argument("instance_id")
@click.argument("event", default="null")
@click.option("--step", "step_id", help="The waiting step (default: the first that takes it).")
@_api_command
def send_event(
    api: ApiClient, as_json: bool, instance_id: str, event: str, step_id: str | None
) -> None:
    """Send EVENT (JSON, @file or -) to a waiting step of the instance."""
    request: dict[str, Any] = {"event": _json_argument(event)}
    if step_id is not None:
        request["stepId"] = step_id
    _accepted(api.json("POST", f"/v1/instances/{instance_id}/events", json=request), as_json)


def _print_events(stream: Any, as_json: bool) -> None:
    for item in stream:
        if as_json:
            click.echo(orjson.dumps(item.data).decode())
            continue
        data = item.data.get("data") or {}
        step = f" {data['stepId']}" if isinstance(data, dict) and data.get("stepId") else ""
        click.echo(
            f"{item.data.get('flowbusseq', ''):>4} {item.event}{step} {item.data.get('time', '')}"
        )


@remote_instances.command("watch")
@click.argument("instance_id")
@click.option("--after", type=int, default=0, help="Only events after this flowbusseq.")
@click.option("--follow", is_flag=True, help="Keep watching after the final event.")
@_api_command
def watch(api: ApiClient, as_json: bool, instance_id: str, after: int, follow: bool) -> None:
    """Print the instance's events in order as they happen (until its final event)."""
    params = {"after": after, "follow": str(follow).lower()}
    _print_events(api.stream(f"/v1/instances/{instance_id}/events", params), as_json)


# -- events ------------------------------------------------------------------------------


@remote.group("events")
def remote_events() -> None:
    """Publish webhook events; watch a workflow's events."""


@remote_events.command("publish")
@click.argument("topic")
@click.argument("payload")
@click.option("--key", help="Record key.")
@_api_command
def publish(api: ApiClient, as_json: bool, topic: str, payload: str, key: str | None) -> None:
    """Publish PAYLOAD (JSON, @file or -) to the source topic TOPIC."""
    body = api.json(
        "POST",
        f"/v1/events/{topic}",
        json=_json_argument(payload),
        params={"key": key} if key else None,
    )
    _published(body, as_json)


@remote_events.command("trigger")
@click.argument("workflow_id")
@click.argument("payload")
@click.option("--key", help="Record key.")
@_api_command
def trigger(api: ApiClient, as_json: bool, workflow_id: str, payload: str, key: str | None) -> None:
    """Publish PAYLOAD to the first trigger topic of WORKFLOW_ID."""
    body = api.json(
        "POST",
        f"/v1/workflows/{workflow_id}/events",
        json=_json_argument(payload),
        params={"key": key} if key else None,
    )
    _published(body, as_json)


def _published(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(body)
    else:
        click.echo(
            f"published {body['eventId']} to {body['topic']}[{body['partition']}] "
            f"at offset {body['offset']}"
        )


@remote_events.command("watch")
@click.argument("workflow_id")
@_api_command
def watch_workflow(api: ApiClient, as_json: bool, workflow_id: str) -> None:
    """Print every event of WORKFLOW_ID's instances from now on (Ctrl-C to stop)."""
    try:
        _print_events(api.stream(f"/v1/workflows/{workflow_id}/events"), as_json)
    except KeyboardInterrupt:
        return
