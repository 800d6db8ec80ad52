"""A worker killed with SIGKILL mid-stream loses nothing and invents nothing."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from flowbus.engine.ids import event_id
from tests.integration.conftest import DeploymentFactory, workflow_file

ORDERS = 600


async def test_sigkill_mid_stream_yields_one_instance_per_event_and_no_lost_or_invented_events(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("crash", [workflow_file("order-basic.yaml")])
    worker = await d.start_worker()
    events = [
        {"type": "order.created", "order_id": f"o-{n}", "amount": 2000 if n % 3 == 0 else 10}
        for n in range(ORDERS)
    ]
    publishing = asyncio.create_task(d.publish(d.topic("orders"), events))

    # Kill the worker while batches are being applied and relayed.
    while True:
        rows = await d.fetch("SELECT count(*) AS n FROM instances")
        if rows[0]["n"] >= ORDERS // 10:
            break
        await asyncio.sleep(0.02)
    worker.kill()
    await publishing
    started_before_restart = (await d.fetch("SELECT count(*) AS n FROM instances"))[0]["n"]
    assert started_before_restart < ORDERS, "the kill must land while events are in flight"

    await d.start_worker()
    topics = [d.settings.topics.instances, d.settings.topics.steps]

    def all_completed(seen: list[dict[str, Any]]) -> bool:
        done = {e["subject"] for e in seen if e["type"] == "flowbus.instance.completed"}
        return len(done) >= ORDERS

    seen = await d.read_events(topics, until=all_completed, timeout=90)

    rows = await d.fetch("SELECT id, status, input->>'orderId' AS o, state FROM instances")
    assert len(rows) == ORDERS
    assert sorted(r["o"] for r in rows) == sorted(e["order_id"] for e in events)
    assert {r["status"] for r in rows} == {"completed"}

    # Every committed event reached its topic exactly under its stable id; nothing else did.
    ids_by_instance: dict[str, set[str]] = defaultdict(set)
    for event in seen:
        ids_by_instance[event["subject"]].add(event["id"])
    for row in rows:
        instance_id = str(row["id"])
        emitted = {event_id(instance_id, n) for n in range(1, row["state"]["seq"] + 1)}
        assert ids_by_instance[instance_id] == emitted, instance_id
    assert set(ids_by_instance) == {str(r["id"]) for r in rows}
    assert await d.fetch("SELECT 1 FROM outbox") == []
