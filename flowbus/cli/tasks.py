"""`flowbus tasks ...`: the reusable tasks steps reference by `taskId`, through the API.

`apply` checks every file here first (the same checks the API runs), so one invalid file
stores none."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from flowbus.cli.api_client import ApiClient
from flowbus.cli.api_command import api_command, print_json, table
from flowbus.cli.common import fail
from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import definition_files, parse_document
from flowbus.definitions.tasks import validate_task


@click.group()
def tasks() -> None:
    """Reusable tasks: list, show, apply."""


@tasks.command("list")
@api_command
def list_tasks(api: ApiClient, as_json: bool) -> None:
    """Every task with its versions."""
    body = api.json("GET", "/v1/tasks")
    if as_json:
        print_json(body["items"])
        return
    rows = [
        (
            t["id"],
            t["latestVersion"],
            t["versions"][-1]["action"],
            ",".join(f"v{v['version']}" for v in t["versions"]),
        )
        for t in body["items"]
    ]
    table(rows, ["TASK", "LATEST", "ACTION", "VERSIONS"])


@tasks.command("show")
@click.argument("task_id")
@click.option("--version", type=int, help="A stored version (default: the latest).")
@api_command
def show_task(api: ApiClient, as_json: bool, task_id: str, version: int | None) -> None:
    """A stored version's document and the workflow versions made from it (YAML, or JSON
    with --json)."""
    base = f"/v1/tasks/{task_id}"
    body = api.json("GET", f"{base}/versions/{version}" if version else base)
    if as_json:
        print_json(body)
        return
    click.echo(f"# {body['id']} v{body['version']}, stored {body['createdAt']}")
    click.echo(yaml.safe_dump(body["document"], sort_keys=False).rstrip())
    for use in body["usedBy"]:
        click.echo(f"# used by {use['workflowId']} v{use['workflowVersion']} step {use['stepId']}")


@tasks.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@api_command
def apply(api: ApiClient, as_json: bool, path: Path) -> None:
    """Store the tasks at PATH (a file or a folder); each becomes a new version when its
    content changed. Workflow versions already stored keep the task version they were made
    from: apply a workflow again to use the new one."""
    files = definition_files(path)
    try:
        for file in files:
            validate_task(parse_document(file.read_text(), str(file)), str(file))
    except DefinitionError as exc:
        raise fail(str(exc)) from None
    results = []
    for file in files:
        media = "application/json" if file.suffix == ".json" else "application/yaml"
        body = api.json("POST", "/v1/tasks", content=file.read_bytes(), content_type=media)
        results.append({"file": str(file), **body})
        if not as_json:
            state = "stored" if body["created"] else "unchanged"
            click.echo(f"{file}: {body['id']} v{body['version']}: {state}")
    if as_json:
        print_json(results)
