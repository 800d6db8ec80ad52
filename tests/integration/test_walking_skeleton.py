"""A domain event on a real topic runs a workflow: rows in PostgreSQL, CloudEvents on the
outcome topics, matching the topic catalog's schemas."""

from __future__ import annotations

from typing import Any

import orjson

from tests.integration.conftest import DeploymentFactory, workflow_file
from tests.support.contracts import validator_for

ORDER = workflow_file("order-basic.yaml")


def completed(count: int) -> Any:
    def check(events: list[dict[str, Any]]) -> bool:
        done = {e["subject"] for e in events if e["type"] == "flowbus.instance.completed"}
        return len(done) >= count

    return check


def by_instance(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event["subject"], []).append(event)
    for items in grouped.values():
        items.sort(key=lambda e: e["flowbusseq"])
    return grouped


async def test_order_created_event_runs_the_workflow_and_emits_outcome_events(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("skeleton", [ORDER])
    await d.start_worker()
    await d.publish(
        d.topic("orders"),
        [
            {"type": "order.created", "order_id": "big", "amount": 1500, "customer": "ada"},
            {"type": "order.created", "order_id": "small", "amount": 20},
        ],
    )
    topics = [d.settings.topics.instances, d.settings.topics.steps]
    events = await d.read_events(topics, until=completed(2))

    instances = by_instance(events)
    assert len(instances) == 2
    for instance_id, items in instances.items():
        assert all(e["_key"] == instance_id for e in items), "record key is the instance id"
        assert items[0]["type"] == "flowbus.instance.started"
        assert items[-1]["type"] == "flowbus.instance.completed"
        for event in items:
            assert event["specversion"] == "1.0"
            assert event["source"] == "test-skeleton"
            validator_for(event["type"]).validate(event["data"])
    trails = {
        items[0]["data"]["input"]["orderId"]: [
            (e["type"].rsplit(".", 1)[1], e["data"].get("stepId")) for e in items
        ]
        for items in instances.values()
    }
    assert trails["big"] == [
        ("started", None),
        ("started", "check-amount"),
        ("completed", "check-amount"),
        ("started", "flag-for-review"),
        ("completed", "flag-for-review"),
        ("started", "confirm"),
        ("completed", "confirm"),
        ("completed", None),
    ]
    assert ("started", "flag-for-review") not in trails["small"]

    notifications = await d.read_events(
        [d.topic("order-notifications")], until=lambda e: len(e) >= 2
    )
    assert sorted((n["data"]["orderId"], n["data"]["review"]) for n in notifications) == [
        ("big", True),
        ("small", None),
    ]

    rows = await d.fetch("SELECT id, status, output FROM instances ORDER BY created_at")
    assert {r["status"] for r in rows} == {"completed"}
    assert {str(r["id"]) for r in rows} == set(instances)
    steps = await d.fetch(
        "SELECT s.step_id, s.status FROM step_executions s "
        "JOIN instances i ON i.id = s.instance_id WHERE i.input->>'orderId' = 'big'"
    )
    assert {(r["step_id"], r["status"]) for r in steps} == {
        ("check-amount", "completed"),
        ("flag-for-review", "completed"),
        ("confirm", "completed"),
    }
    assert await d.fetch("SELECT 1 FROM outbox") == [], "relayed rows leave the outbox"


async def test_cloudevents_in_structured_and_binary_mode_start_instances(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("cloudevents", [ORDER])
    await d.start_worker()
    structured = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "shop",
        "type": "order.created",
        "data": {"order_id": "s-1", "amount": 10},
    }
    await d.publish(d.topic("orders"), [structured])
    await d.publish(
        d.topic("orders"),
        [orjson.dumps({"order_id": "b-1", "amount": 10})],
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"evt-2"),
            ("ce_source", b"shop"),
            ("ce_type", b"order.created"),
        ],
    )
    events = await d.read_events([d.settings.topics.instances], until=completed(2))
    orders = {e["data"]["output"]["orderId"] for e in events if e["type"].endswith("completed")}
    assert orders == {"s-1", "b-1"}


async def test_unparseable_and_invalid_events_are_dead_lettered_and_the_worker_carries_on(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("deadletter", [ORDER])
    await d.start_worker()
    await d.publish(
        d.topic("orders"),
        [
            b"this is not json",
            {"type": "order.created", "order_id": "x", "amount": -5},
            {"type": "something.else", "amount": 1},
            {"type": "order.created", "order_id": "after", "amount": 5},
        ],
        key="k-1",
    )
    dead = await d.read_events([d.settings.topics.deadletter], until=lambda e: len(e) >= 2)
    reasons = sorted(e["data"]["reason"] for e in dead)
    assert reasons[0].startswith("input does not match inputSchema: amount: -5 is less than")
    assert reasons[1].startswith("value is not JSON")
    by_reason = {e["data"]["reason"][:5]: e for e in dead}
    assert by_reason["value"]["data"]["value"] == "this is not json"
    assert by_reason["value"]["data"]["definitionId"] is None
    assert by_reason["input"]["data"]["definitionId"] == "order-basic"
    assert all(e["_key"] == "k-1" for e in dead)
    for event in dead:
        validator_for("flowbus.deadletter").validate(event["data"])

    events = await d.read_events([d.settings.topics.instances], until=completed(1))
    done = {e["data"]["output"]["orderId"] for e in events if e["type"].endswith("completed")}
    assert done == {"after"}
    rows = await d.fetch("SELECT count(*) AS n FROM instances")
    assert rows[0]["n"] == 1, "the unmatched event starts nothing and is not dead-lettered"
    assert d.workers[0].process.poll() is None


async def test_a_redelivered_event_starts_no_second_instance(deploy: DeploymentFactory) -> None:
    d = await deploy("redelivery", [ORDER])
    first = await d.start_worker()
    cloudevent = {
        "specversion": "1.0",
        "id": "same-id",
        "source": "shop",
        "type": "order.created",
        "data": {"order_id": "dup", "amount": 10},
    }
    await d.publish(d.topic("orders"), [cloudevent, cloudevent])
    await d.publish(d.topic("orders"), [{"type": "order.created", "order_id": "p", "amount": 1}])
    await d.read_events([d.settings.topics.instances], until=completed(2))
    first.stop()

    # A worker in a new consumer group re-reads every record from the start: the
    # applied-offset records of the old group do not cover it, the instance ids do.
    d.settings = d.settings.model_copy(update={"consumer_group": d.settings.consumer_group + "-2"})
    await d.start_worker()
    await d.publish(d.topic("orders"), [{"type": "order.created", "order_id": "q", "amount": 1}])
    await d.read_events([d.settings.topics.instances], until=completed(3))
    rows = await d.fetch("SELECT input->>'orderId' AS o FROM instances ORDER BY o")
    assert [r["o"] for r in rows] == ["dup", "p", "q"]


async def test_an_event_holding_a_nul_character_is_dead_lettered_with_the_place(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("nul", [ORDER])
    await d.start_worker()
    await d.publish(
        d.topic("orders"),
        [
            b'{"type": "order.created", "order_id": "n-1\\u0000", "amount": 5}',
            {"type": "order.created", "order_id": "n-2", "amount": 5},
        ],
    )
    dead = await d.read_events([d.settings.topics.deadletter], until=lambda e: len(e) >= 1)
    assert dead[0]["data"]["reason"] == (
        "data.order_id contains a NUL character (\\u0000), which cannot be stored"
    )
    events = await d.read_events([d.settings.topics.instances], until=completed(1))
    assert {e["data"]["output"]["orderId"] for e in events if e["type"].endswith("completed")} == {
        "n-2"
    }
