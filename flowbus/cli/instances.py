"""`flowbus instances ...`: find, read, start and operate instances through the API.

With `--json` an instance's id is `instanceId`, as in every outcome event and command
answer, so a script can pass what it reads from one straight to the other.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from flowbus.cli.api_client import ApiClient
from flowbus.cli.api_command import api_command, json_argument, print_events, print_json, table
from flowbus.engine.state import InstanceStatus


@click.group()
def instances() -> None:
    """Instances: list, show, steps, watch, start, pause, resume, retry, cancel, send-event."""


def _instance_json(item: dict[str, Any]) -> dict[str, Any]:
    return {"instanceId": item["id"], **{k: v for k, v in item.items() if k != "id"}}


@instances.command("list")
@click.option("--workflow", help="Only this workflow.")
@click.option("--version", type=int, help="Only this version (with --workflow).")
@click.option(
    "--status",
    multiple=True,
    type=click.Choice([s.value for s in InstanceStatus]),
    help="Only instances in this status (repeatable).",
)
@click.option("--correlation", "--correlation-id", "correlation_id", help="This correlation id.")
@click.option("--since", help="Created at or after (RFC 3339).")
@click.option("--until", help="Created before (RFC 3339).")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--all", "every_page", is_flag=True, help="Follow the cursor to the last page.")
@api_command
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
    """Instances matching every filter given, newest first (--json: one JSON array)."""
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
        print_json([_instance_json(i) for i in items])
    else:
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
        table(rows, ["INSTANCE", "WORKFLOW", "STATUS", "CORRELATION", "CREATED"])
    if cursor:
        click.echo(f"(more: --all, or the next page after cursor {cursor})", err=True)


@instances.command("show")
@click.argument("instance_id")
@api_command
def show_instance(api: ApiClient, as_json: bool, instance_id: str) -> None:
    """An instance: status, variables, current steps and step history."""
    body = api.json("GET", f"/v1/instances/{instance_id}")
    if as_json:
        print_json(_instance_json(body))
        return
    click.echo(f"{body['id']}  {body['workflowId']} v{body['workflowVersion']}  {body['status']}")
    click.echo(f"created {body['createdAt']}  updated {body['updatedAt']}")
    if body.get("correlationId"):
        click.echo(f"correlation {body['correlationId']}")
    click.echo("variables " + orjson.dumps(body["variables"]).decode())
    if body.get("error"):
        click.echo("error " + orjson.dumps(body["error"]).decode())
    held = body.get("held")
    if held:
        click.echo(f"held ({held['reason']}) since {held.get('since')}: {held.get('message')}")
        click.echo("  `flowbus instances retry` sends it its task again once fixed")
    current = ", ".join(f"{s['stepId']} ({s['status']})" for s in body["currentSteps"]) or "-"
    click.echo(f"current steps: {current}")
    _history(body["history"])


def _history(history: list[dict[str, Any]]) -> None:
    rows = [
        (h["stepId"], h["attempt"], h["stepType"], h["status"], h["startedAt"], h["finishedAt"])
        for h in history
    ]
    table(rows, ["STEP", "ATTEMPT", "TYPE", "STATUS", "STARTED", "FINISHED"])


@instances.command("steps")
@click.argument("instance_id")
@api_command
def steps(api: ApiClient, as_json: bool, instance_id: str) -> None:
    """An instance's step executions."""
    body = api.json("GET", f"/v1/instances/{instance_id}/steps")
    if as_json:
        print_json(body["items"])
    else:
        _history(body["items"])


@instances.command("watch")
@click.argument("instance_id")
@click.option("--after", type=int, default=0, help="Only events after this flowbusseq.")
@click.option("--follow", is_flag=True, help="Keep watching after the final event.")
@api_command
def watch(api: ApiClient, as_json: bool, instance_id: str, after: int, follow: bool) -> None:
    """Print the instance's events in order as they happen (until its final event)."""
    params = {"after": after, "follow": str(follow).lower()}
    print_events(api.stream(f"/v1/instances/{instance_id}/events", params), as_json)


def _accepted(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(body)
    else:
        click.echo(
            f"{body['command']} accepted for {body['instanceId']} (command {body['commandId']})"
        )


@instances.command("start")
@click.argument("workflow_id")
@click.option("--input", "input_json", default="null", help="JSON, @file, or - for stdin.")
@click.option("--version", type=int, help="Default: the active version.")
@click.option("--correlation-id")
@api_command
def start(
    api: ApiClient,
    as_json: bool,
    workflow_id: str,
    input_json: str,
    version: int | None,
    correlation_id: str | None,
) -> None:
    """Start an instance of WORKFLOW_ID (its input is checked against the input schema)."""
    request: dict[str, Any] = {"workflowId": workflow_id, "input": json_argument(input_json)}
    if version is not None:
        request["version"] = version
    if correlation_id is not None:
        request["correlationId"] = correlation_id
    _accepted(api.json("POST", "/v1/instances", json=request), as_json)


def _simple_command(name: str, summary: str) -> None:
    @instances.command(name, help=summary)
    @click.argument("instance_id")
    @api_command
    def command(api: ApiClient, as_json: bool, instance_id: str) -> None:
        _accepted(api.json("POST", f"/v1/instances/{instance_id}/{name}"), as_json)


_simple_command("pause", "Pause a running or waiting instance.")
_simple_command("resume", "Resume a paused instance.")
_simple_command("retry", "Run a failed instance again from the step that failed.")


@instances.command("cancel")
@click.argument("instance_id")
@click.option("--no-compensate", is_flag=True, help="Do not undo completed steps.")
@click.option("--reason")
@api_command
def cancel(
    api: ApiClient, as_json: bool, instance_id: str, no_compensate: bool, reason: str | None
) -> None:
    """Cancel an instance (compensating completed steps unless --no-compensate)."""
    request: dict[str, Any] = {"compensate": not no_compensate}
    if reason is not None:
        request["reason"] = reason
    _accepted(api.json("POST", f"/v1/instances/{instance_id}/cancel", json=request), as_json)


@instances.command("send-event")
@click.argument("instance_id")
@click.argument("event", default="null")
@click.option("--step", "step_id", help="The waiting step (default: the first that takes it).")
@api_command
def send_event(
    api: ApiClient, as_json: bool, instance_id: str, event: str, step_id: str | None
) -> None:
    """Send EVENT (JSON, @file or -) to a waiting step of the instance."""
    request: dict[str, Any] = {"event": json_argument(event)}
    if step_id is not None:
        request["stepId"] = step_id
    _accepted(api.json("POST", f"/v1/instances/{instance_id}/events", json=request), as_json)
