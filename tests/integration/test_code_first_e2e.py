"""Code-first workflows and task workers end to end: the user's code runs in real
`flowbus sdk-worker` processes (tests/integration/sdk_e2e_app.py), flowbus in real
`flowbus worker` and `flowbus api` processes, on the real broker and database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from flowbus.approvals.tokens import sign_decision
from flowbus.config import ApprovalSettings
from tests.integration.conftest import DeploymentFactory
from tests.integration.test_api_support import AUTH_ENV, bearer, start_api, token
from tests.integration.test_code_first_approvals import ENV as DECISION_ENV
from tests.integration.test_code_first_approvals import approval_event, decide
from tests.support.contracts import contract_violations
from tests.support.stack import REPO, Deployment, Worker

APP = "tests.integration.sdk_e2e_app:components"
WORKFLOWS = {"e2e-orders", "e2e-waits", "e2e-approve", "e2e-saga", "e2e-diverge"}
FAST_TASKS = {"FLOWBUS_WORKER__WORKFLOW_TASK_TIMEOUT": "4"}


async def code_first(deploy: DeploymentFactory, name: str, definitions: Any = ()) -> Deployment:
    return await deploy(name, list(definitions), source_topics=("orders", "payments"))


def sdk_worker(d: Deployment, variant: str = "a") -> Worker:
    """`flowbus sdk-worker` running the test app, in the deployment's consumer group."""
    log_path = d.work / f"sdk-worker-{len(d.workers)}.log"
    topics = d.settings.topics
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowbus",
                "sdk-worker",
                APP,
                "--broker",
                d.settings.broker_url,
                "--group",
                f"sdk-{d.suffix}",
                "--tasks-topic",
                topics.tasks,
                "--results-topic",
                topics.results,
                "--commands-topic",
                topics.commands,
            ],
            cwd=REPO,
            env={**d.env(), "E2E_DIR": str(d.work), "E2E_SUFFIX": d.suffix, "E2E_VARIANT": variant},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log_path)
    d.workers.append(worker)
    return worker


async def eventually(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def effects(d: Deployment) -> list[str]:
    path = d.work / "effects.log"
    return path.read_text().splitlines() if path.exists() else []


def hold(d: Deployment, name: str) -> Path:
    path = d.work / f"hold-{name}"
    path.touch()
    return path


async def registered(d: Deployment, ids: set[str] = WORKFLOWS) -> None:
    """Until flowbus stored the definitions the SDK worker registered on start."""

    async def stored() -> bool:
        rows = await d.fetch("SELECT workflow_id, document FROM workflow_definitions")
        assert all(r["document"]["kind"] == "code" for r in rows if r["workflow_id"] in ids)
        return ids <= {r["workflow_id"] for r in rows}

    await eventually(stored, f"definitions {sorted(ids)} stored")


async def place(d: Deployment, event_type: str, **fields: Any) -> str:
    """Publish a domain event on the orders topic; returns its order id."""
    order = fields.pop("orderId", None) or uuid.uuid4().hex[:10]
    await d.publish(d.topic("orders"), [{"type": event_type, "orderId": order, **fields}], order)
    return order


async def instance_of(d: Deployment, order: str) -> str:
    async def found() -> str | None:
        rows = await d.fetch("SELECT id FROM instances WHERE input->>'orderId' = $1", order)
        return str(rows[0]["id"]) if rows else None

    result: str = await eventually(found, f"an instance for order {order}")
    return result


async def status(d: Deployment, instance: str) -> str:
    [row] = await d.fetch("SELECT status FROM instances WHERE id = $1", uuid.UUID(instance))
    return str(row["status"])


async def ended(d: Deployment, instance: str, final: str, timeout: float = 60) -> None:
    async def done() -> bool:
        return await status(d, instance) == final

    await eventually(done, f"instance {instance} {final}", timeout)


async def outcome_events(
    d: Deployment, instance: str, last: str, timeout: float = 60
) -> list[dict[str, Any]]:
    """The instance's events on the instances and steps topics, up to `last`."""

    def mine(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in seen if e["_key"] == instance]

    events = await d.read_events(
        [d.settings.topics.instances, d.settings.topics.steps],
        until=lambda seen: any(e["type"] == last for e in mine(seen)),
        timeout=timeout,
    )
    return sorted(mine(events), key=lambda e: e.get("flowbusseq", 0))


async def step_rows(d: Deployment, instance: str) -> list[tuple[str, str]]:
    rows = await d.fetch(
        "SELECT step_id, status FROM step_executions WHERE instance_id = $1 ORDER BY started_at",
        uuid.UUID(instance),
    )
    return [(r["step_id"], r["status"]) for r in rows]


# -- 1. a domain event starts a three-step code-first workflow ---------------------------


async def test_a_code_first_workflow_triggered_by_an_event_completes_in_real_processes(
    deploy: DeploymentFactory,
) -> None:
    d = await code_first(deploy, "e2e-complete")
    await d.start_worker()
    sdk_worker(d)
    await registered(d)

    order = await place(d, "order.placed")
    instance = await instance_of(d, order)

    events = await outcome_events(d, instance, "flowbus.instance.completed")
    assert contract_violations(events) == []
    [done] = [e for e in events if e["type"] == "flowbus.instance.completed"]
    assert done["data"]["output"]["order"] == order
    completed = [e["data"]["stepId"] for e in events if e["type"] == "flowbus.step.completed"]
    assert completed == ["reserve", "charge", "ship"]
    assert [line.split()[:2] for line in effects(d)] == [
        ["start", "reserve"],
        ["done", "reserve"],
        ["start", "charge"],
        ["done", "charge"],
        ["start", "ship"],
        ["done", "ship"],
    ]

    [row] = await d.fetch(
        "SELECT workflow_id, status FROM instances WHERE id = $1", uuid.UUID(instance)
    )
    assert (row["workflow_id"], row["status"]) == ("e2e-orders", "completed")
    assert await step_rows(d, instance) == [
        ("reserve", "completed"),
        ("charge", "completed"),
        ("ship", "completed"),
    ]

    api = await start_api(d, AUTH_ENV)
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=bearer("viewer")) as client:
            shown = (await client.get(f"/v1/instances/{instance}")).json()
            steps = (await client.get(f"/v1/instances/{instance}/steps")).json()
        assert (shown["workflowId"], shown["status"]) == ("e2e-orders", "completed")
        assert [(s["stepId"], s["status"]) for s in steps["items"]] == [
            ("reserve", "completed"),
            ("charge", "completed"),
            ("ship", "completed"),
        ]
        env = {**d.env(), "FLOWBUS_API_TOKEN": token("viewer")}
        for command in ("show", "steps"):
            args = ["instances", command, instance, "--api-url", api.url]
            cli = subprocess.run(
                [sys.executable, "-m", "flowbus", *args],
                cwd=REPO,
                env=env,
                capture_output=True,
                timeout=60,
            )
            out = cli.stdout.decode()
            assert cli.returncode == 0, cli.stderr.decode()
            assert "completed" in out
            assert "charge" in out
    finally:
        api.stop()


def lines_of(d: Deployment, instance: str) -> list[str]:
    """The instance's side effects, without the idempotency keys."""
    return [
        " ".join(part for part in line.split() if not part.startswith(instance))
        for line in effects(d)
        if instance in line
    ]


async def wait_row(d: Deployment, instance: str, step: str) -> None:
    async def recorded() -> bool:
        return any(name == step for name, _ in await step_rows(d, instance))

    await eventually(recorded, f"step {step} of {instance} recorded")


# -- 2. an SDK worker killed mid-step -----------------------------------------------------


async def test_a_second_sdk_worker_finishes_the_workflow_of_one_killed_mid_step(
    deploy: DeploymentFactory,
) -> None:
    d = await code_first(deploy, "e2e-kill")
    await d.start_worker(extra_env=FAST_TASKS)
    first = sdk_worker(d)
    await registered(d)
    gate = hold(d, "charge")

    order = await place(d, "order.placed")
    instance = await instance_of(d, order)
    await eventually(lambda: "start charge" in lines_of(d, instance), "charge running")
    first.kill()

    def resent(seen: list[dict[str, Any]]) -> bool:
        return sum(e["data"]["taskId"] == f"{instance}:1" for e in seen) >= 2

    await d.read_events([d.settings.topics.tasks], until=resent, timeout=30)
    sdk_worker(d)
    await eventually(
        lambda: lines_of(d, instance).count("start charge") == 2, "charge running again"
    )
    gate.unlink()

    events = await outcome_events(d, instance, "flowbus.instance.completed")
    assert contract_violations(events) == []
    assert lines_of(d, instance) == [
        "start reserve",
        "done reserve",
        "start charge",  # in the killed worker
        "start charge",  # in the second one
        "done charge",
        "start ship",
        "done ship",
    ]
    keys = {line.split()[2] for line in effects(d) if line.startswith("start charge")}
    assert keys == {f"{instance}:charge"}
    assert await status(d, instance) == "completed"


# -- 3. a durable timer survives a restart of every process -----------------------------


async def test_a_sleep_and_an_event_wait_survive_a_restart_of_every_process(
    deploy: DeploymentFactory,
) -> None:
    d = await code_first(deploy, "e2e-restart")
    flowbus = await d.start_worker()
    sdk = sdk_worker(d)
    await registered(d)

    order = await place(d, "order.waiting")
    instance = await instance_of(d, order)
    await wait_row(d, instance, "nap")
    for process in (sdk, flowbus):
        process.stop()
    await asyncio.sleep(2.5)  # the timer is due while nothing runs

    flowbus = await d.start_worker()
    sdk = sdk_worker(d)
    await wait_row(d, instance, "payment")
    for process in (sdk, flowbus):
        process.stop()
    # The payment arrives while nothing runs; the wait was chosen at run time by the code.
    await d.publish(
        d.topic("payments"), [{"type": "payment.received", "orderId": order, "amount": 20}]
    )

    await d.start_worker()
    sdk_worker(d)
    events = await outcome_events(d, instance, "flowbus.instance.completed")
    assert contract_violations(events) == []
    [done] = [e for e in events if e["type"] == "flowbus.instance.completed"]
    assert done["data"]["output"] == {"order": order, "paid": 20}
    assert lines_of(d, instance) == ["start before", "done before", "start after", "done after"]
    assert await step_rows(d, instance) == [
        ("before", "completed"),
        ("nap", "completed"),
        ("payment", "completed"),
        ("after", "completed"),
    ]


# -- 4. sagas: compensation on failure and on cancel, not for an optional step -------------


async def test_compensations_run_newest_first_on_failure_and_cancel_but_not_for_optional(
    deploy: DeploymentFactory,
) -> None:
    d = await code_first(deploy, "e2e-saga")
    await d.start_worker()
    sdk_worker(d)
    await registered(d)

    failing = await instance_of(d, await place(d, "order.saga", fail=True))
    waiting = await instance_of(d, await place(d, "order.saga", wait=True))
    optional = await instance_of(d, await place(d, "order.saga"))

    await wait_row(d, waiting, "event-4")
    api = await start_api(d, AUTH_ENV)
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=bearer("operator")) as client:
            response = await client.post(f"/v1/instances/{waiting}/cancel", json={})
        assert response.status_code == 202, response.text
    finally:
        api.stop()

    compensated = "flowbus.instance.compensated"
    for instance, last in ((failing, compensated), (waiting, compensated)):
        events = await outcome_events(d, instance, last)
        assert contract_violations(events) == []
        undone = [e["data"]["stepId"] for e in events if e["type"] == "flowbus.step.compensated"]
        assert undone == ["two", "one"]
        assert "flowbus.instance.compensating" in [e["type"] for e in events]
        assert await status(d, instance) == "compensated"
    done = ["start one", "done one", "start two", "done two", "fail extra"]
    assert lines_of(d, failing) == [*done, "fail three", "undo two", "undo one"]
    assert lines_of(d, waiting) == [*done, "undo two", "undo one"]

    events = await outcome_events(d, optional, "flowbus.instance.completed")
    assert contract_violations(events) == []
    [extra] = [e for e in events if e["type"] == "flowbus.step.failed"]
    assert extra["data"]["stepId"] == "extra"
    assert lines_of(d, optional) == [*done, "start three", "done three"]
    assert await status(d, optional) == "completed"


# -- 5. a declarative task step done by an SDK task worker --------------------------------

CHARGE_ORDER: dict[str, Any] = {
    "id": "e2e-charge",
    "triggers": [{"topic": "orders", "type": "order.charge"}],
    "steps": [
        {
            "id": "charge",
            "type": "action",
            "action": "task",
            "config": {
                "taskType": "charge-card",
                "input": {"amount": "{{ input.amount }}"},
                "heartbeat": "PT2S",
            },
            "timeout": "PT1M",
            "retryPolicy": {"maxAttempts": 2, "delay": "PT15S"},
        }
    ],
}


async def test_a_task_step_is_done_by_an_sdk_task_worker_after_another_died_mid_task(
    deploy: DeploymentFactory,
) -> None:
    d = await code_first(deploy, "e2e-task", [CHARGE_ORDER])
    await d.start_worker()
    first = sdk_worker(d)
    gate = hold(d, "task")

    order = await place(d, "order.charge", amount=42)
    instance = await instance_of(d, order)
    await eventually(lambda: "start task 1" in lines_of(d, instance), "the task running")
    first.kill()  # its heartbeats stop
    gate.unlink()
    # The retry comes once the group gave the dead worker's partitions to the new one
    # (its session timeout, 10 s); the stale first attempt it also gets changes nothing.
    sdk_worker(d)

    events = await outcome_events(d, instance, "flowbus.instance.completed", timeout=90)
    assert contract_violations(events) == []
    [failed] = [e for e in events if e["type"] == "flowbus.step.failed"]
    assert failed["data"]["error"]["type"] == "TimeoutError"
    [completed] = [e for e in events if e["type"] == "flowbus.step.completed"]
    assert completed["data"]["output"] == {"charged": 42, "key": f"{instance}:charge"}
    rows = await d.fetch(
        "SELECT attempt, status FROM step_executions WHERE instance_id = $1 ORDER BY attempt",
        uuid.UUID(instance),
    )
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "failed"), (2, "completed")]
    keys = {line.split()[2] for line in effects(d) if line.startswith("start task")}
    assert keys == {f"{instance}:charge"}
    assert "done task 2" in lines_of(d, instance)


# -- 6. a replay that diverges is held ----------------------------------------------------


async def test_a_replay_that_diverges_holds_the_instance(deploy: DeploymentFactory) -> None:
    d = await code_first(deploy, "e2e-diverge")
    await d.start_worker()
    old = sdk_worker(d, variant="a")
    await registered(d)

    order = await place(d, "order.diverge")
    instance = await instance_of(d, order)
    await wait_row(d, instance, "pause")
    old.stop()
    sdk_worker(d, variant="b")  # the same workflow version, its steps in another order

    events = await outcome_events(d, instance, "flowbus.instance.held")
    assert contract_violations(events) == []
    [held] = [e for e in events if e["type"] == "flowbus.instance.held"]
    assert held["data"]["reason"] == "nondeterministic"
    assert "'first'" in held["data"]["message"]
    assert "'second'" in held["data"]["message"]
    await asyncio.sleep(1)
    assert await status(d, instance) not in ("failed", "completed", "compensated")
    assert lines_of(d, instance) == ["start first", "done first", "start second", "done second"]
    ends = {"flowbus.instance.failed", "flowbus.instance.completed"}
    assert not [
        e for e in await outcome_events(d, instance, "flowbus.instance.held") if e["type"] in ends
    ]


# -- 7. an approval in code, decided by a signed decision event ---------------------------


async def test_a_code_first_approval_is_approved_by_a_signed_decision_and_a_forgery_refused(
    deploy: DeploymentFactory,
) -> None:
    d = await code_first(deploy, "e2e-approve")
    await d.start_worker(extra_env=DECISION_ENV)
    sdk_worker(d)
    await registered(d)

    order = await place(d, "order.refund")
    instance = await instance_of(d, order)
    [requested] = await approval_event(d, "requested")
    assert requested["subject"] == instance
    approval_id = requested["data"]["approvalId"]
    forged = sign_decision(
        ApprovalSettings(hs256_secret=SecretStr("another-secret-" + "x" * 32)),
        approval_id=approval_id,
        decision="approve",
        user="alice",
    )
    await decide(d, approval_id, "alice", forged)
    [refused] = await approval_event(d, "decision_refused")
    assert "bad signature" in refused["data"]["reason"]
    assert await status(d, instance) == "waiting"

    await decide(d, approval_id, "alice")
    events = await outcome_events(d, instance, "flowbus.instance.completed")
    assert contract_violations(events) == []
    [done] = [e for e in events if e["type"] == "flowbus.instance.completed"]
    assert done["data"]["output"] == {"approved": True, "by": ["alice"]}
    assert lines_of(d, instance) == ["start reserve", "done reserve", "start pay", "done pay"]
