"""`flowbus worker` and `flowbus migrate`."""

from __future__ import annotations

import click

from flowbus.cli.common import run, settings_for_cli
from flowbus.store.database import migrate as migrate_schema


@click.command()
def worker() -> None:
    """Run a worker: consume, apply, relay. Start several to share the load."""
    from flowbus.worker.app import run_worker

    run_worker(settings_for_cli())


@click.command()
@click.option("--revision", default="head", show_default=True)
def migrate(revision: str) -> None:
    """Upgrade the database schema (Alembic migrations under migrations/)."""
    settings = settings_for_cli()
    run(migrate_schema(settings.database_url, revision))
    click.echo(f"schema at {revision}")
