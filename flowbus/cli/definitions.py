"""`flowbus definitions ...`: validate, apply, list, and print the language's schema."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from flowbus.cli.common import fail, run, settings_for_cli
from flowbus.definitions.errors import DefinitionConflict, DefinitionError
from flowbus.definitions.loader import definition_files, load_file, load_path
from flowbus.definitions.model import Trigger, WorkflowDefinition
from flowbus.definitions.schema import definition_json_schema
from flowbus.store.database import create_engine
from flowbus.store.definitions import active_definitions, save_definition


@click.group()
def definitions() -> None:
    """Workflow definitions: validate, apply, list, schema."""


@definitions.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def validate(path: Path) -> None:
    """Check the definitions at PATH (a file or a folder); report every problem."""
    failures = 0
    for file in definition_files(path):
        try:
            definition = load_file(file)
        except DefinitionError as exc:
            failures += 1
            click.echo(f"✗ {exc}", err=True)
            continue
        click.echo(f"✓ {file}: {definition.id} ({len(definition.steps)} steps)")
    if failures:
        raise SystemExit(1)


async def apply_definitions(database_url: str, items: list[WorkflowDefinition]) -> list[str]:
    """Store each definition (a new version only when it changed); describe what happened."""
    engine = create_engine(database_url, pool_size=1)
    lines = []
    try:
        for definition in items:
            async with engine.begin() as conn:
                stored, created = await save_definition(conn, definition)
            state = "stored" if created else "unchanged"
            lines.append(f"{stored.id} v{stored.version}: {state}")
    finally:
        await engine.dispose()
    return lines


@definitions.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def apply(path: Path) -> None:
    """Store the definitions at PATH; running workers pick them up at once."""
    settings = settings_for_cli()
    try:
        items = load_path(path)
        lines = run(apply_definitions(settings.database_url, items))
    except (DefinitionError, DefinitionConflict) as exc:
        raise fail(str(exc)) from None
    for line in lines:
        click.echo(line)


@definitions.command("list")
def list_definitions() -> None:
    """The active definitions (latest non-deprecated version of each workflow)."""
    settings = settings_for_cli()

    async def load() -> list[WorkflowDefinition]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await active_definitions(conn)
        finally:
            await engine.dispose()

    for definition in run(load()):
        triggers = ", ".join(_describe(t) for t in definition.triggers) or "-"
        click.echo(f"{definition.id:<32} v{definition.version:<4} triggers={triggers}")


def _describe(trigger: Trigger) -> str:
    if trigger.schedule is not None:
        return f"schedule '{trigger.schedule.cron}' {trigger.schedule.timezone}"
    what = trigger.type or trigger.transition or ("pattern" if trigger.pattern else "*")
    return f"{trigger.topic}:{what}"


@definitions.command()
def schema() -> None:
    """Print the JSON Schema of the definition language."""
    click.echo(orjson.dumps(definition_json_schema(), option=orjson.OPT_INDENT_2).decode())
