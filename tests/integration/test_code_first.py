"""Code-first instances driven by hand-made SDK worker records (plain aiokafka), as the
protocol in topics/sdk-protocol.md documents them."""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.conftest import DeploymentFactory
from tests.support.contracts import contract_violations
from tests.support.stack import Deployment

PAYMENTS: dict[str, Any] = {
    "id": "payments",
    "kind": "code",
    "triggers": [{"topic": "orders", "type": "order.placed"}],
    "inputSchema": {"type": "object", "required": ["amount"]},
}


def record(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "plain-sdk-worker",
        "type": f"flowbus.result.{kind}",
        "subject": data["instanceId"],
        "data": data,
    }


async def send(d: Deployment, task: dict[str, Any], kind: str, **data: Any) -> None:
    body = {"taskId": task["taskId"], "instanceId": task["instanceId"], **data}
    await d.publish(d.settings.topics.results, [record(kind, body)], task["instanceId"])


async def workflow_task(d: Deployment, n: int) -> dict[str, Any]:
    def found(seen: list[dict[str, Any]]) -> bool:
        return any(e["data"]["taskId"].endswith(f":{n}") for e in seen)

    events = await d.read_events([d.settings.topics.tasks], until=found, timeout=60)
    [task] = [e for e in events if e["data"]["taskId"].endswith(f":{n}")][:1]
    assert task["type"] == "flowbus.task.workflow"
    assert task["_key"] == task["data"]["instanceId"]
    assert contract_violations([task]) == []
    data: dict[str, Any] = task["data"]
    return data


async def test_a_code_first_instance_runs_steps_sleeps_and_completes(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("code-first", [PAYMENTS])
    await d.start_worker()
    await d.publish(d.topic("orders"), [{"type": "order.placed", "amount": 5}])

    first = await workflow_task(d, 1)
    assert (first["workflowId"], first["reason"], first["history"]) == ("payments", "start", [])
    assert first["input"]["amount"] == 5
    for seq, name in enumerate(("reserve", "charge"), start=1):
        await send(d, first, "step", name=name, seq=seq, status="started")
        await send(d, first, "step", name=name, seq=seq, status="completed", result={"n": seq})
    wait = {"name": "nap", "seq": 3, "kind": "timer", "duration": "PT1S"}
    await send(d, first, "workflow", outcome="waiting", wait=wait)

    second = await workflow_task(d, 2)
    assert second["reason"] == "resumed"
    assert [(h["kind"], h["name"], h["status"]) for h in second["history"]] == [
        ("step", "reserve", "completed"),
        ("step", "charge", "completed"),
        ("wait", "nap", "completed"),
    ]
    assert second["history"][1]["result"] == {"n": 2}
    await send(d, first, "workflow", outcome="completed", output={"stale": True})
    await send(d, second, "step", name="ship", seq=4, status="completed", result="shipped")
    await send(d, second, "workflow", outcome="completed", output={"paid": 5})

    events = await d.read_events(
        [d.settings.topics.instances, d.settings.topics.steps],
        until=lambda seen: any(e["type"] == "flowbus.instance.completed" for e in seen),
        timeout=60,
    )
    assert contract_violations(events) == []
    [done] = [e for e in events if e["type"] == "flowbus.instance.completed"]
    assert done["data"]["output"] == {"paid": 5}
    completed = [e["data"]["stepId"] for e in events if e["type"] == "flowbus.step.completed"]
    assert completed == ["reserve", "charge", "nap", "ship"]
    rows = await d.fetch("SELECT step_id, status FROM step_executions ORDER BY started_at, step_id")
    assert {(r["step_id"], r["status"]) for r in rows} == {
        ("reserve", "completed"),
        ("charge", "completed"),
        ("nap", "completed"),
        ("ship", "completed"),
    }
    [row] = await d.fetch("SELECT status, state->'output' AS output FROM instances")
    assert (row["status"], row["output"]) == ("completed", {"paid": 5})


async def test_a_code_first_definition_is_registered_through_the_commands_topic(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("code-register", [])
    worker = await d.start_worker()
    definition = {**PAYMENTS, "id": "registered", "triggers": []}
    command = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "plain-sdk-worker",
        "type": "flowbus.command.register",
        "data": {"definition": definition},
    }
    await d.publish(d.settings.topics.commands, [command, command])

    await d.wait_for_log(worker, "definition.registered")
    rows = await d.fetch("SELECT workflow_id, version, document FROM workflow_definitions")
    assert [(r["workflow_id"], r["version"], r["document"]["kind"]) for r in rows] == [
        ("registered", 1, "code")
    ]
