"""The command line: operations through a real `flowbus api`, the local commands without
one, on the real broker and database with a real worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest_asyncio
import yaml

from tests.integration.test_api_support import AUTH_ENV, ApiServer, bearer, start_api, token
from tests.support.stack import REPO, Deployment, Stack

DECISION_SECRET = "cli-decisions-" + "s" * 32
DECISION_ENV = {"FLOWBUS_APPROVALS__HS256_SECRET": DECISION_SECRET}

DEFINITIONS: list[dict[str, Any]] = [
    {
        "id": "cli-expense",
        "triggers": [{"topic": "orders", "type": "t.expense", "transform": {"expression": "data"}}],
        "steps": [
            {
                "id": "approve",
                "type": "approval",
                "assignees": ["user:alice", "group:finance"],
                "summary": {"order": "{{ input.id }}"},
                "next": "done",
            },
            {"id": "done", "type": "action", "action": "set_variables", "config": {"paid": True}},
        ],
    },
]


@dataclass
class Desk:
    d: Deployment
    api: ApiServer

    async def flowbus(self, *args: str, role: str = "admin") -> tuple[int, str, str]:
        """Run `flowbus ARGS` with the deployment's settings, the API's URL and a token."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flowbus",
            *args,
            cwd=REPO,
            env={
                **self.d.env(),
                **DECISION_ENV,
                "FLOWBUS_API_URL": self.api.url,
                "FLOWBUS_API_TOKEN": token(role),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def approvals(self, **params: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.api.url) as client:
            response = await client.get("/v1/approvals", params=params, headers=bearer("viewer"))
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def pending_for(self, order: str, timeout: float = 20) -> dict[str, Any]:
        """The pending approval of the instance the order started, once it is recorded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in await self.approvals():
                if item["summary"] == {"order": order}:
                    return item
            await asyncio.sleep(0.1)
        raise AssertionError(f"no pending approval for order {order}")

    async def expense(self) -> tuple[str, dict[str, Any]]:
        order = uuid.uuid4().hex[:10]
        await self.d.publish(self.d.topic("orders"), [{"type": "t.expense", "id": order}])
        return order, await self.pending_for(order)


@pytest_asyncio.fixture(scope="module")
async def desk(stack: Stack) -> AsyncIterator[Desk]:
    deployment = await stack.deployment("cli", DEFINITIONS)
    await deployment.start_worker(extra_env=DECISION_ENV)
    api = await start_api(deployment, AUTH_ENV)
    try:
        yield Desk(deployment, api)
    finally:
        api.stop()
        deployment.stop_workers()


def write(folder: Path, name: str, document: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(document))
    return path


def note(workflow_id: str, message: str = "hello") -> dict[str, Any]:
    return {
        "id": workflow_id,
        "steps": [
            {"id": "only", "type": "action", "action": "log", "config": {"message": message}}
        ],
    }


# -- approvals ---------------------------------------------------------------------------


async def test_pending_approvals_are_listed_by_assignee_through_the_api(desk: Desk) -> None:
    _, pending = await desk.expense()

    code, out, err = await desk.flowbus(
        "approvals", "list", "--assignee", "group:finance", "--json", role="viewer"
    )
    _, bob_out, _ = await desk.flowbus("approvals", "list", "--assignee", "bob", "--json")
    _, table_out, _ = await desk.flowbus("approvals", "list", "--workflow", "cli-expense")

    assert code == 0, err
    listed = {item["approvalId"]: item for item in orjson.loads(out)}
    assert listed[pending["approvalId"]]["instanceId"] == pending["instanceId"]
    assert listed[pending["approvalId"]]["assignees"] == ["user:alice", "group:finance"]
    assert listed[pending["approvalId"]]["status"] == "pending"
    assert orjson.loads(bob_out) == []
    header, *rows = table_out.splitlines()
    assert header.split() == ["APPROVAL", "STEP", "ASSIGNEES", "QUORUM", "DEADLINE"]
    assert any(row.split()[:2] == [pending["approvalId"], "cli-expense/approve"] for row in rows)


async def test_a_decision_signed_by_the_cli_moves_the_approval_out_of_pending(
    desk: Desk,
) -> None:
    _, pending = await desk.expense()

    code, out, err = await desk.flowbus(
        "approvals",
        "decide",
        pending["approvalId"],
        "approve",
        "--as",
        "carol",
        "--group",
        "finance",
    )

    assert code == 0, err
    assert out.startswith("approve by carol published to ")
    deadline = time.monotonic() + 20
    while pending["approvalId"] not in {
        a["approvalId"] for a in await desk.approvals(status="approved")
    }:
        assert time.monotonic() < deadline, "the approval never became approved"
        await asyncio.sleep(0.1)
    assert pending["approvalId"] not in {a["approvalId"] for a in await desk.approvals()}


async def test_the_approvals_endpoint_filters_on_status_assignee_and_workflow(
    desk: Desk,
) -> None:
    _, pending = await desk.expense()

    alice = await desk.approvals(assignee="alice")
    other_workflow = await desk.approvals(workflowId="nothing-here")
    rejected = await desk.approvals(status="rejected", assignee="alice")

    assert pending["approvalId"] in {a["approvalId"] for a in alice}
    assert other_workflow == []
    assert pending["approvalId"] not in {a["approvalId"] for a in rejected}


# -- definitions -------------------------------------------------------------------------


async def test_apply_stores_a_new_version_only_when_the_content_changed(
    desk: Desk, tmp_path: Path
) -> None:
    file = write(tmp_path, "cli-note.yaml", note("cli-note"))

    first = await desk.flowbus("definitions", "apply", str(file))
    again = await desk.flowbus("definitions", "apply", str(file))
    write(tmp_path, "cli-note.yaml", note("cli-note", "changed"))
    changed = await desk.flowbus("definitions", "apply", str(file), "--json")

    assert first[:2] == (0, f"{file}: cli-note v1: stored\n")
    assert again[:2] == (0, f"{file}: cli-note v1: unchanged\n")
    assert changed[0] == 0, changed[2]
    assert orjson.loads(changed[1]) == [
        {"file": str(file), "id": "cli-note", "version": 2, "created": True}
    ]


async def test_apply_stores_nothing_when_one_file_is_invalid(desk: Desk, tmp_path: Path) -> None:
    write(tmp_path, "a-good.yaml", note("cli-good"))
    bad = note("cli-bad")
    bad["steps"][0]["next"] = "nowhere"
    write(tmp_path, "b-bad.yaml", bad)

    code, _, err = await desk.flowbus("definitions", "apply", str(tmp_path))

    assert code == 1
    assert "cli-bad: step 'only'" in err
    assert "Traceback" not in err
    stored = {
        w["id"] for w in orjson.loads((await desk.flowbus("definitions", "list", "--json"))[1])
    }
    assert "cli-good" not in stored
    assert "cli-expense" in stored


async def test_applying_needs_the_admin_role(desk: Desk, tmp_path: Path) -> None:
    file = write(tmp_path, "cli-viewer.yaml", note("cli-viewer"))

    code, _, err = await desk.flowbus("definitions", "apply", str(file), role="viewer")

    assert code == 1
    assert "403 Forbidden: this operation needs the admin role" in err


# -- without an API ----------------------------------------------------------------------


def run_flowbus(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "flowbus", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        timeout=60,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_an_unreachable_api_is_one_line_naming_the_setting() -> None:
    code, _, err = run_flowbus("instances", "list", env={"FLOWBUS_API_URL": "http://127.0.0.1:9"})

    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("Error: cannot reach the flowbus API at http://127.0.0.1:9 (")
    assert "FLOWBUS_API_URL" in err


def test_validate_runs_without_a_deployment(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", note("local-good"))
    bad = note("local-bad")
    bad["steps"][0]["next"] = "nowhere"
    write(tmp_path, "bad.yaml", bad)
    unreachable = {"FLOWBUS_API_URL": "http://127.0.0.1:9"}

    one = run_flowbus("definitions", "validate", str(good), env=unreachable)
    both = run_flowbus("definitions", "validate", str(tmp_path), "--json", env=unreachable)

    assert one == (0, f"✓ {good}: local-good (1 steps)\n", "")
    assert both[0] == 1
    reports = {r["id"]: r for r in orjson.loads(both[1])}
    assert reports["local-good"]["valid"] is True
    assert reports["local-bad"]["valid"] is False
    assert reports["local-bad"]["problems"][0]["stepId"] == "only"
