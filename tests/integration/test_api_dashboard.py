"""What the dashboard reads and does through the API, end to end on the real broker and
database: a person's approvals inbox and deciding from it (the instance goes on), refused
decisions read back, an instance's timeline, children and uiComponents, throughput and
counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio

from flowbus.api.recorder import Recorder, start_recorder
from flowbus.approvals.tokens import sign_decision
from flowbus.config import ApprovalSettings
from flowbus.store.database import create_engine
from tests.integration.test_api_support import (
    AUTH_ENV,
    ApiServer,
    bearer,
    end_offsets,
    problem,
    start_api,
    token,
)
from tests.support.stack import Deployment, Stack

SECRET = "dashboard-decisions-" + "s" * 32
DECISION_KEYS = {"FLOWBUS_APPROVALS__HS256_SECRET": SECRET}
SEED_004 = [
    {"componentId": "workflow-progress", "condition": "status == 'running'", "priority": 1,
     "context": {"title": "Current Progress", "layout": "timeline"}},
    {"componentId": "workflow-summary", "condition": "status == 'completed'", "priority": 1,
     "context": {"title": "Workflow Summary", "layout": "card"}},
    {"componentId": "error-view", "condition": "status == 'failed'", "priority": 2,
     "context": {"title": "Error Details", "layout": "alert"}},
]  # fmt: skip


def approval(step_id: str, assignees: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "approval",
        "assignees": assignees,
        "summary": {"order": "{{ input.id }}"},
        "deadline": "PT1H",
        **fields,
    }


def paid(step_id: str = "done") -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": "set_variables", "config": {"paid": True}}


DEFINITIONS: list[dict[str, Any]] = [
    {"id": "dash-expense", "steps": [approval("approve", ["user:grace", "group:finance"],
                                              next="done"), paid()]},
    {"id": "dash-board", "steps": [approval("vote", ["user:a", "user:b", "user:c"], quorum=2,
                                            next="done"), paid()]},
    {
        "id": "dash-ui",
        "uiComponents": SEED_004,
        "executionLog": {"level": "debug"},
        "steps": [
            {"id": "gate", "type": "condition", "condition": "input.fail == true",
             "onTrue": "boom", "onFalse": "hold"},
            {"id": "hold", "type": "wait", "event": {"topic": "payments", "match": "data.id",
                                                     "key": "{{ input.id }}"}, "next": "done"},
            {"id": "boom", "type": "fail", "error": "Broken", "message": "broke {{ input.id }}"},
            paid(),
        ],
    },
    {"id": "dash-parent", "steps": [{"id": "child", "type": "subflow", "workflow": "dash-child",
                                     "input": {"id": "{{ input.id }}"}}]},
    {"id": "dash-child", "steps": [paid("set")]},
]  # fmt: skip


@dataclass
class Desk:
    d: Deployment
    api: ApiServer
    client: httpx.AsyncClient

    async def start(self, workflow: str, payload: dict[str, Any]) -> str:
        response = await self.client.post(
            "/v1/instances",
            json={"workflowId": workflow, "input": payload},
            headers=bearer("operator"),
        )
        assert response.status_code == 202, response.text
        return str(response.json()["instanceId"])

    async def poll(
        self, path: str, check: Callable[[Any], bool], timeout: float = 20, **params: Any
    ) -> Any:
        """GET `path` until its JSON passes `check`."""
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            response = await self.client.get(path, params=params, headers=bearer("viewer"))
            if response.status_code == 200:
                body = response.json()
                if check(body):
                    return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"{path} never got there; last seen: {body}")

    async def status(self, instance_id: str, *statuses: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.poll(
            f"/v1/instances/{instance_id}", lambda i: i["status"] in statuses
        )
        return found

    async def pending(self, instance_id: str) -> dict[str, Any]:
        """The instance's approval, once requested."""
        found: dict[str, Any] = await self.poll(
            "/v1/approvals", lambda b: any(a["instanceId"] == instance_id for a in b["items"])
        )
        return next(a for a in found["items"] if a["instanceId"] == instance_id)


def person(subject: str, *groups: str, role: str = "operator") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, subject=subject, groups=list(groups))}"}


@pytest_asyncio.fixture(scope="module")
async def desk(stack: Stack) -> AsyncIterator[Desk]:
    d = await stack.deployment("dashboard", DEFINITIONS, source_topics=("orders", "payments"))
    await d.start_worker(extra_env=DECISION_KEYS)
    api = await start_api(d, {**AUTH_ENV, **DECISION_KEYS})
    # Stands in for the API's own recorder until its lifespan starts one.
    engine = create_engine(d.settings.database_url, pool_size=2)
    recorder: Recorder = start_recorder(d.settings, engine)
    client = httpx.AsyncClient(base_url=api.url, timeout=20)
    try:
        yield Desk(d, api, client)
    finally:
        await client.aclose()
        await recorder.stop()
        await engine.dispose()
        api.stop()
        d.stop_workers()


# -- approvals ---------------------------------------------------------------------------


async def test_a_person_sees_the_approvals_of_their_user_and_groups_with_progress(
    desk: Desk,
) -> None:
    instance_id = await desk.start("dash-expense", {"id": "inbox-1"})
    await desk.pending(instance_id)

    mine = await desk.client.get("/v1/approvals/pending", headers=person("carol", "finance"))
    other = await desk.client.get("/v1/approvals/pending", headers=person("bob", "sales"))

    [item] = [a for a in mine.json()["items"] if a["instanceId"] == instance_id]
    assert (item["workflowId"], item["stepId"], item["summary"]) == (
        "dash-expense",
        "approve",
        {"order": "inbox-1"},
    )
    assert item["deadline"] is not None
    assert item["progress"] == {"approvals": 0, "rejections": 0, "required": 1}
    assert item["yourDecision"] is None
    assert instance_id not in {a["instanceId"] for a in other.json()["items"]}


async def test_approving_from_the_api_lets_the_instance_go_on(desk: Desk) -> None:
    instance_id = await desk.start("dash-expense", {"id": "approve-1"})
    await desk.pending(instance_id)

    response = await desk.client.post(
        f"/v1/approvals/{instance_id}/approve/approve",
        json={"comment": "within budget"},
        headers=person("grace"),
    )

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["decision"], accepted["decidedBy"], accepted["stepId"]) == (
        "approve",
        "grace",
        "approve",
    )
    done = await desk.status(instance_id, "completed")
    assert done["variables"] == {"paid": True}
    detail = (
        await desk.client.get(f"/v1/approvals/{instance_id}/approve", headers=bearer("viewer"))
    ).json()
    assert detail["status"] == "approved"
    [decision] = detail["decisions"]
    assert (decision["decidedBy"], decision["decision"], decision["comment"]) == (
        "grace",
        "approve",
        "within budget",
    )
    audit = await desk.d.fetch(
        "SELECT actor, details FROM audit_log WHERE action = 'approval.decide' AND subject = $1",
        detail["approvalId"],
    )
    assert [(a["actor"], a["details"]["decisionId"]) for a in audit] == [
        ("grace", accepted["decisionId"])
    ]


async def test_rejecting_from_the_api_fails_the_approval_step(desk: Desk) -> None:
    instance_id = await desk.start("dash-expense", {"id": "reject-1"})
    await desk.pending(instance_id)

    response = await desk.client.post(
        f"/v1/approvals/{instance_id}/approve/reject",
        json={"comment": "no"},
        headers=person("dora", "finance"),
    )

    assert response.status_code == 202, response.text
    failed = await desk.status(instance_id, "failed")
    assert failed["error"]["type"] == "ApprovalRejected"


async def test_a_quorum_shows_its_progress_and_who_decided(desk: Desk) -> None:
    instance_id = await desk.start("dash-board", {"id": "board-1"})
    await desk.pending(instance_id)

    first = await desk.client.post(f"/v1/approvals/{instance_id}/vote/approve", headers=person("a"))
    assert first.status_code == 202
    detail = await desk.poll(
        f"/v1/approvals/{instance_id}/vote", lambda b: b["progress"]["approvals"] == 1
    )

    assert detail["progress"] == {"approvals": 1, "rejections": 0, "required": 2}
    mine = await desk.client.get("/v1/approvals/pending", headers=person("a"))
    [item] = [i for i in mine.json()["items"] if i["instanceId"] == instance_id]
    assert item["yourDecision"] == "approve"
    again = await desk.client.post(f"/v1/approvals/{instance_id}/vote/approve", headers=person("a"))
    assert "has already decided" in problem(again, 409, "already-decided")["detail"]


async def test_a_forged_decision_is_refused_and_the_refusal_is_readable(desk: Desk) -> None:
    instance_id = await desk.start("dash-expense", {"id": "forged-1"})
    approval_id = (await desk.pending(instance_id))["approvalId"]
    forger = ApprovalSettings(hs256_secret="not-the-deployment-secret-" + "x" * 20)
    forged = sign_decision(forger, approval_id=approval_id, decision="approve", user="mallory")
    body = {"approvalId": approval_id, "decision": "approve", "token": forged}
    await desk.d.publish(desk.d.settings.topics.decisions, [body], key=approval_id)

    detail = await desk.poll(f"/v1/approvals/{instance_id}/approve", lambda b: b["refusals"])

    [refusal] = detail["refusals"]
    assert (refusal["reason"], refusal["decision"], refusal["notice"]) == (
        "bad signature",
        "approve",
        True,
    )
    assert detail["status"] == "pending"
    assert detail["decisions"] == []


async def test_deciding_is_refused_at_once_for_who_may_not_decide(desk: Desk) -> None:
    instance_id = await desk.start("dash-expense", {"id": "refused-1"})
    await desk.pending(instance_id)
    before = await end_offsets(desk.d, desk.d.settings.topics.decisions)
    path = f"/v1/approvals/{instance_id}/approve/approve"

    stranger = await desk.client.post(path, headers=person("bob", "sales"))
    viewer = await desk.client.post(path, headers=person("grace", role="viewer"))
    named = await desk.client.post(path, json={"decidedBy": "grace"}, headers=person("bob"))
    missing = await desk.client.post(
        f"/v1/approvals/{instance_id}/nowhere/approve", headers=person("grace")
    )

    assert "not among the assignees" in problem(stranger, 403, "not-an-assignee")["detail"]
    problem(viewer, 403, "forbidden")
    assert problem(named, 422, "invalid-request")["errors"][0]["pointer"] == "#/decidedBy"
    problem(missing, 404, "not-found")
    assert await end_offsets(desk.d, desk.d.settings.topics.decisions) == before


async def test_a_closed_approval_takes_no_decision(desk: Desk) -> None:
    instance_id = await desk.start("dash-expense", {"id": "closed-1"})
    await desk.pending(instance_id)
    path = f"/v1/approvals/{instance_id}/approve"
    assert (await desk.client.post(f"{path}/approve", headers=person("grace"))).status_code == 202
    await desk.status(instance_id, "completed")

    late = await desk.client.post(f"{path}/reject", headers=person("erin", "finance"))

    assert problem(late, 409, "approval-closed")["approvalStatus"] == "approved"


# -- instances ---------------------------------------------------------------------------


async def test_the_instance_detail_has_a_timeline_with_durations_and_its_children(
    desk: Desk,
) -> None:
    parent = await desk.start("dash-parent", {"id": "family-1"})

    detail = await desk.status(parent, "completed")

    [child] = detail["children"]
    assert (child["workflowId"], child["status"], child["parentInstanceId"]) == (
        "dash-child",
        "completed",
        parent,
    )
    assert [s["stepId"] for s in detail["steps"]] == ["child"]
    assert detail["steps"][0]["durationMs"] >= 0
    assert all(h["durationMs"] is not None for h in detail["history"])
    assert detail["executionLogLevel"] == "info"
    kid = await desk.status(child["id"], "completed")
    assert (kid["parentInstanceId"], kid["parentStepId"]) == (parent, "child")


async def test_ui_components_follow_the_instance_as_seed_004_describes(desk: Desk) -> None:
    running = await desk.start("dash-ui", {"id": "ui-1", "fail": False})
    failing = await desk.start("dash-ui", {"id": "ui-2", "fail": True})
    waiting = await desk.status(running, "waiting")
    assert waiting["executionLogLevel"] == "debug"

    progress = await desk.client.get(
        f"/v1/instances/{running}/ui-components", headers=bearer("viewer")
    )
    [timeline] = progress.json()["items"]
    assert (timeline["componentId"], timeline["layout"], timeline["title"]) == (
        "workflow-progress",
        "timeline",
        "Current Progress",
    )
    assert [s["stepId"] for s in timeline["data"]["steps"]] == ["gate", "hold"]
    sent = await desk.client.post(
        f"/v1/instances/{running}/events",
        json={"event": {"id": "ui-1"}},
        headers=bearer("operator"),
    )
    assert sent.status_code == 202
    await desk.status(running, "completed")
    [summary] = (
        await desk.client.get(f"/v1/instances/{running}/ui-components", headers=bearer("viewer"))
    ).json()["items"]
    assert (summary["componentId"], summary["layout"]) == ("workflow-summary", "card")
    assert summary["data"]["output"] == {"paid": True}
    await desk.status(failing, "failed")
    [alert] = (
        await desk.client.get(f"/v1/instances/{failing}/ui-components", headers=bearer("viewer"))
    ).json()["items"]
    assert (alert["componentId"], alert["layout"]) == ("error-view", "alert")
    assert alert["data"]["error"]["type"] == "Broken"


# -- stats -------------------------------------------------------------------------------


async def test_throughput_counts_this_minute_and_counts_split_by_workflow(desk: Desk) -> None:
    ids = [await desk.start("dash-child", {"id": f"tp-{n}"}) for n in range(3)]
    for instance_id in ids:
        await desk.status(instance_id, "completed")

    report = (
        await desk.client.get(
            "/v1/stats/throughput", params={"minutes": 5}, headers=bearer("viewer")
        )
    ).json()
    counts = (
        await desk.client.get(
            "/v1/instances/counts", params={"perWorkflow": "true"}, headers=bearer("viewer")
        )
    ).json()

    assert len(report["items"]) == 5
    assert sum(i["started"] for i in report["items"]) >= 3
    assert sum(i["completed"] for i in report["items"]) >= 3
    assert report["latencyMs"]["count"] >= 3
    assert 0 <= report["latencyMs"]["p50"] <= report["latencyMs"]["p99"]
    assert counts["counts"]["completed"] >= 3
    assert counts["capped"] == []
    child = next(w for w in counts["byWorkflow"] if w["workflowId"] == "dash-child")
    assert child["counts"]["completed"] >= 3
    capped = (
        await desk.client.get("/v1/instances/counts", params={"cap": 1}, headers=bearer("viewer"))
    ).json()
    assert capped["counts"]["completed"] == 1
    assert "completed" in capped["capped"]
