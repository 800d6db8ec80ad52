"""A code-first approval wait driven by hand-made SDK worker records: the same approval
requests, signed decisions and refusals as the declarative `approval` step."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from pydantic import SecretStr

from flowbus.approvals.tokens import sign_decision
from flowbus.config import ApprovalSettings
from tests.integration.conftest import DeploymentFactory
from tests.integration.test_code_first import PAYMENTS, send, workflow_task
from tests.support.contracts import contract_violations
from tests.support.stack import Deployment

SECRET = "decisions-" + "c" * 32
KEYS = ApprovalSettings(hs256_secret=SecretStr(SECRET))
ENV = {"FLOWBUS_APPROVALS__HS256_SECRET": SECRET}


async def decide(d: Deployment, approval_id: str, user: str, token: str | None = None) -> None:
    signed = token or sign_decision(KEYS, approval_id=approval_id, decision="approve", user=user)
    body = {"approvalId": approval_id, "decision": "approve", "token": signed}
    await d.publish(d.settings.topics.decisions, [body])


async def approval_event(d: Deployment, kind: str, count: int = 1) -> list[dict[str, Any]]:
    def found(seen: list[dict[str, Any]]) -> bool:
        return len([e for e in seen if e["type"] == f"flowbus.approval.{kind}"]) >= count

    events = await d.read_events([d.settings.topics.approvals], until=found, timeout=60)
    return [e for e in events if e["type"] == f"flowbus.approval.{kind}"]


async def test_a_signed_decision_approves_a_code_first_approval_and_forgeries_are_refused(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("code-approval", [PAYMENTS])
    await d.start_worker(extra_env=ENV)
    await d.publish(d.topic("orders"), [{"type": "order.placed", "amount": 5000}])

    first = await workflow_task(d, 1)
    await send(d, first, "step", name="reserve", seq=1, status="completed", result={"ok": 1})
    wait = {
        "name": "manager",
        "seq": 2,
        "kind": "approval",
        "assignees": ["user:alice"],
        "deadline": "PT1H",
        "summary": "refund 5000",
    }
    await send(d, first, "workflow", outcome="waiting", wait=wait)
    [requested] = await approval_event(d, "requested")
    assert requested["subject"] == first["instanceId"]
    assert (requested["data"]["stepId"], requested["data"]["summary"]) == ("manager", "refund 5000")
    approval_id = requested["data"]["approvalId"]

    forged = jwt.encode(
        {
            "iss": KEYS.issuer,
            "aud": KEYS.audience,
            "sub": "alice",
            "exp": int(time.time()) + 60,
            "approval_id": approval_id,
            "decision": "approve",
        },
        "not-the-secret-" + "x" * 32,
        algorithm="HS256",
    )
    await decide(d, approval_id, "alice", token=forged)
    await decide(d, approval_id, "mallory")
    refused = await approval_event(d, "decision_refused", count=2)
    assert sorted(e["data"]["reason"] for e in refused) == [
        "bad signature",
        "mallory is not an assignee",
    ]
    [row] = await d.fetch(
        "SELECT status, state->'code'->'task' AS task FROM instances WHERE id = $1",
        uuid.UUID(first["instanceId"]),
    )
    assert (row["status"], row["task"]) == ("waiting", 1), "the refusals changed nothing"

    await decide(d, approval_id, "alice")
    second = await workflow_task(d, 2)
    assert second["reason"] == "resumed"
    [_, entry] = second["history"]
    assert (entry["name"], entry["waitKind"]) == ("manager", "approval")
    assert entry["status"] == "completed"
    assert entry["result"]["approved"] is True
    assert [x["by"] for x in entry["result"]["decisions"]] == ["alice"]
    await send(d, second, "workflow", outcome="completed", output={"refunded": True})

    events = await d.read_events(
        [d.settings.topics.instances, d.settings.topics.steps, d.settings.topics.approvals],
        until=lambda seen: any(e["type"] == "flowbus.instance.completed" for e in seen),
        timeout=60,
    )
    assert contract_violations(events) == []
    [completed] = [e for e in events if e["type"] == "flowbus.approval.completed"]
    assert completed["data"]["outcome"] == "approved"
    [approval] = await d.fetch("SELECT status, step_id FROM approvals")
    assert (approval["status"], approval["step_id"]) == ("approved", "manager")
    rows = await d.fetch("SELECT step_id, step_type, status FROM step_executions")
    assert ("manager", "approval", "completed") in {
        (r["step_id"], r["step_type"], r["status"]) for r in rows
    }
