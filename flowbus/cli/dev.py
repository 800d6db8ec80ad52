"""`flowbus dev`: everything on this machine, in one command."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click
import structlog
from sqlalchemy.engine import URL, make_url

from flowbus.cli.common import fail, run, settings_for_cli

if TYPE_CHECKING:
    from flowbus.devstack.ports import PortInUseError

log = structlog.get_logger(__name__)
_LOCAL_HOSTS = {"127.0.0.1", "localhost"}
MISSING_LOCAL_EXTRA = (
    "flowbus dev needs the local extra (its embedded PostgreSQL): "
    "pip install 'flowbus[local]', or `make dev` in a checkout"
)


def _ensure_dev_secret(path: Path | None) -> None:
    """A random HS256 secret for decision tokens, kept with the dev data (mode 600)."""
    if path is None or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(32))
    path.chmod(0o600)


def _local_extra_installed() -> bool:
    """The `local` extra brings pgserver; FLOWBUS_PG_BIN names PostgreSQL binaries instead."""
    return importlib.util.find_spec("pgserver") is not None or "FLOWBUS_PG_BIN" in os.environ


def _broker_port_taken(exc: PortInUseError, free: int) -> str:
    return (
        f"{exc}: flowbus dev cannot start its Kafka broker there; set broker_url to a "
        f"free port, e.g. FLOWBUS_BROKER_URL=127.0.0.1:{free}"
    )


def _api_port_taken(port: int, free: int) -> str:
    return (
        f"port {port} on 127.0.0.1 is already in use: flowbus dev cannot serve the API and "
        f"dashboard there; set api.port to a free port, e.g. FLOWBUS_API__PORT={free}"
    )


def _database_port_taken(exc: PortInUseError, free: int, database_url: URL) -> str:
    suggestion = database_url.set(port=free).render_as_string(hide_password=True)
    return (
        f"{exc}: flowbus dev cannot start its PostgreSQL there; set database_url to a "
        f"free port, e.g. FLOWBUS_DATABASE_URL={suggestion}"
    )


@click.command()
def dev() -> None:
    """Start a local broker, an embedded PostgreSQL, the schema, the topics, the example
    workflows, the API with the dashboard (auth off, on 127.0.0.1) and a worker; stop them
    all on Ctrl-C."""
    settings = settings_for_cli()
    broker_address = urlsplit(f"kafka://{settings.broker_url.split(',')[0]}")
    db_url = make_url(settings.database_url)
    if broker_address.hostname not in _LOCAL_HOSTS or db_url.host not in _LOCAL_HOSTS:
        raise fail(
            "flowbus dev runs a local broker and database: broker_url and "
            "database_url must point at 127.0.0.1"
        )
    if not _local_extra_installed():
        raise fail(MISSING_LOCAL_EXTRA)
    # Dev tooling, imported only here so that a deployment never loads it.
    from flowbus.devstack.api import ApiPortInUseError, ApiServerError, DevApi
    from flowbus.devstack.kafka import BrokerError, BrokerPortInUseError, KafkaBroker
    from flowbus.devstack.ports import free_port
    from flowbus.devstack.postgres import (
        DatabasePortInUseError,
        DatabaseServerError,
        PostgresServer,
    )
    from flowbus.devstack.stack import prepare

    began = time.monotonic()
    _ensure_dev_secret(settings.approvals.hs256_secret_file)
    broker = KafkaBroker(settings.state_dir / "kafka", port=broker_address.port or 9092)
    database = PostgresServer(settings.state_dir / "postgres", port=db_url.port or 5432)
    api = DevApi(settings.state_dir / "api", port=settings.api.port)
    try:
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                for future in [pool.submit(broker.start), pool.submit(database.start)]:
                    future.result()
        except (BrokerError, DatabaseServerError) as exc:
            # A taken port is one line naming the setting to change.
            if isinstance(exc, BrokerPortInUseError) and exc.port == broker.port:
                raise fail(_broker_port_taken(exc, free_port())) from None
            if isinstance(exc, DatabasePortInUseError) and exc.port == database.port:
                raise fail(_database_port_taken(exc, free_port(), db_url)) from None
            raise fail(f"flowbus dev could not start: {exc}") from None
        database.ensure_database(db_url.database or "flowbus")
        definitions = run(prepare(settings))
        names = ", ".join(f"{d.id} v{d.version}" for d in definitions) or "none"
        try:
            api.start()
        except ApiPortInUseError as exc:
            raise fail(_api_port_taken(exc.port, free_port())) from None
        except ApiServerError as exc:
            raise fail(f"flowbus dev could not start the API: {exc}") from None
        click.echo(
            f"\nflowbus is up in {time.monotonic() - began:.1f}s: broker {settings.broker_url}, "
            f"database 127.0.0.1:{database.port}, workflows: {names}\n"
            f"Dashboard: {api.url}  (and the API; auth off; its log: {api.log_path})\n"
            "Open the dashboard, or try in another terminal:\n"
            f"  .venv/bin/flowbus tail {settings.topics.instances} {settings.topics.steps} "
            f"{settings.topics.approvals} order-notifications\n"
            "  .venv/bin/flowbus publish orders "
            '\'{"type": "order.created", "order_id": "o-1", "amount": 1500}\'\n'
            "Ctrl-C stops everything.\n",
            err=True,
        )
        from flowbus.worker.app import run_worker

        with contextlib.suppress(SystemExit):
            run_worker(settings)
    finally:
        api.stop(timeout=10)
        database.stop()
        broker.stop()
        click.echo("flowbus dev stopped.", err=True)
