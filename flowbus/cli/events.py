"""`flowbus events ...`: webhook events and live workflow events, through the API (which
checks the topic is a source topic and fills in the CloudEvents attributes). `flowbus
publish` writes to the broker directly instead."""

from __future__ import annotations

from typing import Any

import click

from flowbus.cli.api_client import ApiClient
from flowbus.cli.api_command import api_command, json_argument, print_events, print_json


@click.group()
def events() -> None:
    """Publish webhook events; watch a workflow's events."""


@events.command("publish")
@click.argument("topic")
@click.argument("payload")
@click.option("--key", help="Record key.")
@api_command
def publish(api: ApiClient, as_json: bool, topic: str, payload: str, key: str | None) -> None:
    """Publish PAYLOAD (JSON, @file or -) to the source topic TOPIC."""
    body = api.json(
        "POST",
        f"/v1/events/{topic}",
        json=json_argument(payload),
        params={"key": key} if key else None,
    )
    _published(body, as_json)


@events.command("trigger")
@click.argument("workflow_id")
@click.argument("payload")
@click.option("--key", help="Record key.")
@api_command
def trigger(api: ApiClient, as_json: bool, workflow_id: str, payload: str, key: str | None) -> None:
    """Publish PAYLOAD to the first trigger topic of WORKFLOW_ID."""
    body = api.json(
        "POST",
        f"/v1/workflows/{workflow_id}/events",
        json=json_argument(payload),
        params={"key": key} if key else None,
    )
    _published(body, as_json)


def _published(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(body)
    else:
        click.echo(
            f"published {body['eventId']} to {body['topic']}[{body['partition']}] "
            f"at offset {body['offset']}"
        )


@events.command("watch")
@click.argument("workflow_id")
@api_command
def watch_workflow(api: ApiClient, as_json: bool, workflow_id: str) -> None:
    """Print every event of WORKFLOW_ID's instances from now on (Ctrl-C to stop)."""
    try:
        print_events(api.stream(f"/v1/workflows/{workflow_id}/events"), as_json)
    except KeyboardInterrupt:
        return
