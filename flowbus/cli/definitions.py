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
from flowbus.definitions.loader import definition_files, parse_document, validate_definition
from flowbus.definitions.schema import definition_json_schema
from flowbus.definitions.tasks import (
    TaskLibrary,
    referenced_task_ids,
    resolve_task_steps,
    validate_task,
)
from flowbus.service.definitions import is_task_file, library_documents, local_task_library


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
    its content changed, and running workers pick it up at once. Tasks among them (files in
    a `tasks` folder, or of `kind: task`) are stored first. Every file is validated first
    (a definition with task references by the API, which knows the stored tasks): one
    invalid file stores none."""
    try:
        task_documents, documents = library_documents(path)
        for source, raw in task_documents:
            validate_task(raw, source)
        for source, raw in documents:
            if not referenced_task_ids(raw):
                validate_definition(raw, source)
    except DefinitionError as exc:
        raise fail(str(exc)) from None
    results = []
    sources = [(s, "/v1/tasks") for s, _ in task_documents]
    for source, where in [*sources, *((s, "/v1/definitions") for s, _ in documents)]:
        file = Path(source)
        body = api.json("POST", where, content=file.read_bytes(), content_type=_media(file))
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
    """Check the definitions and tasks at PATH (a file or a folder); report every problem.
    Runs here: no deployment needed. Task references resolve against the tasks at PATH."""
    library = local_task_library(path)
    reports = [_report(file, path, library) for file in definition_files(path)]
    if as_json:
        print_json(reports)
    else:
        for report in reports:
            if report["valid"]:
                what = "task" if report["steps"] is None else f"{report['steps']} steps"
                click.echo(f"✓ {report['file']}: {report['id']} ({what})")
            else:
                click.echo(f"✗ {report['message']}", err=True)
    if not all(report["valid"] for report in reports):
        raise SystemExit(1)


def _report(file: Path, path: Path, library: TaskLibrary) -> dict[str, Any]:
    """The API's validation report for one file, with the file and the full message (for a
    task: `steps` None)."""
    try:
        raw = parse_document(file.read_text(), str(file))
        if is_task_file(file, path, raw):
            task = validate_task(raw, str(file))
            return {"file": str(file), "valid": True, "id": task.id, "steps": None, "problems": []}
        if referenced_task_ids(raw):
            try:
                raw = resolve_task_steps(raw, library)
            except DefinitionError as exc:
                raise DefinitionError(exc.definition_id, exc.problems, str(file)) from None
        definition = validate_definition(raw, str(file))
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
