"""The `flowbus` command."""

from __future__ import annotations

import click

from flowbus.cli.api import api
from flowbus.cli.approvals import approvals
from flowbus.cli.definitions import definitions
from flowbus.cli.dev import dev
from flowbus.cli.instances import instances
from flowbus.cli.kafka import publish, tail, topics
from flowbus.cli.remote import remote
from flowbus.cli.worker import migrate, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flowbus")
def cli() -> None:
    """flowbus: a Kafka-native workflow engine.

    Settings come from FLOWBUS_* environment variables over config/flowbus.toml.
    """


@click.group()
def bench() -> None:
    """Benchmarks that print figures."""


def _register() -> None:
    for command in (dev, worker, migrate, publish, tail, topics, definitions, approvals, bench):
        cli.add_command(command)
    cli.add_command(api)
    cli.add_command(remote)
    cli.add_command(instances)
    from flowbus.bench.match import match_command

    bench.add_command(match_command, name="match")
    from flowbus.bench.e2e import e2e_command

    bench.add_command(e2e_command, name="e2e")


_register()


def main() -> None:
    cli()
