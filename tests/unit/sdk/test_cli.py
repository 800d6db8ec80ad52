"""`flowbus sdk-worker module:attr` finds the worker to run."""

from __future__ import annotations

import click
import pytest

from flowbus.cli.sdk import load_worker
from flowbus.sdk import Worker


def test_a_list_of_workflows_and_tasks_becomes_a_worker() -> None:
    worker = load_worker("tests.unit.sdk.app:components", "b:9092", None)
    assert isinstance(worker, Worker)
    assert list(worker.workflows) == [("greet", 1)]
    assert list(worker.tasks) == ["shout"]
    assert (worker.broker, worker.group) == ("b:9092", "flowbus-sdk")


def test_a_worker_is_used_as_it_is() -> None:
    worker = load_worker("tests.unit.sdk.app:worker", None, None)
    assert (worker.broker, worker.group) == ("kafka:9092", "mine")


@pytest.mark.parametrize("target", ["tests.unit.sdk.app:nothing", "tests.unit.sdk.app", "no:x"])
def test_anything_else_is_refused(target: str) -> None:
    with pytest.raises(click.BadParameter):
        load_worker(target, None, None)
