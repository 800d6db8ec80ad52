"""`flowbus sdk-worker module:attr`: run code-first workflows and task handlers."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click


def load_worker(
    target: str,
    broker: str | None,
    group: str | None,
    topics: dict[str, str] | None = None,
) -> Any:
    """The `Worker` named by `module:attr`: the attribute itself when it is a Worker, else
    a Worker built from the workflows and tasks it lists (`broker`, `group` and the topic
    names in `topics`, keys `tasks`/`results`/`commands`, override)."""
    from dataclasses import replace

    from flowbus.sdk import Task, Worker, Workflow

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("expected module:attr", param_hint="TARGET")
    sys.path.insert(0, os.getcwd())
    try:
        value: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {target}: {exc}", param_hint="TARGET") from exc
    if isinstance(value, Worker):
        if broker:
            value.broker = broker
        if group:
            value.group = group
        if topics:
            value.topics = replace(value.topics, **topics)
        return value
    items = list(value) if isinstance(value, list | tuple) else [value]
    flows = [i for i in items if isinstance(i, Workflow)]
    tasks = [i for i in items if isinstance(i, Task)]
    if len(flows) + len(tasks) != len(items) or not items:
        raise click.BadParameter(
            f"{target} is neither a Worker nor a list of workflows and tasks",
            param_hint="TARGET",
        )
    options: dict[str, Any] = {"broker": broker or "127.0.0.1:9092"}
    if group:
        options["group"] = group
    if topics:
        options["topics"] = topics
    return Worker(workflows=flows, tasks=tasks, **options)


@click.command("sdk-worker")
@click.argument("target")
@click.option(
    "--broker",
    envvar="FLOWBUS_BROKER_URL",
    default=None,
    help="Kafka bootstrap servers (default: the Worker's, or 127.0.0.1:9092).",
)
@click.option("--group", default=None, help="Consumer group (default flowbus-sdk).")
@click.option(
    "--tasks-topic",
    envvar="FLOWBUS_TOPICS__TASKS",
    default=None,
    help="The topic flowbus sends tasks on (default flowbus.tasks).",
)
@click.option(
    "--results-topic",
    envvar="FLOWBUS_TOPICS__RESULTS",
    default=None,
    help="The topic results go to (default flowbus.results).",
)
@click.option(
    "--commands-topic",
    envvar="FLOWBUS_TOPICS__COMMANDS",
    default=None,
    help="The topic definitions are registered on (default flowbus.commands).",
)
def sdk_worker(
    target: str,
    broker: str | None,
    group: str | None,
    tasks_topic: str | None,
    results_topic: str | None,
    commands_topic: str | None,
) -> None:
    """Run the workflows and task handlers of TARGET (`module:attr`, a Worker or a list of
    workflows and tasks) until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    named = {"tasks": tasks_topic, "results": results_topic, "commands": commands_topic}
    topics = {key: value for key, value in named.items() if value}
    load_worker(target, broker, group, topics).run()
