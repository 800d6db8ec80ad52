"""The `flowbus` command.

Local commands run the parts of a deployment or talk to the broker and the database
directly: `dev`, `worker`, `api`, `migrate`, `topics`, `publish`, `tail`, `bench`, plus
`definitions validate|schema` and `approvals decide`. The operations (`definitions`,
`instances`, `approvals list`, `events`) go through a running deployment's HTTP API.
"""

from __future__ import annotations

import click

from flowbus.cli.api import api
from flowbus.cli.approvals import approvals
from flowbus.cli.definitions import definitions
from flowbus.cli.dev import dev
from flowbus.cli.events import events
from flowbus.cli.instances import instances
from flowbus.cli.kafka import publish, tail, topics
from flowbus.cli.sdk import sdk_worker
from flowbus.cli.tasks import tasks
from flowbus.cli.worker import migrate, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flowbus")
def cli() -> None:
    """flowbus: a Kafka-native workflow engine.

    Settings come from FLOWBUS_* environment variables over config/flowbus.toml. The
    operations (definitions, instances, approvals, events) call the HTTP API at
    FLOWBUS_API_URL with the token in FLOWBUS_API_TOKEN.
    """


class _Benchmarks(click.Group):
    """Loads a benchmark only when it is run: they are dev tooling, not the runtime."""

    # name -> (module under flowbus.bench, click command in it)
    commands_by_name = {
        "e2e": ("e2e", "e2e_command"),
        "growth": ("growth", "growth_command"),
        "match": ("match", "match_command"),
        "realistic": ("realistic", "realistic_command"),
        "scale": ("scale", "scale_command"),
        "timers": ("timers", "timers_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands_by_name)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands_by_name:
            return None
        from importlib import import_module

        module, name = self.commands_by_name[cmd_name]
        command = getattr(import_module(f"flowbus.bench.{module}"), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_Benchmarks)
def bench() -> None:
    """Benchmarks that print figures."""


def _register() -> None:
    for command in (dev, worker, api, migrate, topics, publish, tail, bench, sdk_worker):
        cli.add_command(command)
    for operations in (definitions, instances, approvals, events, tasks):
        cli.add_command(operations)


_register()


def main() -> None:
    cli()
