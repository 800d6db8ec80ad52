"""`flowbus definitions ...`: workflow definitions.

`validate` and `schema` run here, with no deployment: they are the definition language's
own checks, the same code the API runs, so a file can be checked before anything is up
(in CI, say). Everything that reads or changes stored versions goes through the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson
import yaml

from flowbus.cli.api_client import ApiClient
from flowbus.cli.api_command import api_command, print_json, table
from flowbus.cli.common import fail
from flowbus.definitions.errors import DefinitionError
from flowbus.definitions.loader import definition_files, load_file, load_path
from flowbus.definitions.schema import definition_json_schema


@click.group()
def definitions() -> None:
    """Workflow definitions: list, show, graph, apply, deprecate, delete; validate and
    schema run locally."""


@definitions.command("list")
@api_command
def list_definitions(api: ApiClient, as_json: bool) -> None:
    """Every workflow with its versions."""
    body = api.json("GET", "/v1/definitions")
    if as_json:
        print_json(body["items"])
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
    table(rows, ["WORKFLOW", "LATEST", "ACTIVE", "VERSIONS"])


def _version_path(workflow_id: str, version: int | None, tail: str = "") -> str:
    base = f"/v1/definitions/{workflow_id}"
    return (f"{base}/versions/{version}" if version else base) + tail


@definitions.command("show")
@click.argument("workflow_id")
@click.option("--version", type=int, help="A stored version (default: the latest).")
@api_command
def show_definition(api: ApiClient, as_json: bool, workflow_id: str, version: int | None) -> None:
    """A stored version's document (YAML, or JSON with --json)."""
    body = api.json("GET", _version_path(workflow_id, version))
    if as_json:
        print_json(body)
        return
    deprecated = " (deprecated)" if body["deprecated"] else ""
    click.echo(f"# {body['id']} v{body['version']}{deprecated}, stored {body['createdAt']}")
    click.echo(yaml.safe_dump(body["document"], sort_keys=False).rstrip())


@definitions.command("graph")
@click.argument("workflow_id")
@click.option("--version", type=int, help="A stored version (default: the latest).")
@api_command
def graph(api: ApiClient, as_json: bool, workflow_id: str, version: int | None) -> None:
    """The step graph as a Mermaid flowchart."""
    text = api.call("GET", _version_path(workflow_id, version, "/mermaid")).text
    if as_json:
        print_json({"mermaid": text})
    else:
        click.echo(text.rstrip())


@definitions.command("apply")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@api_command
def apply(api: ApiClient, as_json: bool, path: Path) -> None:
    """Store the definitions at PATH (a file or a folder); each becomes a new version when
    its content changed, and running workers pick it up at once. Every file is validated
    first: one invalid file stores none."""
    try:
        load_path(path)
    except DefinitionError as exc:
        raise fail(str(exc)) from None
    results = []
    for file in definition_files(path):
        body = api.json(
            "POST", "/v1/definitions", content=file.read_bytes(), content_type=_media(file)
        )
        results.append({"file": str(file), **body})
        if not as_json:
            state = "stored" if body["created"] else "unchanged"
            click.echo(f"{file}: {body['id']} v{body['version']}: {state}")
    if as_json:
        print_json(results)


def _media(file: Path) -> str:
    return "application/json" if file.suffix == ".json" else "application/yaml"


@definitions.command("deprecate")
@click.argument("workflow_id")
@click.argument("version", type=int)
@click.option("--undo", is_flag=True, help="Make the version start instances again.")
@api_command
def deprecate(api: ApiClient, as_json: bool, workflow_id: str, version: int, undo: bool) -> None:
    """Stop (or, with --undo, resume) new instances on VERSION."""
    body = api.json("PATCH", _version_path(workflow_id, version), json={"deprecated": not undo})
    if as_json:
        print_json(body)
    else:
        state = "deprecated" if body["deprecated"] else "active"
        click.echo(f"{body['id']} v{body['version']}: {state}")


@definitions.command("delete")
@click.argument("workflow_id")
@click.option("--version", type=int, help="Only this version (default: every version).")
@api_command
def delete(api: ApiClient, as_json: bool, workflow_id: str, version: int | None) -> None:
    """Delete a workflow's versions (refused while instances of them run)."""
    body = api.json("DELETE", _version_path(workflow_id, version))
    if as_json:
        print_json(body)
    else:
        click.echo(f"{body['id']}: deleted " + ", ".join(f"v{v}" for v in body["versions"]))


@definitions.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One report per file, as JSON.")
def validate(path: Path, as_json: bool) -> None:
    """Check the definitions at PATH (a file or a folder); report every problem. Runs here:
    no deployment needed."""
    reports = [_report(file) for file in definition_files(path)]
    if as_json:
        print_json(reports)
    else:
        for report in reports:
            if report["valid"]:
                click.echo(f"✓ {report['file']}: {report['id']} ({report['steps']} steps)")
            else:
                click.echo(f"✗ {report['message']}", err=True)
    if not all(report["valid"] for report in reports):
        raise SystemExit(1)


def _report(file: Path) -> dict[str, Any]:
    """The API's validation report for one file, with the file and the full message."""
    try:
        definition = load_file(file)
    except DefinitionError as exc:
        problems = [
            {"detail": p.message, "stepId": p.step_id, "field": p.field} for p in exc.problems
        ]
        return {
            "file": str(file),
            "valid": False,
            "id": exc.definition_id,
            "steps": None,
            "problems": problems,
            "message": str(exc),
        }
    steps = len(definition.steps)
    return {"file": str(file), "valid": True, "id": definition.id, "steps": steps, "problems": []}


@definitions.command()
def schema() -> None:
    """Print the JSON Schema of the definition language."""
    click.echo(orjson.dumps(definition_json_schema(), option=orjson.OPT_INDENT_2).decode())
