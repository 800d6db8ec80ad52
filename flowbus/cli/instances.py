"""`flowbus instances ...`: find instances in PostgreSQL directly."""

from __future__ import annotations

import click
import orjson

from flowbus.cli.common import run, settings_for_cli
from flowbus.engine.state import InstanceStatus
from flowbus.store.database import create_engine
from flowbus.store.queries import InstanceSummary, find_instances


@click.group()
def instances() -> None:
    """Workflow instances: list and find them."""


@instances.command("list")
@click.option("--correlation", "correlation_id", help="Only instances with this correlation id.")
@click.option("--workflow", "workflow_id", help="Only instances of this workflow.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in InstanceStatus]),
    help="Only instances in this status.",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def list_instances(
    correlation_id: str | None,
    workflow_id: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Instances matching every filter given, newest first."""
    settings = settings_for_cli()

    async def load() -> list[InstanceSummary]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await find_instances(
                    conn,
                    correlation_id=correlation_id,
                    workflow_id=workflow_id,
                    status=status,
                    limit=limit,
                )
        finally:
            await engine.dispose()

    found = run(load())
    if as_json:
        click.echo(orjson.dumps([i.to_json() for i in found]).decode())
        return
    for i in found:
        click.echo(
            f"{i.id}  {i.workflow_id}@v{i.workflow_version:<3} {i.status:<12} "
            f"correlation={i.correlation_id or '-'}  created={i.created_at.isoformat()}"
        )
