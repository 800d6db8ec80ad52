"""Reusable tasks on the real broker and database: a task file in the workflows directory and
a workflow whose step references it (with an override) are stored by the worker, an
instance runs end to end, and the API and the CLI show the task and what was made from it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from flowbus.definitions.errors import DefinitionError
from flowbus.service.definitions import store_library_files
from flowbus.store.database import create_engine
from tests.integration.conftest import DeploymentFactory
from tests.integration.test_api_support import AUTH_ENV, bearer, start_api, token
from tests.support.stack import REPO, Deployment

GREET = {
    "id": "greet",
    "name": "Greet the customer",
    "action": "set_variables",
    "config": {"greeting": "hello", "channel": "email", "who": "{{ input.customer }}"},
    "inputSchema": {"type": "object", "required": ["greeting", "channel"]},
    "retryPolicy": {"maxAttempts": 2, "delay": "PT1S"},
}


def welcome(d: Deployment) -> dict[str, Any]:
    return {
        "id": "task-welcome",
        "triggers": [
            {
                "topic": d.topic("orders"),
                "type": "customer.joined",
                "transform": {"expression": "data"},
            }
        ],
        "steps": [{"id": "greet-them", "taskId": "greet", "config": {"channel": "sms"}}],
    }


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))


async def flowbus_cli(d: Deployment, url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowbus",
        *args,
        cwd=REPO,
        env={**d.env(), "FLOWBUS_API_URL": url, "FLOWBUS_API_TOKEN": token("viewer")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_step_made_from_a_task_runs_with_its_override_and_the_task_is_shown(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("tasks", [])
    write(d.settings.workflows_dir / "tasks" / "greet.yaml", GREET)
    write(d.settings.workflows_dir / "welcome.yaml", welcome(d))
    await d.start_worker()

    await d.publish(d.topic("orders"), [{"type": "customer.joined", "customer": "ada"}])
    events = await d.read_events(
        [d.settings.topics.instances],
        until=lambda es: any(e["type"] == "flowbus.instance.completed" for e in es),
    )
    completed = next(e for e in events if e["type"] == "flowbus.instance.completed")
    assert completed["data"]["output"] == {"greeting": "hello", "channel": "sms", "who": "ada"}
    uses = await d.fetch(
        "SELECT workflow_id, workflow_version, step_id, task_version FROM task_uses"
    )
    assert [tuple(row) for row in uses] == [("task-welcome", 1, "greet-them", 1)]

    api = await start_api(d, AUTH_ENV)
    try:
        async with httpx.AsyncClient(base_url=api.url) as client:
            listed = await client.get("/v1/tasks", headers=bearer("viewer"))
            changed = await client.put(
                "/v1/tasks/greet",
                json={**GREET, "config": {"greeting": "hi", "channel": "email"}},
                headers=bearer("admin"),
            )
            first = await client.get("/v1/tasks/greet/versions/1", headers=bearer("viewer"))
            latest = await client.get("/v1/tasks/greet", headers=bearer("viewer"))
            workflow = await client.get("/v1/definitions/task-welcome", headers=bearer("viewer"))
        code, out, err = await flowbus_cli(d, api.url, "tasks", "list")
        shown = await flowbus_cli(d, api.url, "tasks", "show", "greet", "--version", "1")
    finally:
        api.stop()

    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert (item["id"], item["latestVersion"], item["name"]) == ("greet", 1, "Greet the customer")
    assert (changed.status_code, changed.json()["version"]) == (201, 2)
    assert first.json()["usedBy"] == [
        {
            "workflowId": "task-welcome",
            "workflowVersion": 1,
            "stepId": "greet-them",
            "taskVersion": 1,
        }
    ]
    assert (latest.json()["version"], latest.json()["usedBy"]) == (2, [])
    stored_step = workflow.json()["document"]["steps"][0]
    assert workflow.json()["version"] == 1, "a new task version changes no stored workflow"
    assert stored_step["config"]["greeting"] == "hello"
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["TASK", "LATEST", "ACTION", "VERSIONS"]
    assert row.split() == ["greet", "2", "set_variables", "v1,v2"]
    assert shown[0] == 0, shown[2]
    assert "used by task-welcome v1 step greet-them" in shown[1]


async def test_storing_a_workflow_again_uses_the_new_task_version_and_refusals_store_nothing(
    deploy: DeploymentFactory, tmp_path: Path
) -> None:
    d = await deploy("tasks-versions", [])
    write(tmp_path / "tasks" / "greet.yaml", GREET)
    write(tmp_path / "welcome.yaml", welcome(d))
    engine = create_engine(d.settings.database_url, pool_size=1)
    try:
        first = await store_library_files(engine, tmp_path)
        again = await store_library_files(engine, tmp_path)
        write(tmp_path / "tasks" / "greet.yaml", {**GREET, "config": {"greeting": "hi"}})
        changed = await store_library_files(engine, tmp_path)
        write(tmp_path / "broken.yaml", {"id": "broken", "steps": [{"id": "s", "taskId": "nope"}]})
        write(tmp_path / "tasks" / "other.yaml", {"id": "other", "action": "log"})
        with pytest.raises(DefinitionError) as refused:
            await store_library_files(engine, tmp_path)
    finally:
        await engine.dispose()

    assert [(s.task.id, s.version, s.created) for s in first.tasks] == [("greet", 1, True)]
    assert [(s.definition.id, s.version, s.created) for s in first.definitions] == [
        ("task-welcome", 1, True)
    ]
    assert [s.created for s in again.tasks] + [s.created for s in again.definitions] == [
        False,
        False,
    ]
    assert [(s.version, s.created) for s in changed.tasks] == [(2, True)]
    assert [(s.version, s.created) for s in changed.definitions] == [(2, True)]
    assert "broken.yaml" in str(refused.value)
    assert [(p.step_id, p.field) for p in refused.value.problems] == [("s", "taskId")]
    rows = await d.fetch("SELECT workflow_version, task_version FROM task_uses ORDER BY 1")
    assert [tuple(row) for row in rows] == [(1, 1), (2, 2)]
    stored = await d.fetch("SELECT task_id FROM task_definitions ORDER BY 1")
    assert [row["task_id"] for row in stored] == ["greet", "greet"], "nothing of the refused apply"
    documents = await d.fetch(
        "SELECT document FROM workflow_definitions WHERE workflow_id = 'task-welcome' "
        "ORDER BY version"
    )
    assert [r["document"]["steps"][0]["config"] for r in documents] == [
        {"greeting": "hello", "channel": "sms", "who": "{{ input.customer }}"},
        {"greeting": "hi", "channel": "sms"},
    ]
