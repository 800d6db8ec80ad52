"""An instance's lifecycle over HTTP, end to end on the real broker and database: create then
start, Idempotency-Key, the workflow-level onFailure, deprecating the latest version and
disabling a workflow."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio

from tests.integration.test_api_support import (
    AUTH_ENV,
    ApiServer,
    InstancesOverApi,
    bearer,
    end_offsets,
    problem,
    start_api,
    token,
)
from tests.support.contracts import contract_violations
from tests.support.stack import Deployment, Stack


def log_step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action",
        "action": "log",
        "config": {"message": step_id},
        **extra,
    }


def two_steps(workflow_id: str, event_type: str) -> dict[str, Any]:
    return {
        "id": workflow_id,
        "triggers": [{"topic": "orders", "type": event_type}],
        "steps": [{**log_step("first"), "next": "second"}, log_step("second")],
    }


DEFINITIONS: list[dict[str, Any]] = [
    two_steps("lc-two", "lc.two"),
    two_steps("lc-marker", "lc.marker"),
    two_steps("lc-deprecated", "lc.deprecated"),
    {
        "id": "lc-disabled",
        "triggers": [{"topic": "orders", "type": "lc.disabled"}],
        "steps": [
            {"id": "nap", "type": "wait", "duration": "PT2S", "next": "done"},
            log_step("done"),
        ],
    },
    {
        "id": "lc-charge",
        "onFailure": {"nextStepId": "notify", "workflow": "lc-charge-failed"},
        "steps": [
            {
                "id": "reserve",
                "type": "action",
                "action": "set_variables",
                "config": {"reserved": True},
                "compensate": {"action": "log", "config": {"message": "released"}},
                "next": "charge",
            },
            {"id": "charge", "type": "fail", "error": "PaymentDeclined", "message": "declined"},
            log_step("notify"),
        ],
    },
    {
        "id": "lc-charge-failed",
        "steps": [
            {
                "id": "record",
                "type": "action",
                "action": "set_variables",
                "config": {"failed": "{{ input.instanceId }}", "why": "{{ input.error.type }}"},
            }
        ],
    },
]


@dataclass
class World(InstancesOverApi):
    d: Deployment
    api: ApiServer
    client: httpx.AsyncClient

    async def post(self, path: str, json: Any = None, **headers: str) -> httpx.Response:
        return await self.client.post(path, json=json, headers={**bearer("operator"), **headers})

    async def trigger(self, *event_types: str) -> None:
        """Publish events of these types, in order, on one partition."""
        await self.d.publish(
            self.d.topic("orders"),
            [
                {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "t", "type": t}
                for t in event_types
            ],
            key="lifecycle",
        )

    async def count(self, workflow_id: str) -> int:
        rows = await self.d.fetch("SELECT id FROM instances WHERE workflow_id = $1", workflow_id)
        return len(rows)

    async def after_marker(self) -> None:
        """Wait until an event published now has been applied (and with it, those before)."""
        before = await self.count("lc-marker")
        await self.trigger("lc.marker")
        deadline = time.monotonic() + 20
        while await self.count("lc-marker") == before:
            assert time.monotonic() < deadline, "the marker event was never applied"
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    d = await stack.deployment("lifecycle", DEFINITIONS)
    await d.start_worker()
    api = await start_api(d, AUTH_ENV)
    client = httpx.AsyncClient(base_url=api.url, timeout=20)
    try:
        yield World(d, api, client)
    finally:
        await client.aclose()
        api.stop()
        d.stop_workers()


# -- create, then start ------------------------------------------------------------------


async def test_a_created_instance_waits_with_its_first_step_pending(world: World) -> None:
    response = await world.post("/v1/instances", {"workflowId": "lc-two", "start": False})

    assert response.status_code == 202, response.text
    body = await world.wait_status(response.json()["instanceId"], "created")
    assert [(s["stepId"], s["status"]) for s in body["steps"]] == [("first", "pending")]


async def test_put_start_runs_a_created_instance(world: World) -> None:
    created = await world.post("/v1/instances", {"workflowId": "lc-two", "start": False})
    instance_id = created.json()["instanceId"]
    await world.wait_status(instance_id, "created")

    started = await world.client.put(
        f"/v1/instances/{instance_id}/start", headers=bearer("operator")
    )

    assert started.status_code == 202, started.text
    assert started.json()["command"] == "start"
    done = await world.wait_status(instance_id, "completed")
    assert [(s["stepId"], s["status"]) for s in done["steps"]] == [
        ("first", "completed"),
        ("second", "completed"),
    ]


async def test_starting_an_instance_that_is_not_created_is_409(world: World) -> None:
    started = await world.post("/v1/instances", {"workflowId": "lc-two"})
    instance_id = started.json()["instanceId"]
    await world.wait_status(instance_id, "completed")
    before = await end_offsets(world.d, world.d.settings.topics.commands)

    again = await world.client.put(f"/v1/instances/{instance_id}/start", headers=bearer("operator"))

    assert "start applies only to created" in problem(again, 409, "illegal-transition")["detail"]
    assert await end_offsets(world.d, world.d.settings.topics.commands) == before


async def test_a_created_instance_can_be_cancelled(world: World) -> None:
    created = await world.post("/v1/instances", {"workflowId": "lc-two", "start": False})
    instance_id = created.json()["instanceId"]
    await world.wait_status(instance_id, "created")

    cancelled = await world.post(f"/v1/instances/{instance_id}/cancel")

    assert cancelled.status_code == 202, cancelled.text
    body = await world.wait_status(instance_id, "cancelled")
    assert [(s["stepId"], s["status"]) for s in body["steps"]] == [("first", "skipped")]


# -- Idempotency-Key ---------------------------------------------------------------------


async def test_a_retry_with_the_same_idempotency_key_starts_one_instance(world: World) -> None:
    key = uuid.uuid4().hex
    body = {"workflowId": "lc-two", "input": {"n": 1}}

    first = await world.post("/v1/instances", body, **{"Idempotency-Key": key})
    second = await world.post("/v1/instances", body, **{"Idempotency-Key": key})

    assert first.status_code == second.status_code == 202
    assert first.json()["instanceId"] == second.json()["instanceId"]
    await world.wait_status(first.json()["instanceId"], "completed")
    await world.after_marker()
    rows = await world.d.fetch("SELECT id FROM instances WHERE input = $1", {"n": 1})
    assert len(rows) == 1


async def test_another_key_or_another_caller_starts_another_instance(world: World) -> None:
    key = uuid.uuid4().hex
    body = {"workflowId": "lc-two"}

    mine = await world.post("/v1/instances", body, **{"Idempotency-Key": key})
    other_key = await world.post("/v1/instances", body, **{"Idempotency-Key": key + "-2"})
    other_caller = await world.client.post(
        "/v1/instances",
        json=body,
        headers={
            "Authorization": f"Bearer {token('operator', subject='grace')}",
            "Idempotency-Key": key,
        },
    )

    ids = {r.json()["instanceId"] for r in (mine, other_key, other_caller)}
    assert len(ids) == 3


# -- workflow-level onFailure ------------------------------------------------------------


async def test_on_failure_runs_its_path_after_compensation_then_the_failure_workflow(
    world: World,
) -> None:
    started = await world.post("/v1/instances", {"workflowId": "lc-charge"})
    instance_id = started.json()["instanceId"]

    failed = await world.wait_status(instance_id, "compensated")

    assert failed["error"]["type"] == "PaymentDeclined"
    steps = {s["stepId"]: s["status"] for s in failed["steps"]}
    assert steps == {"reserve": "compensated", "charge": "failed", "notify": "completed"}
    deadline = time.monotonic() + 20
    rows: list[Any] = []
    while not rows and time.monotonic() < deadline:
        rows = await world.d.fetch(
            "SELECT id FROM instances WHERE workflow_id = 'lc-charge-failed' "
            "AND input->>'instanceId' = $1",
            instance_id,
        )
        await asyncio.sleep(0.1)
    assert rows, "the failure workflow did not start"
    handled = await world.wait_status(str(rows[0]["id"]), "completed")
    assert handled["variables"] == {"failed": instance_id, "why": "PaymentDeclined"}


# -- deprecating and disabling -----------------------------------------------------------


async def test_deprecating_the_latest_version_stops_its_triggers(world: World) -> None:
    admin = bearer("admin")
    changed = {**two_steps("lc-deprecated", "lc.deprecated"), "description": "v2"}
    changed["triggers"] = [{"topic": world.d.topic("orders"), "type": "lc.deprecated"}]
    stored = await world.client.post("/v1/definitions", json=changed, headers=admin)
    assert stored.json()["version"] == 2
    deprecated = await world.client.patch(
        "/v1/definitions/lc-deprecated/versions/2", json={"deprecated": True}, headers=admin
    )
    assert deprecated.status_code == 200
    await asyncio.sleep(1.0)  # the worker reloads its definitions on the change notice

    await world.trigger("lc.deprecated")
    await world.after_marker()

    assert await world.count("lc-deprecated") == 0
    unnamed = await world.post("/v1/instances", {"workflowId": "lc-deprecated"})
    assert "v2, is deprecated" in problem(unnamed, 404, "not-found")["detail"]
    versions = await world.client.get(
        "/v1/definitions/lc-deprecated/versions", headers=bearer("viewer")
    )
    assert versions.json()["activeVersion"] is None
    pinned = await world.post("/v1/instances", {"workflowId": "lc-deprecated", "version": 1})
    assert pinned.status_code == 202


async def test_a_disabled_workflow_starts_nothing_while_its_instances_go_on(
    world: World,
) -> None:
    admin = bearer("admin")
    running = await world.post("/v1/instances", {"workflowId": "lc-disabled"})
    running_id = running.json()["instanceId"]
    await world.wait_status(running_id, "waiting")

    disabled = await world.client.put("/v1/definitions/lc-disabled/disabled", headers=admin)
    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    assert disabled.json()["activeVersion"] is None
    await asyncio.sleep(1.0)  # the worker reloads its definitions on the change notice
    refused = await world.post("/v1/instances", {"workflowId": "lc-disabled"})
    await world.trigger("lc.disabled")
    await world.after_marker()

    assert "is disabled" in problem(refused, 409, "workflow-disabled")["detail"]
    assert await world.count("lc-disabled") == 1
    await world.wait_status(running_id, "completed")

    enabled = await world.client.delete("/v1/definitions/lc-disabled/disabled", headers=admin)
    assert (enabled.status_code, enabled.json()["disabled"]) == (200, False)
    await asyncio.sleep(1.0)
    await world.trigger("lc.disabled")
    deadline = time.monotonic() + 20
    while await world.count("lc-disabled") < 2:
        assert time.monotonic() < deadline, "the trigger did not start the enabled workflow"
        await asyncio.sleep(0.1)


async def test_the_lifecycle_events_match_the_topic_catalog(world: World) -> None:
    created = await world.post("/v1/instances", {"workflowId": "lc-two", "start": False})
    instance_id = created.json()["instanceId"]
    await world.wait_status(instance_id, "created")
    await world.post(f"/v1/instances/{instance_id}/cancel")
    await world.wait_status(instance_id, "cancelled")
    topics = world.d.settings.topics

    seen = await world.d.read_events(
        [topics.instances, topics.steps],
        until=lambda es: (
            {"flowbus.instance.created", "flowbus.step.skipped"}
            <= {e["type"] for e in es if e["_key"] == instance_id}
        ),
    )

    assert contract_violations(seen) == []
