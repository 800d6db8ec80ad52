"""The HTTP API end to end: a real `flowbus api` process and a real worker on the real broker
and database. Reads come from PostgreSQL; whatever changes an instance is published to Kafka
as a command and applied by the worker."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from flowbus.devstack.ports import free_port
from tests.integration.test_api_support import (
    AUTH_ENV,
    ApiServer,
    InstancesOverApi,
    bearer,
    end_offsets,
    problem,
    sse_events,
    start_api,
    token,
)
from tests.support.http import HookServer
from tests.support.stack import Deployment, Stack

FINAL = {"completed", "failed", "cancelled", "compensated", "timed_out"}


def log_step(step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action",
        "action": "log",
        "config": {"message": step_id},
        **extra,
    }


def definitions(hooks: str) -> list[dict[str, Any]]:
    order_input = {
        "type": "object",
        "required": ["orderId", "amount"],
        "properties": {"orderId": {"type": "string"}, "amount": {"type": "number", "minimum": 0}},
    }
    return [
        {
            "id": "api-orders",
            "triggers": [
                {
                    "topic": "orders",
                    "type": "order.created",
                    "transform": {"expression": "{orderId: data.order_id, amount: data.amount}"},
                }
            ],
            "inputSchema": order_input,
            "steps": [
                {
                    "id": "check",
                    "type": "condition",
                    "condition": "input.amount > 100.0",
                    "onTrue": "flag",
                    "onFalse": "done",
                },
                {
                    "id": "flag",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"big": True},
                    "next": "done",
                },
                log_step("done"),
            ],
        },
        {
            "id": "api-slow",
            "triggers": [{"topic": "orders", "type": "slow.requested"}],
            "inputSchema": {"type": "object", "required": ["orderId"]},
            "steps": [
                {
                    "id": "first",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"orderId": "{{ input.orderId }}"},
                    "next": "nap",
                },
                {"id": "nap", "type": "wait", "duration": "PT1.5S", "next": "second"},
                log_step("second"),
            ],
        },
        {
            "id": "api-parked",
            "inputSchema": {"type": "object", "required": ["orderId"]},
            "steps": [
                {
                    "id": "reserve",
                    "type": "action",
                    "action": "set_variables",
                    "config": {"reserved": True},
                    "compensate": {"action": "log", "config": {"message": "released"}},
                    "next": "payment",
                },
                {
                    "id": "payment",
                    "type": "wait",
                    "event": {
                        "topic": "payments",
                        "match": "data.orderId",
                        "key": "{{ input.orderId }}",
                    },
                    "next": "finish",
                },
                log_step("finish"),
            ],
        },
        {
            "id": "api-flaky",
            "steps": [
                {
                    "id": "call",
                    "type": "action",
                    "action": "webhook",
                    "config": {"url": f"{hooks}/flaky?fails=1&id={{{{ input.id }}}}"},
                    "next": "done",
                },
                log_step("done"),
            ],
        },
    ]


@dataclass
class World(InstancesOverApi):
    d: Deployment
    api: ApiServer
    client: httpx.AsyncClient
    hooks: HookServer
    worker_metrics: str

    @property
    def commands(self) -> str:
        return self.d.settings.topics.commands

    async def start(self, workflow: str, payload: dict[str, Any], **extra: Any) -> str:
        response = await self.client.post(
            "/v1/instances",
            json={"workflowId": workflow, "input": payload, **extra},
            headers=bearer("operator"),
        )
        assert response.status_code == 202, response.text
        instance_id: str = response.json()["instanceId"]
        return instance_id


def status_is(*statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: body["status"] in statuses


@pytest_asyncio.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    hooks = HookServer()
    await hooks.start()
    d = await stack.deployment("api", definitions(hooks.url), source_topics=("orders", "payments"))
    metrics_port = free_port()
    await d.start_worker(extra_env={"FLOWBUS_WORKER__METRICS_PORT": str(metrics_port)})
    api = await start_api(d, AUTH_ENV)
    client = httpx.AsyncClient(base_url=api.url, timeout=20)
    try:
        yield World(d, api, client, hooks, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        await client.aclose()
        api.stop()
        d.stop_workers()
        await hooks.stop()


# -- definitions -------------------------------------------------------------------------


def disposable(workflow_id: str, message: str = "hello") -> dict[str, Any]:
    return {"id": workflow_id, "steps": [{**log_step("only"), "config": {"message": message}}]}


async def test_the_definitions_list_shows_every_workflow_with_its_versions(world: World) -> None:
    response = await world.client.get("/v1/definitions", headers=bearer("viewer"))

    assert response.status_code == 200
    listed = {w["id"]: w for w in response.json()["items"]}
    assert {"api-orders", "api-slow", "api-parked", "api-flaky"} <= set(listed)
    orders = listed["api-orders"]
    assert (orders["latestVersion"], orders["activeVersion"]) == (1, 1)
    assert [v["version"] for v in orders["versions"]] == [1]
    assert orders["versions"][0]["deprecated"] is False


async def test_changed_content_becomes_a_new_version_and_unchanged_content_does_not(
    world: World,
) -> None:
    admin = bearer("admin")
    first = await world.client.post("/v1/definitions", json=disposable("api-v"), headers=admin)
    again = await world.client.post("/v1/definitions", json=disposable("api-v"), headers=admin)
    changed = await world.client.post(
        "/v1/definitions", json=disposable("api-v", "changed"), headers=admin
    )

    assert (first.status_code, first.json()) == (
        201,
        {"id": "api-v", "version": 1, "created": True},
    )
    assert first.headers["location"] == "/v1/definitions/api-v/versions/1"
    assert (again.status_code, again.json()["version"], again.json()["created"]) == (200, 1, False)
    assert (changed.status_code, changed.json()["version"]) == (201, 2)
    latest = (await world.client.get("/v1/definitions/api-v", headers=bearer("viewer"))).json()
    assert latest["version"] == 2
    assert latest["document"]["steps"][0]["config"] == {"message": "changed"}
    v1 = await world.client.get("/v1/definitions/api-v/versions/1", headers=bearer("viewer"))
    assert v1.json()["document"]["steps"][0]["config"] == {"message": "hello"}
    versions = await world.client.get("/v1/definitions/api-v/versions", headers=bearer("viewer"))
    assert [v["version"] for v in versions.json()["versions"]] == [1, 2]


async def test_a_stored_version_cannot_be_given_other_content(world: World) -> None:
    admin = bearer("admin")
    await world.client.post("/v1/definitions", json=disposable("api-fixed"), headers=admin)

    response = await world.client.post(
        "/v1/definitions", json={**disposable("api-fixed", "other"), "version": 1}, headers=admin
    )

    body = problem(response, 409, "version-conflict")
    assert "already stored with other content" in body["detail"]


async def test_an_invalid_definition_is_refused_naming_each_step_and_field(world: World) -> None:
    document = {
        "id": "api-broken",
        "steps": [
            {"id": "a", "type": "action", "action": "send_event", "config": {}, "next": "nowhere"},
            {"id": "b", "type": "teleport"},
        ],
    }

    response = await world.client.post("/v1/definitions", json=document, headers=bearer("admin"))

    body = problem(response, 422, "invalid-definition")
    errors = {(e.get("stepId"), e.get("field")) for e in body["errors"]}
    assert ("a", "config.topic") in errors
    assert ("b", "type") in errors
    assert any("unknown step type 'teleport'" in e["detail"] for e in body["errors"])
    missing = await world.client.get("/v1/definitions/api-broken", headers=bearer("viewer"))
    problem(missing, 404, "not-found")


async def test_validate_reports_problems_and_stores_nothing(world: World) -> None:
    good = await world.client.post(
        "/v1/definitions/validate", json=disposable("api-checked"), headers=bearer("viewer")
    )
    bad = await world.client.post(
        "/v1/definitions/validate",
        json={"id": "api-checked", "steps": [{"id": "x", "type": "wait"}]},
        headers=bearer("viewer"),
    )

    assert good.json() == {"valid": True, "id": "api-checked", "steps": 1, "problems": []}
    report = bad.json()
    assert report["valid"] is False
    assert report["problems"][0]["stepId"] == "x"
    stored = await world.client.get("/v1/definitions/api-checked", headers=bearer("viewer"))
    problem(stored, 404, "not-found")


async def test_yaml_documents_are_accepted_and_put_takes_the_id_from_the_path(
    world: World,
) -> None:
    document = yaml.safe_dump({"steps": [log_step("only")]})

    response = await world.client.put(
        "/v1/definitions/api-yaml",
        content=document,
        headers={**bearer("admin"), "Content-Type": "application/yaml"},
    )
    mismatch = await world.client.put(
        "/v1/definitions/api-yaml", json=disposable("api-other"), headers=bearer("admin")
    )

    assert (response.status_code, response.json()["id"]) == (201, "api-yaml")
    assert "is not the path's" in problem(mismatch, 422, "invalid-definition")["detail"]


async def test_malformed_json_is_a_400_problem_and_stores_nothing(world: World) -> None:
    response = await world.client.post(
        "/v1/definitions",
        content=b'{"id": "api-malformed", "steps": [',
        headers={**bearer("admin"), "Content-Type": "application/json"},
    )

    body = problem(response, 400, "malformed-json")
    assert "not valid JSON" in body["detail"]
    stored = await world.client.get("/v1/definitions/api-malformed", headers=bearer("viewer"))
    problem(stored, 404, "not-found")


async def test_a_deprecated_version_starts_nothing_until_it_is_undeprecated(world: World) -> None:
    admin = bearer("admin")
    await world.client.post("/v1/definitions", json=disposable("api-old"), headers=admin)
    before = await end_offsets(world.d, world.commands)

    deprecated = await world.client.patch(
        "/v1/definitions/api-old/versions/1", json={"deprecated": True}, headers=admin
    )
    latest = await world.client.post(
        "/v1/instances", json={"workflowId": "api-old"}, headers=bearer("operator")
    )
    pinned = await world.client.post(
        "/v1/instances", json={"workflowId": "api-old", "version": 1}, headers=bearer("operator")
    )

    assert (deprecated.status_code, deprecated.json()["deprecated"]) == (200, True)
    assert "no active version" in problem(latest, 404, "not-found")["detail"]
    assert "deprecated" in problem(pinned, 409, "version-deprecated")["detail"]
    assert await end_offsets(world.d, world.commands) == before
    restored = await world.client.patch(
        "/v1/definitions/api-old/versions/1", json={"deprecated": False}, headers=admin
    )
    assert restored.json()["deprecated"] is False
    started = await world.client.post(
        "/v1/instances", json={"workflowId": "api-old"}, headers=bearer("operator")
    )
    assert started.status_code == 202


async def test_mermaid_draws_the_step_graph_of_any_version(world: World) -> None:
    latest = await world.client.get("/v1/definitions/api-orders/mermaid", headers=bearer("viewer"))
    v1 = await world.client.get(
        "/v1/definitions/api-orders/versions/1/mermaid", headers=bearer("viewer")
    )

    assert latest.status_code == 200
    assert latest.headers["content-type"].startswith("text/plain")
    assert latest.text == v1.text
    lines = latest.text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  s_check{"check<br/>condition"}' in lines
    assert '  s_check -->|"true"| s_flag' in lines
    assert '  s_check -->|"false"| s_done' in lines
    assert "  s_done --> wf_end" in lines


async def test_deleting_a_definition_is_refused_while_an_instance_of_it_runs(
    world: World,
) -> None:
    admin = bearer("admin")
    parked = (await world.client.get("/v1/definitions/api-parked", headers=admin)).json()
    document = {**parked["document"], "id": "api-doomed"}
    await world.client.post("/v1/definitions", json=document, headers=admin)
    instance_id = await world.start("api-doomed", {"orderId": "doomed-1"})
    await world.wait_status(instance_id, "waiting")

    refused = await world.client.delete("/v1/definitions/api-doomed", headers=admin)

    body = problem(refused, 409, "definition-in-use")
    assert "1 on v1" in body["detail"]
    still = await world.client.get("/v1/definitions/api-doomed", headers=bearer("viewer"))
    assert still.status_code == 200
    cancel = await world.client.post(
        f"/v1/instances/{instance_id}/cancel",
        json={"compensate": False},
        headers=bearer("operator"),
    )
    assert cancel.status_code == 202
    await world.wait_status(instance_id, "cancelled")
    deleted = await world.client.delete("/v1/definitions/api-doomed/versions/1", headers=admin)
    assert deleted.json() == {"id": "api-doomed", "versions": [1]}
    gone = await world.client.get("/v1/definitions/api-doomed", headers=bearer("viewer"))
    problem(gone, 404, "not-found")


async def test_deleting_a_workflow_removes_every_version(world: World) -> None:
    admin = bearer("admin")
    await world.client.post("/v1/definitions", json=disposable("api-gone"), headers=admin)
    await world.client.post("/v1/definitions", json=disposable("api-gone", "v2"), headers=admin)

    response = await world.client.delete("/v1/definitions/api-gone", headers=admin)

    assert response.json() == {"id": "api-gone", "versions": [1, 2]}
    rows = await world.d.fetch("SELECT 1 FROM workflow_definitions WHERE workflow_id = 'api-gone'")
    assert rows == []
    listed = await world.client.get("/v1/definitions", headers=bearer("viewer"))
    assert "api-gone" not in {w["id"] for w in listed.json()["items"]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/definitions/api-nope"),
        ("GET", "/v1/definitions/api-nope/versions"),
        ("GET", "/v1/definitions/api-orders/versions/99"),
        ("GET", "/v1/definitions/api-orders/versions/99/mermaid"),
        ("DELETE", "/v1/definitions/api-nope"),
        ("DELETE", "/v1/definitions/api-orders/versions/99"),
        ("GET", f"/v1/instances/{uuid.uuid4()}"),
        ("GET", f"/v1/instances/{uuid.uuid4()}/steps"),
        ("POST", f"/v1/instances/{uuid.uuid4()}/pause"),
        ("GET", f"/v1/instances/{uuid.uuid4()}/events"),
        ("GET", "/v1/workflows/api-nope/events"),
        ("GET", "/v1/nothing-here"),
    ],
)
async def test_unknown_resources_are_404_problems(world: World, method: str, path: str) -> None:
    response = await world.client.request(method, path, headers=bearer("admin"))

    assert problem(response, 404, "not-found")["instance"] == path


# -- instances ---------------------------------------------------------------------------


async def test_a_started_instance_runs_and_shows_variables_history_and_steps(
    world: World,
) -> None:
    response = await world.client.post(
        "/v1/instances",
        json={"workflowId": "api-orders", "input": {"orderId": "o-1", "amount": 500}},
        headers=bearer("operator"),
    )

    assert response.status_code == 202
    accepted = response.json()
    assert accepted["command"] == "start"
    assert (accepted["workflowId"], accepted["workflowVersion"]) == ("api-orders", 1)
    assert response.headers["location"] == f"/v1/instances/{accepted['instanceId']}"
    uuid.UUID(accepted["commandId"])
    done = await world.wait_status(accepted["instanceId"], "completed")
    assert done["input"] == {"orderId": "o-1", "amount": 500}
    assert done["variables"] == {"big": True}
    assert done["currentSteps"] == []
    assert [(h["stepId"], h["status"]) for h in done["history"]] == [
        ("check", "completed"),
        ("flag", "completed"),
        ("done", "completed"),
    ]
    steps = await world.client.get(
        f"/v1/instances/{accepted['instanceId']}/steps", headers=bearer("viewer")
    )
    assert [s["stepId"] for s in steps.json()["items"]] == ["check", "flag", "done"]
    commands = await world.d.read_events(
        [world.commands], until=lambda es: any(e["id"] == accepted["commandId"] for e in es)
    )
    command = next(e for e in commands if e["id"] == accepted["commandId"])
    assert command["type"] == "flowbus.command.start"
    assert command["_key"] == accepted["instanceId"]
    assert command["data"]["instanceId"] == accepted["instanceId"]


async def test_a_waiting_instance_shows_its_current_step(world: World) -> None:
    instance_id = await world.start("api-parked", {"orderId": "current-1"})

    body = await world.wait_status(instance_id, "waiting")

    assert [(s["stepId"], s["status"]) for s in body["currentSteps"]] == [("payment", "waiting")]
    assert body["variables"] == {"reserved": True}


async def test_input_that_breaks_the_input_schema_is_refused_before_publishing(
    world: World,
) -> None:
    before = await end_offsets(world.d, world.commands)

    response = await world.client.post(
        "/v1/instances",
        json={"workflowId": "api-orders", "input": {"orderId": 7, "amount": -1}},
        headers=bearer("operator"),
    )

    body = problem(response, 422, "invalid-input")
    assert {e["pointer"] for e in body["errors"]} == {"#/input/orderId", "#/input/amount"}
    assert any("less than the minimum of 0" in e["detail"] for e in body["errors"])
    assert await end_offsets(world.d, world.commands) == before


async def test_starting_an_unknown_workflow_is_404_and_publishes_nothing(world: World) -> None:
    before = await end_offsets(world.d, world.commands)

    response = await world.client.post(
        "/v1/instances", json={"workflowId": "api-ghost"}, headers=bearer("operator")
    )

    problem(response, 404, "not-found")
    assert await end_offsets(world.d, world.commands) == before


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"input": {}}, "#/workflowId"),
        ({"workflowId": "api-orders", "version": 0}, "#/version"),
        ({"workflowId": "no spaces allowed"}, "#/workflowId"),
        ({"workflowId": "api-orders", "surprise": 1}, "#/surprise"),
    ],
)
async def test_start_requests_are_validated_with_pointers(
    world: World, body: dict[str, Any], pointer: str
) -> None:
    response = await world.client.post("/v1/instances", json=body, headers=bearer("operator"))

    errors = problem(response, 422, "invalid-request")["errors"]
    assert pointer in {e["pointer"] for e in errors}


async def test_instances_are_listed_newest_first_with_filters_and_cursor_pages(
    world: World,
) -> None:
    marker = uuid.uuid4().hex[:8]
    began = datetime.now(UTC) - timedelta(seconds=1)
    ids = [
        await world.start(
            "api-orders", {"orderId": f"{marker}-{n}", "amount": n}, correlationId=marker
        )
        for n in range(5)
    ]
    for instance_id in ids:
        await world.wait_status(instance_id, "completed")
    viewer = bearer("viewer")
    query = {"workflowId": "api-orders", "correlationId": marker, "limit": 2}

    pages, cursor = [], None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        page = (await world.client.get("/v1/instances", params=params, headers=viewer)).json()
        pages.append(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [item for p in pages for item in p]
    assert sorted(i["id"] for i in listed) == sorted(ids), "every instance once"
    newest_first = sorted(listed, key=lambda i: (i["createdAt"], i["id"]), reverse=True)
    assert [i["id"] for i in listed] == [i["id"] for i in newest_first]
    filtered = await world.client.get(
        "/v1/instances",
        params=[
            ("status", "completed"),
            ("status", "failed"),
            ("correlationId", marker),
            ("createdAfter", began.isoformat()),
            ("version", "1"),
        ],
        headers=viewer,
    )
    assert len(filtered.json()["items"]) == 5
    none = await world.client.get(
        "/v1/instances", params={"correlationId": marker, "status": "paused"}, headers=viewer
    )
    assert none.json() == {"items": [], "nextCursor": None}
    bad = await world.client.get("/v1/instances", params={"cursor": "garbage"}, headers=viewer)
    assert problem(bad, 400, "invalid-cursor")["errors"][0]["parameter"] == "cursor"
    wrong = await world.client.get("/v1/instances", params={"status": "sleepy"}, headers=viewer)
    assert problem(wrong, 400, "invalid-request")["errors"][0]["parameter"] == "status.0"


async def test_pause_holds_an_instance_and_resume_lets_it_finish(world: World) -> None:
    operator = bearer("operator")
    instance_id = await world.start("api-slow", {"orderId": "slow-1"})
    await world.wait_status(instance_id, "waiting")

    paused = await world.client.post(f"/v1/instances/{instance_id}/pause", headers=operator)

    assert paused.status_code == 202
    assert paused.json()["command"] == "pause"
    await world.wait_status(instance_id, "paused")
    await asyncio.sleep(2.0)
    assert (await world.instance(instance_id))["status"] == "paused", "the wait timer is held"
    resumed = await world.client.post(f"/v1/instances/{instance_id}/resume", headers=operator)
    assert resumed.status_code == 202
    done = await world.wait_status(instance_id, "completed")
    assert [h["stepId"] for h in done["history"]] == ["first", "nap", "second"]


async def test_illegal_transitions_are_409_and_publish_nothing(world: World) -> None:
    operator = bearer("operator")
    instance_id = await world.start("api-orders", {"orderId": "final-1", "amount": 1})
    await world.wait_status(instance_id, "completed")
    before = await end_offsets(world.d, world.commands)

    for action in ("pause", "resume", "cancel", "retry"):
        response = await world.client.post(
            f"/v1/instances/{instance_id}/{action}", headers=operator
        )
        body = problem(response, 409, "illegal-transition")
        assert body["instanceStatus"] == "completed"
        assert f"is completed: {action} applies only to" in body["detail"]
    event = await world.client.post(
        f"/v1/instances/{instance_id}/events", json={"event": {}}, headers=operator
    )
    problem(event, 409, "illegal-transition")

    assert await end_offsets(world.d, world.commands) == before
    assert (await world.instance(instance_id))["status"] == "completed"


async def test_resuming_an_instance_that_is_not_paused_is_refused(world: World) -> None:
    instance_id = await world.start("api-parked", {"orderId": "not-paused"})
    await world.wait_status(instance_id, "waiting")

    response = await world.client.post(
        f"/v1/instances/{instance_id}/resume", headers=bearer("operator")
    )

    body = problem(response, 409, "illegal-transition")
    assert body["detail"].endswith("resume applies only to paused instances")


async def test_cancel_compensates_completed_steps_unless_told_not_to(world: World) -> None:
    operator = bearer("operator")
    undone = await world.start("api-parked", {"orderId": "cancel-1"})
    dropped = await world.start("api-parked", {"orderId": "cancel-2"})
    await world.wait_status(undone, "waiting")
    await world.wait_status(dropped, "waiting")

    first = await world.client.post(
        f"/v1/instances/{undone}/cancel", json={"reason": "customer left"}, headers=operator
    )
    second = await world.client.post(
        f"/v1/instances/{dropped}/cancel", json={"compensate": False}, headers=operator
    )

    assert (first.status_code, second.status_code) == (202, 202)
    compensated = await world.wait_status(undone, "compensated")
    assert compensated["error"]["message"] == "customer left"
    reserve = [h for h in compensated["history"] if h["stepId"] == "reserve"]
    assert reserve[-1]["status"] == "compensated"
    cancelled = await world.wait_status(dropped, "cancelled")
    assert all(h["status"] != "compensated" for h in cancelled["history"])


async def test_an_event_sent_to_a_waiting_instance_completes_its_wait(world: World) -> None:
    instance_id = await world.start("api-parked", {"orderId": "pay-1"})
    await world.wait_status(instance_id, "waiting")

    response = await world.client.post(
        f"/v1/instances/{instance_id}/events",
        json={"stepId": "payment", "event": {"paid": 42}},
        headers=bearer("operator"),
    )

    assert (response.status_code, response.json()["command"]) == (202, "event")
    done = await world.wait_status(instance_id, "completed")
    payment = next(h for h in done["history"] if h["stepId"] == "payment")
    assert payment["output"]["data"] == {"paid": 42}


async def test_retry_runs_a_failed_instance_again_from_the_step_that_failed(
    world: World,
) -> None:
    call_id = uuid.uuid4().hex[:8]
    instance_id = await world.start("api-flaky", {"id": call_id})
    failed = await world.wait_status(instance_id, "failed")
    assert failed["error"]["step_id"] == "call"

    response = await world.client.post(
        f"/v1/instances/{instance_id}/retry", headers=bearer("operator")
    )

    assert (response.status_code, response.json()["command"]) == (202, "retry")
    done = await world.wait_status(instance_id, "completed")
    assert [(h["stepId"], h["attempt"], h["status"]) for h in done["history"]] == [
        ("call", 1, "failed"),
        ("call", 2, "completed"),
        ("done", 1, "completed"),
    ]
    assert len(world.hooks.calls_to("flaky", id=call_id)) == 2


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("cancel", {"compensate": "maybe"}, 422, "invalid-request"),
        ("cancel", {"why": "unknown field"}, 422, "invalid-request"),
        ("events", {"stepId": 5}, 422, "invalid-request"),
        ("cancel", b"{not json", 400, "malformed-json"),
    ],
)
async def test_command_bodies_are_validated_before_anything_is_published(
    world: World, path: str, body: Any, status: int, kind: str
) -> None:
    instance_id = await world.start("api-parked", {"orderId": f"bad-{path}"})
    before = await end_offsets(world.d, world.commands)
    content = body if isinstance(body, bytes) else orjson.dumps(body)

    response = await world.client.post(
        f"/v1/instances/{instance_id}/{path}",
        content=content,
        headers={**bearer("operator"), "Content-Type": "application/json"},
    )

    problem(response, status, kind)
    assert await end_offsets(world.d, world.commands) == before


async def test_an_instance_id_that_is_not_a_uuid_is_a_400(world: World) -> None:
    response = await world.client.get("/v1/instances/not-a-uuid", headers=bearer("viewer"))

    body = problem(response, 400, "invalid-request")
    assert body["errors"][0]["parameter"] == "instance_id"


# -- webhooks ----------------------------------------------------------------------------


async def records(d: Deployment, topic: str, after: dict[tuple[str, int], int]) -> list[Any]:
    """The records published to `topic` since the offsets `after`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=d.settings.broker_url, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await end_offsets(d, topic)
        partitions = [TopicPartition(t, p) for (t, p) in ends]
        consumer.assign(partitions)
        found = []
        for tp in partitions:
            start, end = after.get((tp.topic, tp.partition), 0), ends[(tp.topic, tp.partition)]
            if end <= start:
                continue
            consumer.seek(tp, start)
            while (await consumer.position(tp)) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                found.extend(batch.get(tp, []))
        return found
    finally:
        await consumer.stop()


async def test_a_webhook_publishes_the_body_as_sent_and_the_workflow_starts(
    world: World,
) -> None:
    topic = world.d.topic("orders")
    before = await end_offsets(world.d, topic)
    body = b'{"type": "order.created", "order_id": "hook-1", "amount": 5}'

    response = await world.client.post(
        f"/v1/events/{topic}",
        content=body,
        params={"key": "hook-1"},
        headers={**bearer("operator"), "Content-Type": "application/json"},
    )

    assert response.status_code == 202
    accepted = response.json()
    assert (accepted["topic"], accepted["mode"]) == (topic, "binary")
    [record] = await records(world.d, topic, before)
    assert record.value == body
    assert record.key == b"hook-1"
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ce_id"] == accepted["eventId"]
    assert headers["ce_type"] == "order.created"
    assert headers["ce_source"] == "test-api/api"
    started = await wait_listed(world, lambda i: i["workflowId"] == "api-orders", "hook-1")
    assert started["input"] == {"orderId": "hook-1", "amount": 5}


async def wait_listed(
    world: World, match: Callable[[dict[str, Any]], bool], order_id: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = await world.client.get(
            "/v1/instances", params={"limit": 100}, headers=bearer("viewer")
        )
        for item in page.json()["items"]:
            if match(item):
                detail = await world.instance(item["id"])
                if isinstance(detail["input"], dict) and detail["input"].get("orderId") == order_id:
                    return detail
        await asyncio.sleep(0.2)
    raise AssertionError(f"no instance for {order_id}")


async def test_a_webhook_retried_with_the_same_ce_id_starts_one_instance(world: World) -> None:
    topic = world.d.topic("orders")
    headers = {
        **bearer("operator"),
        "ce-id": "retry-me-1",
        "ce-source": "shop",
        "ce-type": "order.created",
    }
    body = {"order_id": "dedupe-1", "amount": 3}

    first = await world.client.post(f"/v1/events/{topic}", json=body, headers=headers)
    second = await world.client.post(f"/v1/events/{topic}", json=body, headers=headers)

    assert first.json()["eventId"] == second.json()["eventId"] == "retry-me-1"
    await wait_listed(world, lambda i: i["workflowId"] == "api-orders", "dedupe-1")
    await asyncio.sleep(1.0)
    rows = await world.d.fetch("SELECT id FROM instances WHERE input->>'orderId' = 'dedupe-1'")
    assert len(rows) == 1


async def test_a_webhook_retried_with_the_same_idempotency_key_starts_one_instance(
    world: World,
) -> None:
    topic = world.d.topic("orders")
    headers = {**bearer("operator"), "Idempotency-Key": "checkout-77", "ce-type": "order.created"}
    body = {"order_id": "dedupe-key-1", "amount": 3}

    first = await world.client.post(f"/v1/events/{topic}", json=body, headers=headers)
    second = await world.client.post(f"/v1/events/{topic}", json=body, headers=headers)
    other = await world.client.post(
        f"/v1/events/{topic}", json=body, headers={**headers, "Idempotency-Key": "checkout-78"}
    )

    assert first.status_code == second.status_code == 202
    assert first.json()["eventId"] == second.json()["eventId"] != other.json()["eventId"]
    await wait_listed(world, lambda i: i["workflowId"] == "api-orders", "dedupe-key-1")
    await asyncio.sleep(1.0)
    rows = await world.d.fetch("SELECT id FROM instances WHERE input->>'orderId' = 'dedupe-key-1'")
    assert len(rows) == 2, "one instance per key, not per request"


async def test_a_structured_cloudevent_is_published_as_sent(world: World) -> None:
    topic = world.d.topic("orders")
    before = await end_offsets(world.d, topic)
    event = {
        "specversion": "1.0",
        "id": "ce-structured-1",
        "source": "shop",
        "type": "order.created",
        "data": {"order_id": "structured-1", "amount": 1},
    }

    response = await world.client.post(
        f"/v1/events/{topic}",
        content=orjson.dumps(event),
        headers={**bearer("operator"), "Content-Type": "application/cloudevents+json"},
    )
    invalid = await world.client.post(
        f"/v1/events/{topic}",
        json={"specversion": "1.0", "source": "shop", "type": "x"},
        headers=bearer("operator"),
    )

    assert response.json()["eventId"] == "ce-structured-1"
    assert response.json()["mode"] == "structured"
    assert problem(invalid, 422, "invalid-event")["errors"][0]["pointer"] == "#/id"
    [record] = await records(world.d, topic, before)
    assert orjson.loads(record.value) == event
    await wait_listed(world, lambda i: i["workflowId"] == "api-orders", "structured-1")


async def test_webhooks_only_publish_to_source_topics(world: World) -> None:
    commands = world.commands
    before = await end_offsets(world.d, commands)

    response = await world.client.post(
        f"/v1/events/{commands}", json={"command": "cancel"}, headers=bearer("operator")
    )

    assert "is not a source topic" in problem(response, 404, "not-found")["detail"]
    assert await end_offsets(world.d, commands) == before


async def test_a_workflow_event_goes_to_its_first_trigger_topic_with_its_type(
    world: World,
) -> None:
    response = await world.client.post(
        "/v1/workflows/api-slow/events", json={"orderId": "by-workflow"}, headers=bearer("operator")
    )
    no_trigger = await world.client.post(
        "/v1/workflows/api-parked/events", json={"orderId": "x"}, headers=bearer("operator")
    )

    assert response.status_code == 202
    assert response.json()["topic"] == world.d.topic("orders")
    started = await wait_listed(world, lambda i: i["workflowId"] == "api-slow", "by-workflow")
    assert started["workflowId"] == "api-slow"
    problem(no_trigger, 409, "no-trigger")


# -- live updates ------------------------------------------------------------------------


async def test_an_instance_stream_delivers_its_events_in_order_while_it_runs(
    world: World,
) -> None:
    instance_id = await world.start("api-slow", {"orderId": "live-1"})
    await world.wait_status(instance_id, "running", "waiting")
    received = []
    async with world.client.stream(
        "GET", f"/v1/instances/{instance_id}/events", headers=bearer("viewer")
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in sse_events(response):
            received.append(event)
            if len(received) == 1:
                assert (await world.instance(instance_id))["status"] != "completed"

    seqs = [e.data["flowbusseq"] for e in received]
    assert seqs == list(range(1, len(received) + 1))
    assert [e.id for e in received] == [str(s) for s in seqs]
    assert received[0].event == "flowbus.instance.started"
    assert received[-1].event == "flowbus.instance.completed", "the stream ends after it"
    assert {e.data["subject"] for e in received} == {instance_id}
    assert [e.event for e in received].count("flowbus.step.completed") == 3


async def test_an_instance_stream_resumes_after_the_last_event_id(world: World) -> None:
    instance_id = await world.start("api-orders", {"orderId": "resume-1", "amount": 1})
    await world.wait_status(instance_id, "completed")

    async with world.client.stream(
        "GET",
        f"/v1/instances/{instance_id}/events",
        headers={**bearer("viewer"), "Last-Event-ID": "3"},
    ) as response:
        resumed = [e async for e in sse_events(response)]

    assert resumed[0].data["flowbusseq"] == 4
    assert resumed[-1].event == "flowbus.instance.completed"
    last = resumed[-1].data["flowbusseq"]
    async with world.client.stream(
        "GET", f"/v1/instances/{instance_id}/events?after={last}", headers=bearer("viewer")
    ) as response:
        assert [e async for e in sse_events(response)] == [], "nothing more will come"
    garbage = await world.client.get(
        f"/v1/instances/{instance_id}/events",
        headers={**bearer("viewer"), "Last-Event-ID": "abc"},
    )
    assert problem(garbage, 400, "invalid-request")["errors"][0]["parameter"] == "Last-Event-ID"


async def test_a_workflow_stream_delivers_new_events_of_that_workflow_only(
    world: World,
) -> None:
    received: list[Any] = []

    async def listen() -> None:
        async with world.client.stream(
            "GET", "/v1/workflows/api-orders/events", headers=bearer("viewer")
        ) as response:
            assert response.status_code == 200
            async for event in sse_events(response):
                received.append(event)
                if event.event == "flowbus.instance.completed":
                    return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(1.0)
    await world.start("api-slow", {"orderId": "other-workflow"})
    instance_id = await world.start("api-orders", {"orderId": "wf-stream", "amount": 1})
    await asyncio.wait_for(listener, 20)

    assert {e.data["data"]["workflowId"] for e in received} == {"api-orders"}
    mine = [e.event for e in received if e.data["subject"] == instance_id]
    # Arrival order across topics: the instance's own topic keeps started before completed.
    assert mine.index("flowbus.instance.started") < mine.index("flowbus.instance.completed")


async def test_a_stream_stops_its_consumer_when_the_client_goes_away(world: World) -> None:
    closed_before = world.api.log_text().count("stream.closed")
    async with world.client.stream(
        "GET", "/v1/workflows/api-orders/events", headers=bearer("viewer")
    ) as response:
        assert response.status_code == 200
        await asyncio.sleep(0.5)

    deadline = time.monotonic() + 10
    while world.api.log_text().count("stream.closed") <= closed_before:
        assert time.monotonic() < deadline, "the stream's consumer was not stopped"
        await asyncio.sleep(0.1)


# -- operations --------------------------------------------------------------------------


async def test_health_and_readiness_are_open_and_check_database_schema_and_broker(
    world: World,
) -> None:
    live = await world.client.get("/healthz")
    ready = await world.client.get("/readyz")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert {name: c["ok"] for name, c in checks.items()} == {
        "database": True,
        "broker": True,
        "schema": True,
    }


async def test_metrics_show_instances_by_status_outbox_timers_and_consumer_lag(
    world: World,
) -> None:
    instance_id = await world.start("api-orders", {"orderId": "metrics-1", "amount": 1})
    await world.wait_status(instance_id, "completed")

    response = await world.client.get("/metrics")

    assert response.status_code == 200
    text = response.text
    completed = sample(text, "flowbus_instances", workflow="api-orders", status="completed")
    assert completed is not None
    assert completed >= 1
    assert sample(text, "flowbus_outbox_rows") is not None
    assert sample(text, "flowbus_outbox_oldest_age_seconds") is not None
    assert "# TYPE flowbus_timer_lag_seconds gauge" in text
    lag = sample(text, "flowbus_consumer_lag", topic=world.d.topic("orders"), partition="0")
    assert lag == 0
    assert sample(text, "flowbus_metrics_source_up", source="database") == 1
    assert sample(text, "flowbus_metrics_source_up", source="broker") == 1
    assert "flowbus_api_requests_total" in text


async def test_the_worker_exposes_its_counters(world: World) -> None:
    async with httpx.AsyncClient() as client:
        text = (await client.get(world.worker_metrics)).text

    consumed = sample(text, "flowbus_records_consumed_total", topic=world.commands)
    assert consumed is not None
    assert consumed >= 1
    assert (sample(text, "flowbus_instances_started_total", stream="commands") or 0) >= 1
    assert "flowbus_batch_seconds_bucket" in text


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        base, _, rest = metric.partition("{")
        if base != name:
            continue
        found = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",") if "=" in pair)
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return None


async def test_the_openapi_document_states_roles_and_problem_responses(world: World) -> None:
    document = (await world.client.get("/openapi.json")).json()

    assert document["openapi"].startswith("3.1")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert operation["x-required-role"] in {"viewer", "operator", "admin"}, path
                assert "401" in operation["responses"]
            for status, response in operation["responses"].items():
                if status == "default" or int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )


async def test_a_wrong_method_is_a_405_problem(world: World) -> None:
    response = await world.client.delete("/healthz")

    problem(response, 405, "method-not-allowed")


# -- the command line --------------------------------------------------------------------


async def flowbus_cli(world: World, *args: str, role: str = "admin") -> tuple[int, str, str]:
    """Run `flowbus ARGS --api-url URL` with a token of `role`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowbus",
        *args,
        "--api-url",
        world.api.url,
        env={**os.environ, "FLOWBUS_API_TOKEN": token(role)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_lists_draws_starts_and_shows_through_the_api(world: World) -> None:
    listed, drawn, started = await asyncio.gather(
        flowbus_cli(world, "definitions", "list"),
        flowbus_cli(world, "definitions", "graph", "api-orders"),
        flowbus_cli(
            world,
            "instances",
            "start",
            "api-orders",
            "--input",
            '{"orderId": "cli-1", "amount": 2}',
            "--json",
            role="operator",
        ),
    )

    assert listed[0] == 0
    header, *rows = listed[1].splitlines()
    assert header.split() == ["WORKFLOW", "LATEST", "ACTIVE", "VERSIONS"]
    assert any(row.split()[:3] == ["api-orders", "1", "1"] for row in rows)
    assert drawn[1].startswith("flowchart TD\n")
    assert started[0] == 0, started[2]
    instance_id = orjson.loads(started[1])["instanceId"]
    await world.wait_status(instance_id, "completed")
    code, shown, _ = await flowbus_cli(world, "instances", "show", instance_id, role="viewer")
    assert code == 0
    assert f"{instance_id}  api-orders v1  completed" in shown
    assert [line.split()[:4] for line in shown.splitlines() if line.startswith("done ")] == [
        ["done", "1", "action", "completed"]
    ]


async def test_the_cli_prints_api_errors_with_their_details_and_fails(world: World) -> None:
    instance_id = await world.start("api-orders", {"orderId": "cli-2", "amount": 1})
    await world.wait_status(instance_id, "completed")

    (
        (resume_code, _, resume_err),
        (start_code, _, start_err),
        (role_code, _, role_err),
    ) = await asyncio.gather(
        flowbus_cli(world, "instances", "resume", instance_id, role="operator"),
        flowbus_cli(
            world, "instances", "start", "api-orders", "--input", '{"orderId": 1}', role="operator"
        ),
        flowbus_cli(world, "instances", "pause", instance_id, role="viewer"),
    )

    assert resume_code == 1
    assert f"409 Conflict: instance {instance_id} is completed" in resume_err
    assert start_code == 1
    assert "422 Invalid input: input does not match the inputSchema" in start_err
    assert "  - #/input/orderId: 1 is not of type 'string'" in start_err
    assert "  - #/input: 'amount' is a required property" in start_err
    assert role_code == 1
    assert "403 Forbidden: this operation needs the operator role" in role_err
    assert "Traceback" not in resume_err + start_err + role_err
