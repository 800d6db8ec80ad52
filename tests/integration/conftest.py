"""Integration tests: real broker, real database, real worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.stack import Deployment, Stack

REPO = Path(__file__).resolve().parents[2]

DeploymentFactory = Callable[..., Awaitable[Deployment]]


def example_definition(name: str) -> dict[str, Any]:
    """A definition from config/workflows/ (the shipped examples), as a dict."""
    loaded: dict[str, Any] = yaml.safe_load((REPO / "config" / "workflows" / name).read_text())
    return loaded


def workflow_file(name: str) -> dict[str, Any]:
    """A definition from tests/workflows/, as a dict."""
    loaded: dict[str, Any] = yaml.safe_load(
        (Path(__file__).parents[1] / "workflows" / name).read_text()
    )
    return loaded


@pytest.fixture
async def deploy(stack: Stack) -> AsyncIterator[DeploymentFactory]:
    """Make deployments for this test; their workers are stopped afterwards."""
    made: list[Deployment] = []

    async def factory(
        name: str, definitions: Iterable[dict[str, Any]], source_topics: Iterable[str] = ("orders",)
    ) -> Deployment:
        deployment = await stack.deployment(name, definitions, source_topics)
        made.append(deployment)
        return deployment

    yield factory
    for deployment in made:
        deployment.stop_workers()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
