"""Each seed's own example documents, as the seed prints them, stored through the HTTP API
and run end to end on the real broker and database: seed 002's step documents, seed 004's
definition format, seed 000's context mapping."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest_asyncio

from tests.integration.test_api_support import AUTH_ENV, bearer, start_api
from tests.support.stack import Deployment, Stack

# fmt: off
# Seed 002's "Workflow Schema Example", as printed: a template without an id.
SEED_002_WORKFLOW: dict[str, Any] = {"steps": [
    {"id": "validate_input", "name": "Validate Input Data", "type": "condition",
     "conditions": [{"field": "email", "operator": "contains", "value": "@"}],
     "next_steps": ["send_welcome", "send_error"]},
    {"id": "send_welcome", "name": "Send Welcome Email", "type": "action",
     "config": {"action": "send_email", "to": "{{variables.email}}", "subject": "Welcome!",
                "body": "Welcome to our platform!"},
     "next_steps": ["log_success"]},
    {"id": "send_error", "name": "Log Invalid Email", "type": "action",
     "config": {"action": "log_message", "message": "Invalid email provided: {{variables.email}}",
                "level": "error"}},
    {"id": "log_success", "name": "Log Success", "type": "action",
     "config": {"action": "log_message", "message": "Welcome email sent successfully",
                "level": "info"}},
]}

# Seed 004's examples, as printed: step transitions, UI components, execution log.
SEED_004_TRANSITIONS = [
    {"nextStepId": "approveRequest", "condition": "data.amount > 1000"},
    {"nextStepId": "autoApprove", "condition": "data.amount <= 1000"},
]
SEED_004_UI = [
    {"componentId": "workflow-progress", "condition": "status == 'running'", "priority": 1,
     "context": {"title": "Current Progress", "layout": "timeline"}},
    {"componentId": "workflow-summary", "condition": "status == 'completed'", "priority": 1,
     "context": {"title": "Workflow Summary", "layout": "card"}},
    {"componentId": "error-view", "condition": "status == 'failed'", "priority": 2,
     "context": {"title": "Error Details", "layout": "alert"}},
]
SEED_004_EXECUTION_LOG = {
    "level": "info", "retention": "P30D", "metadata": ["userId", "correlationId", "sourceSystem"]
}
# fmt: on

T = TypeVar("T")

# Seed 000's context resolution example, as printed.
SEED_000_CONTEXT = {"record_id": "trigger.record_id", "amount": "trigger.record.amount"}


def seed_004_definition(workflow_id: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """A definition in seed 004's structure, every field in the seed's own words."""
    return {
        "workflowId": workflow_id,
        "name": "Expense approval",
        "description": "Expenses over 1000 wait for a request; others are booked at once",
        "version": "1.2.0",
        "inputSchema": {
            "type": "object",
            "properties": {"amount": {"type": "number"}, "ref": {"type": "string"}},
            "required": ["amount", "ref"],
        },
        "triggers": [
            {
                "eventPattern": f"{workflow_id}.submitted",
                "description": "An employee submits an expense",
                "transform": {"type": "jmespath", "expression": "data"},
            }
        ],
        "steps": steps,
        "uiComponents": SEED_004_UI,
        "executionLog": SEED_004_EXECUTION_LOG,
    }


# fmt: off
def task_steps() -> list[dict[str, Any]]:
    """Seed 004's steps: each that runs something references a reusable task by `taskId`;
    the parallel step runs its branches."""
    return [
        {"stepId": "classify", "taskId": "record-expense", "name": "Record the expense",
         "description": "Keeps the reference, then routes by amount",
         "next": SEED_004_TRANSITIONS},
        {"stepId": "approveRequest", "taskId": "request-approval",
         "retryPolicy": {"maxAttempts": 3, "delay": "PT5M", "strategy": "exponential"},
         "timeout": "PT1H", "onFailure": {"action": "stop"}},
        {"stepId": "autoApprove", "parallelBranches": [
            {"branchId": "book", "steps": [{"stepId": "book", "taskId": "request-approval"}]},
            {"branchId": "notify", "steps": [{"stepId": "notify", "taskId": "request-approval",
                                              "config": {"message": "booked {{ input.ref }}"}}]},
        ]},
    ]


TASKS: list[dict[str, Any]] = [
    {"kind": "task", "taskId": "record-expense", "action": "set_variables",
     "config": {"recorded": "{{ input.ref }}"}},
    {"kind": "task", "taskId": "request-approval", "action": "log",
     "config": {"message": "approval requested for {{ input.ref }}"}},
]
# fmt: on


def inline_steps() -> list[dict[str, Any]]:
    """The same steps with each task's action written in place of its `taskId`."""
    by_id = {task["taskId"]: task for task in TASKS}

    def inline(step: dict[str, Any]) -> dict[str, Any]:
        if "parallelBranches" in step:
            branches = [
                {**b, "steps": [inline(s) for s in b["steps"]]} for b in step["parallelBranches"]
            ]
            return {**step, "parallelBranches": branches}
        task = by_id[step["taskId"]]
        config = {**task["config"], **step.get("config", {})}
        rest = {k: v for k, v in step.items() if k not in ("taskId", "config")}
        return {**rest, "type": "action", "action": task["action"], "config": config}

    return [inline(step) for step in task_steps()]


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """Poll `probe` until `done` holds for its result (or fail with the last one)."""
    deadline = time.monotonic() + 30
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after 30s: {value!r}")
        await asyncio.sleep(0.1)


@dataclass
class Seeds:
    d: Deployment
    client: httpx.AsyncClient

    async def store(self, document: dict[str, Any], workflow_id: str | None = None) -> None:
        """Store through the API (PUT when the id comes from the path); wait for the worker."""
        path = "/v1/definitions" + (f"/{workflow_id}" if workflow_id else "")
        method = self.client.put if workflow_id else self.client.post
        response = await method(path, json=document, headers=bearer("admin"))
        assert response.status_code in (200, 201), response.text
        saved = response.json()
        await self.d.wait_for_log(self.d.workers[0], f"{saved['id']}@v{saved['version']}", 20)

    async def start(self, workflow_id: str, input: dict[str, Any]) -> str:
        body = {"workflowId": workflow_id, "input": input}
        response = await self.client.post("/v1/instances", json=body, headers=bearer("operator"))
        assert response.status_code == 202, response.text
        instance_id: str = response.json()["instanceId"]
        return instance_id

    async def instance(
        self, instance_id: str, done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            response = await self.client.get(
                f"/v1/instances/{instance_id}", headers=bearer("viewer")
            )
            return response.json() if response.status_code == 200 else {}

        return await eventually(read, lambda body: bool(body) and done(body))

    async def started(self, workflow_id: str, ref: str | None = None) -> str:
        """The instance of `workflow_id` (whose input carries `ref`, when given)."""
        query = "SELECT id FROM instances WHERE workflow_id = $1"
        args: list[Any] = [workflow_id]
        if ref is not None:
            query += " AND input->>'ref' = $2"
            args.append(ref)
        rows = await eventually(lambda: self.d.fetch(query, *args), bool)
        return str(rows[0]["id"])


def ended(body: dict[str, Any]) -> bool:
    return body["status"] in ("completed", "failed", "compensated", "cancelled", "timed_out")


def outputs(body: dict[str, Any]) -> dict[str, Any]:
    return {h["stepId"]: h["output"] for h in body["history"] if h["status"] == "completed"}


@pytest_asyncio.fixture(scope="module")
async def seeds(stack: Stack) -> AsyncIterator[Seeds]:
    d = await stack.deployment("seeds", [], source_topics=("orders", "records"))
    await d.start_worker()
    api = await start_api(d, AUTH_ENV)
    client = httpx.AsyncClient(base_url=api.url, timeout=20)
    try:
        yield Seeds(d, client)
    finally:
        await client.aclose()
        api.stop()
        d.stop_workers()


# Seed 002


async def test_seed_002_workflow_as_printed_logs_an_invalid_email(seeds: Seeds) -> None:
    await seeds.store(copy.deepcopy(SEED_002_WORKFLOW), workflow_id="welcome")

    instance_id = await seeds.start("welcome", {"email": "nobody"})

    body = await seeds.instance(instance_id, ended)
    assert body["status"] == "completed"
    assert body["variables"] == {"email": "nobody"}
    assert outputs(body) == {
        "validate_input": {"result": False},
        "send_error": {"logged": "Invalid email provided: nobody"},
    }


async def test_seed_002_workflow_as_printed_sends_a_valid_email_on(seeds: Seeds) -> None:
    await seeds.store(copy.deepcopy(SEED_002_WORKFLOW), workflow_id="welcome")

    instance_id = await seeds.start("welcome", {"email": "ada@example.org"})

    body = await seeds.instance(
        instance_id, lambda b: any(s["stepId"] == "send_welcome" for s in b["steps"])
    )
    assert outputs(body)["validate_input"] == {"result": True}
    assert "send_error" not in outputs(body)


# Seed 004


async def test_seed_004_definition_routes_by_its_transitions_and_branches(seeds: Seeds) -> None:
    workflow_id = "expense-inline"
    await seeds.store(seed_004_definition(workflow_id, inline_steps()))

    stored = await seeds.client.get(f"/v1/definitions/{workflow_id}", headers=bearer("viewer"))
    assert stored.json()["document"]["versionLabel"] == "1.2.0"
    big, small = f"e-{uuid.uuid4().hex[:8]}", f"e-{uuid.uuid4().hex[:8]}"
    await seeds.d.publish(
        seeds.d.topic("orders"),
        [
            {"type": f"{workflow_id}.submitted", "amount": 5000, "ref": big},
            {"type": f"{workflow_id}.submitted", "amount": 20, "ref": small},
        ],
    )

    approved = await seeds.instance(await seeds.started(workflow_id, big), ended)
    booked = await seeds.instance(await seeds.started(workflow_id, small), ended)
    assert approved["status"] == booked["status"] == "completed"
    assert set(outputs(approved)) == {"classify", "approveRequest"}
    assert outputs(approved)["approveRequest"] == {"logged": f"approval requested for {big}"}
    assert outputs(booked)["autoApprove"] == {
        "book": {"book": {"logged": f"approval requested for {small}"}},
        "notify": {"notify": {"logged": f"booked {small}"}},
    }


async def test_seed_004_trigger_without_topic_takes_events_from_every_source_topic(
    seeds: Seeds,
) -> None:
    workflow_id = "expense-anywhere"
    await seeds.store(seed_004_definition(workflow_id, inline_steps()))
    ref = f"e-{uuid.uuid4().hex[:8]}"

    await seeds.d.publish(
        seeds.d.topic("records"), [{"type": f"{workflow_id}.submitted", "amount": 1, "ref": ref}]
    )

    body = await seeds.instance(await seeds.started(workflow_id, ref), ended)
    assert body["status"] == "completed"


async def test_seed_004_definition_with_task_references_runs(seeds: Seeds) -> None:
    for task in TASKS:
        response = await seeds.client.post("/v1/tasks", json=task, headers=bearer("admin"))
        assert response.status_code in (200, 201), response.text
    workflow_id = "expense-tasks"
    document = seed_004_definition(workflow_id, task_steps())
    response = await seeds.client.post("/v1/definitions", json=document, headers=bearer("admin"))
    assert response.status_code == 201, response.text
    await seeds.d.wait_for_log(seeds.d.workers[0], f"{workflow_id}@v1", 20)
    ref = f"e-{uuid.uuid4().hex[:8]}"

    await seeds.d.publish(
        seeds.d.topic("orders"), [{"type": f"{workflow_id}.submitted", "amount": 7, "ref": ref}]
    )

    body = await seeds.instance(await seeds.started(workflow_id, ref), ended)
    assert body["status"] == "completed"
    assert body["variables"] == {"recorded": ref}
    assert outputs(body)["autoApprove"]["notify"] == {"notify": {"logged": f"booked {ref}"}}


async def test_seed_004_version_labels_must_increase(seeds: Seeds) -> None:
    workflow_id = "expense-labels"
    await seeds.store(seed_004_definition(workflow_id, inline_steps()))
    older = seed_004_definition(workflow_id, inline_steps())
    older["version"] = "1.1.0"
    older["description"] = "an older change"

    response = await seeds.client.post("/v1/definitions", json=older, headers=bearer("admin"))

    assert response.status_code == 409, response.text
    assert "does not come after 1.2.0" in response.json()["detail"]


# Seed 000


async def test_seed_000_context_mapping_reads_the_transition_record(seeds: Seeds) -> None:
    workflow_id = "order-approved"
    await seeds.store(
        {
            "id": workflow_id,
            "triggers": [
                {"topic": seeds.d.topic("records"), "transition": "order:status:approved"}
            ],
            "context": dict(SEED_000_CONTEXT),
            "executionLog": {"level": "debug"},
            "steps": [
                {
                    "id": "announce",
                    "type": "action",
                    "action": "send_event",
                    "config": {
                        "topic": seeds.d.topic("orders"),
                        "type": "order.approved",
                        "key": "context.record_id",
                        "data": {"order": "context.record_id", "amount": "context.amount"},
                    },
                }
            ],
        }
    )
    record_id = f"o-{uuid.uuid4().hex[:8]}"

    await seeds.d.publish(
        seeds.d.topic("records"),
        [
            {
                "entity": "order",
                "field": "status",
                "from": "pending",
                "to": "approved",
                "record_id": record_id,
                "record": {"id": record_id, "amount": 250, "status": "approved"},
            }
        ],
    )

    body = await seeds.instance(await seeds.started(workflow_id), ended)
    assert body["status"] == "completed"
    assert body["variables"] == {"record_id": record_id, "amount": 250}
    [announce] = [h for h in body["history"] if h["stepId"] == "announce"]
    assert announce["input"]["key"] == record_id
    assert announce["input"]["data"] == {"order": record_id, "amount": 250}


async def test_seed_000_mapping_of_a_field_the_event_lacks_is_refused_naming_it(
    seeds: Seeds,
) -> None:
    document = {
        "id": "order-who",
        "triggers": [{"topic": seeds.d.topic("records"), "transition": "order:status:approved"}],
        "context": {"who": "trigger.user_id"},
        "steps": [{"id": "note", "type": "action", "action": "log", "config": {"message": "x"}}],
    }

    response = await seeds.client.post("/v1/definitions", json=document, headers=bearer("admin"))

    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "context.who"
    assert "trigger.data.user_id" in error["detail"]
