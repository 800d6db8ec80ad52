"""Approvals by decision events, end to end: signed decisions on the real decisions topic,
outcome events read back, instance state in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest_asyncio
from pydantic import SecretStr

from flowbus.approvals.tokens import sign_decision
from flowbus.config import ApprovalSettings
from flowbus.devstack.ports import free_port
from tests.integration.conftest import DeploymentFactory
from tests.support.contracts import contract_violations
from tests.support.stack import Deployment, Stack, gap_free

SECRET = "decisions-" + "s" * 32
KEYS = ApprovalSettings(hs256_secret=SecretStr(SECRET))
ENV = {"FLOWBUS_APPROVALS__HS256_SECRET": SECRET}
METRICS_PORT = free_port()


def trigger(kind: str) -> list[dict[str, Any]]:
    return [{"topic": "orders", "type": kind, "transform": {"expression": "data"}}]


def approval(**fields: Any) -> dict[str, Any]:
    return {"id": "approve", "type": "approval", "summary": {"order": "{{ input.id }}"}, **fields}


DEFINITIONS: list[dict[str, Any]] = [
    {
        "id": "expense",
        "triggers": trigger("t.expense"),
        "steps": [
            {
                "id": "reserve",
                "type": "action",
                "action": "set_variables",
                "config": {"reserved": True},
                "compensate": {
                    "action": "send_event",
                    "config": {
                        "topic": "undo",
                        "type": "undo",
                        "data": {"order": "{{ input.id }}"},
                    },
                },
                "next": "approve",
            },
            approval(assignees=["user:alice", "group:finance"], next="done"),
            {"id": "done", "type": "action", "action": "set_variables", "config": {"paid": True}},
        ],
    },
    {
        "id": "board",
        "triggers": trigger("t.board"),
        "steps": [approval(assignees=["user:a", "user:b", "user:c"], quorum=2)],
    },
    {
        "id": "unanimous",
        "triggers": trigger("t.unanimous"),
        "steps": [approval(assignees=["user:a", "user:b"], quorum="all")],
    },
    {
        "id": "escalating",
        "triggers": trigger("t.escalate"),
        "steps": [
            approval(
                assignees=["user:alice"],
                deadline="PT1S",
                onTimeout={"action": "escalate", "assignees": ["user:boss"], "deadline": "PT60S"},
            )
        ],
    },
    {
        "id": "hurried",
        "triggers": trigger("t.hurried"),
        "steps": [
            approval(
                assignees=["user:alice"],
                deadline="PT1S",
                onTimeout={"action": "goto", "to": "late"},
            ),
            {"id": "late", "type": "action", "action": "set_variables", "config": {"late": True}},
        ],
    },
]


class Approvals:
    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment

    async def start(self, kind: str) -> tuple[str, str]:
        """Start an instance; return its id and its approval id once requested."""
        order = uuid.uuid4().hex[:10]
        await self.d.publish(self.d.topic("orders"), [{"type": kind, "id": order}])
        requested = await self.wait_for(
            lambda e: (
                e["type"] == "flowbus.approval.requested"
                and e["data"]["summary"] == {"order": order}
            )
        )
        return requested["subject"], requested["data"]["approvalId"]

    async def decide(
        self,
        approval_id: str,
        decision: str,
        user: str,
        *,
        groups: list[str] | None = None,
        token: str | None = None,
        comment: str | None = None,
    ) -> None:
        signed = token or sign_decision(
            KEYS, approval_id=approval_id, decision=decision, user=user, groups=groups
        )
        body = {
            "approvalId": approval_id,
            "decision": decision,
            "token": signed,
            "comment": comment,
        }
        await self.d.publish(self.d.settings.topics.decisions, [body])

    async def events(
        self, instance_id: str, until: Any, timeout: float = 30
    ) -> list[dict[str, Any]]:
        topics = [
            self.d.settings.topics.instances,
            self.d.settings.topics.steps,
            self.d.settings.topics.approvals,
        ]

        def done(evs: list[dict[str, Any]]) -> bool:
            own = [e for e in evs if e.get("subject") == instance_id]
            return until(own) and gap_free(own)

        seen = await self.d.read_events(topics, until=done, timeout=timeout)
        own = {e["id"]: e for e in seen if e.get("subject") == instance_id}
        return sorted(own.values(), key=lambda e: e.get("flowbusseq", 0))

    async def finished(self, instance_id: str) -> list[dict[str, Any]]:
        final = {"completed", "failed", "compensated", "cancelled", "timed_out"}
        return await self.events(
            instance_id,
            lambda evs: any(
                e["type"].rsplit(".", 1)[1] in final and ".instance." in e["type"] for e in evs
            ),
        )

    async def refusal(self, predicate: Any) -> dict[str, Any]:
        return await self.wait_for(
            lambda e: e["type"] == "flowbus.approval.decision_refused" and predicate(e["data"])
        )

    async def wait_for(self, predicate: Any, timeout: float = 30) -> dict[str, Any]:
        seen = await self.d.read_events(
            [self.d.settings.topics.approvals],
            until=lambda evs: any(predicate(e) for e in evs),
            timeout=timeout,
        )
        return next(e for e in seen if predicate(e))

    async def status(self, instance_id: str) -> str:
        [row] = await self.d.fetch(
            "SELECT status FROM instances WHERE id = $1", uuid.UUID(instance_id)
        )
        return str(row["status"])


@pytest_asyncio.fixture(scope="module")
async def desk(stack: Stack) -> AsyncIterator[Approvals]:
    deployment = await stack.deployment("approvals", DEFINITIONS)
    await deployment.start_worker(
        extra_env={**ENV, "FLOWBUS_WORKER__METRICS_PORT": str(METRICS_PORT)}
    )
    try:
        yield Approvals(deployment)
    finally:
        deployment.stop_workers()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("flowbus.") for e in events]


async def test_approve_path(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.expense")
    await desk.decide(approval_id, "approve", "carol", groups=["finance"], comment="ok")
    events = await desk.finished(instance_id)

    assert types(events)[-6:] == [
        "approval.decision_accepted",
        "approval.completed",
        "step.completed",
        "step.started",
        "step.completed",
        "instance.completed",
    ]
    accepted = next(e for e in events if e["type"] == "flowbus.approval.decision_accepted")
    assert (
        accepted["data"]["decidedBy"],
        accepted["data"]["decision"],
        accepted["data"]["comment"],
    ) == (
        "carol",
        "approve",
        "ok",
    )
    [row] = await desk.d.fetch(
        "SELECT status FROM approvals WHERE approval_id = $1", uuid.UUID(approval_id)
    )
    assert row["status"] == "approved"


async def test_reject_path_compensates(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.expense")
    await desk.decide(approval_id, "reject", "alice", comment="too expensive")
    events = await desk.finished(instance_id)

    completed = next(e for e in events if e["type"] == "flowbus.approval.completed")
    assert completed["data"]["outcome"] == "rejected"
    assert types(events)[-3:] == [
        "instance.compensating",
        "step.compensated",
        "instance.compensated",
    ]
    assert events[-1]["data"]["error"]["type"] == "ApprovalRejected"
    assert await desk.status(instance_id) == "compensated"


async def test_two_of_three_continues_only_after_the_second_distinct_approver(
    desk: Approvals,
) -> None:
    instance_id, approval_id = await desk.start("t.board")
    await desk.decide(approval_id, "approve", "a")
    await desk.events(
        instance_id, lambda evs: any(e["type"].endswith("decision_accepted") for e in evs)
    )
    await asyncio.sleep(0.5)
    assert await desk.status(instance_id) == "waiting"

    await desk.decide(approval_id, "approve", "b")
    events = await desk.finished(instance_id)
    assert events[-1]["type"] == "flowbus.instance.completed"
    done = next(e for e in events if e["type"] == "flowbus.approval.completed")
    assert [d["by"] for d in done["data"]["decisions"]] == ["a", "b"]


async def test_all_quorum_is_rejected_by_one_rejection(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.unanimous")
    await desk.decide(approval_id, "approve", "a")
    await desk.decide(approval_id, "reject", "b")
    events = await desk.finished(instance_id)

    done = next(e for e in events if e["type"] == "flowbus.approval.completed")
    assert done["data"]["outcome"] == "rejected"
    assert events[-1]["type"] == "flowbus.instance.failed"


async def test_deadline_escalates_then_the_escalation_assignee_approves(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.escalate")
    escalated = await desk.wait_for(
        lambda e: e["type"] == "flowbus.approval.escalated" and e["subject"] == instance_id
    )
    assert escalated["data"]["assignees"] == ["user:boss"]
    await desk.decide(approval_id, "approve", "alice")
    await desk.refusal(lambda d: d["approvalId"] == approval_id and d["decidedBy"] == "alice")
    await desk.decide(approval_id, "approve", "boss")
    events = await desk.finished(instance_id)
    assert events[-1]["type"] == "flowbus.instance.completed"


async def test_a_forged_signature_is_refused(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.board")
    forged = jwt.encode(
        {
            "iss": KEYS.issuer,
            "aud": KEYS.audience,
            "sub": "a",
            "exp": int(time.time()) + 60,
            "approval_id": approval_id,
            "decision": "approve",
        },
        "not-the-secret-" + "x" * 32,
        algorithm="HS256",
    )
    await desk.decide(approval_id, "approve", "a", token=forged)
    refused = await desk.refusal(lambda d: d["approvalId"] == approval_id)
    assert refused["data"]["reason"] == "bad signature"
    assert refused["data"]["decidedBy"] is None
    assert await desk.status(instance_id) == "waiting"


async def test_an_expired_token_is_refused(desk: Approvals) -> None:
    _, approval_id = await desk.start("t.board")
    stale = jwt.encode(
        {
            "iss": KEYS.issuer,
            "aud": KEYS.audience,
            "sub": "a",
            "exp": int(time.time()) - 60,
            "approval_id": approval_id,
            "decision": "approve",
        },
        SECRET,
        algorithm="HS256",
    )
    await desk.decide(approval_id, "approve", "a", token=stale)
    refused = await desk.refusal(lambda d: d["approvalId"] == approval_id)
    assert refused["data"]["reason"] == "the token has expired"


async def test_a_decision_from_a_non_assignee_is_refused(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.board")
    await desk.decide(approval_id, "approve", "mallory")
    refused = await desk.refusal(lambda d: d["approvalId"] == approval_id)
    assert refused["data"]["reason"] == "mallory is not an assignee"
    assert refused["subject"] == instance_id
    assert await desk.status(instance_id) == "waiting"


async def test_a_decision_after_the_deadline_is_refused(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.hurried")
    events = await desk.finished(instance_id)
    assert events[-1]["data"]["output"] == {"late": True}

    await desk.decide(approval_id, "approve", "alice")
    refused = await desk.refusal(lambda d: d["approvalId"] == approval_id)
    assert refused["data"]["reason"] == "the approval is closed (expired)"


async def test_the_same_decision_published_twice_has_one_effect(desk: Approvals) -> None:
    instance_id, approval_id = await desk.start("t.board")
    token = sign_decision(KEYS, approval_id=approval_id, decision="approve", user="a")
    await desk.decide(approval_id, "approve", "a", token=token)
    await desk.decide(approval_id, "approve", "a", token=token)
    refused = await desk.refusal(lambda d: d["approvalId"] == approval_id)
    assert refused["data"]["reason"] == "a has already decided"
    events = await desk.events(
        instance_id, lambda evs: any(e["type"].endswith("decision_accepted") for e in evs)
    )
    assert len([e for e in events if e["type"].endswith("decision_accepted")]) == 1
    assert await desk.status(instance_id) == "waiting"


async def test_a_decision_for_a_killed_workers_instance_is_applied_once_after_restart(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("approval-crash", DEFINITIONS)
    worker = await d.start_worker(extra_env=ENV)
    desk = Approvals(d)
    instance_id, approval_id = await desk.start("t.expense")
    worker.kill()

    await desk.decide(approval_id, "approve", "alice")
    await d.start_worker(extra_env=ENV)
    events = await desk.finished(instance_id)

    assert events[-1]["type"] == "flowbus.instance.completed"
    assert len([e for e in events if e["type"].endswith("decision_accepted")]) == 1
    rows = await d.fetch(
        "SELECT status FROM step_executions WHERE instance_id = $1 AND step_id = 'approve'",
        uuid.UUID(instance_id),
    )
    assert [r["status"] for r in rows] == ["completed"]


async def test_the_worker_counts_refusals_and_step_durations(desk: Approvals) -> None:
    _, approval_id = await desk.start("t.board")
    await desk.decide(approval_id, "approve", "mallory")
    await desk.refusal(lambda d: d["approvalId"] == approval_id and d["decidedBy"] == "mallory")
    await desk.decide(approval_id, "approve", "a", token="not-a-token")
    await desk.refusal(lambda d: d["approvalId"] == approval_id and d["decidedBy"] is None)

    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{METRICS_PORT}/metrics")).text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['flowbus_decisions_refused_total{reason="rules"}'] >= 1
    assert samples['flowbus_decisions_refused_total{reason="token"}'] >= 1
    assert any(
        name.startswith("flowbus_step_duration_seconds_count") and 'step_type="approval"' in name
        for name in samples
    )


async def test_every_event_this_module_saw_matches_the_topic_catalog(desk: Approvals) -> None:
    d = desk.d
    topics = [d.settings.topics.instances, d.settings.topics.steps, d.settings.topics.approvals]
    seen = await d.read_events(topics, until=lambda events: len(events) > 0)
    await asyncio.sleep(1.0)
    seen = await d.read_events(topics, until=lambda events: len(events) >= len(seen))

    assert len({e["type"] for e in seen}) > 5
    assert contract_violations(seen) == []
