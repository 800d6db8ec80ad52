"""No output can wedge the outbox: a step whose output is too large fails with
`PayloadTooLarge`, and a row the broker refuses is parked with an alert while the rows
after it are published."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from flowbus.config import TopicNames
from flowbus.engine.effects import EmitEvent
from flowbus.engine.limits import Limits
from flowbus.outbox.writer import OutboxBatch
from tests.integration.conftest import DeploymentFactory
from tests.support.contracts import validator_for
from tests.support.stack import Deployment

BLOB = "b" * 600_000

COPY_BLOB = {
    "id": "copy-blob",
    "triggers": [{"topic": "orders", "type": "order.created"}],
    "steps": [
        {
            "id": "copy",
            "type": "action",
            "action": "set_variables",
            "config": {"first": "{{ input.blob }}", "second": "{{ input.blob }}"},
            "onFailure": {
                "errorHandler": {
                    "conditions": [{"errorType": "PayloadTooLarge", "nextStepId": "too-large"}]
                }
            },
        },
        {"id": "too-large", "type": "action", "action": "log", "config": {"message": "big"}},
    ],
    "output": {"order": "{{ input.order }}"},
}


def finished(count: int) -> Any:
    def check(events: list[dict[str, Any]]) -> bool:
        done = {e["subject"] for e in events if e.get("type") == "flowbus.instance.completed"}
        return len(done) >= count

    return check


async def outbox_drained(d: Deployment, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while await d.fetch("SELECT 1 FROM outbox"):
        assert time.monotonic() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.2)


async def test_set_variables_over_the_limits_fails_the_step_routed_by_on_failure(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("payload-too-large", [COPY_BLOB])
    await d.start_worker()
    await d.publish(
        d.topic("orders"),
        [
            {"type": "order.created", "order": "big", "blob": BLOB},
            {"type": "order.created", "order": "small", "blob": "tiny"},
        ],
    )
    topics = [d.settings.topics.instances, d.settings.topics.steps]
    events = await d.read_events(topics, until=finished(2), timeout=60)

    failed = [e for e in events if e["type"] == "flowbus.step.failed"]
    assert [f["data"]["error"]["type"] for f in failed] == ["PayloadTooLarge"]
    assert "step 'copy'" in failed[0]["data"]["error"]["message"]
    big = failed[0]["subject"]
    trail = [
        (e["type"], e["data"].get("stepId"))
        for e in sorted(events, key=lambda e: e["flowbusseq"])
        if e["subject"] == big
    ]
    assert ("flowbus.step.completed", "too-large") in trail
    assert trail[-1] == ("flowbus.instance.completed", None)
    assert max(len(orjson.dumps(e)) for e in events) < 900_000
    for event in events:
        validator_for(event["type"]).validate(event["data"])
    small = {e["subject"] for e in events if e["type"] == "flowbus.instance.completed"} - {big}
    assert len(small) == 1, "the other instance's events kept flowing"
    await outbox_drained(d)


async def create_topic(d: Deployment, name: str, config: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=d.settings.broker_url)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=config)])
    finally:
        await admin.close()


def outbox_row(topic: str, key: str, value: bytes) -> tuple[str, str, bytes, str, bytes]:
    headers = orjson.dumps([["content-type", "application/cloudevents+json"]]).decode()
    return (str(uuid.uuid4()), topic, key.encode(), headers, value)


def payload(size: int) -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": "x", "data": "p" * size})


async def test_rows_the_broker_refuses_are_parked_with_an_alert_and_later_rows_flow(
    deploy: DeploymentFactory,
) -> None:
    d = await deploy("outbox-parked", [COPY_BLOB])
    tiny = d.topic("tiny")
    await create_topic(d, tiny, {"max.message.bytes": "20000"})
    await d.start_worker()
    instances = d.settings.topics.instances
    rows = [
        outbox_row(tiny, "i-1", payload(100)),
        outbox_row(tiny, "i-2", payload(50_000)),  # over the topic's max.message.bytes
        outbox_row(instances, "i-3", payload(1_200_000)),  # over the broker's limit
        outbox_row(tiny, "i-1", payload(200)),
        outbox_row(instances, "i-4", payload(300)),
    ]
    conn = await asyncpg.connect(d.dsn)
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO outbox (event_id, topic, key, headers, value)"
                " VALUES ($1, $2, $3, $4::jsonb, $5)",
                rows,
            )
            await conn.execute("SELECT pg_notify('flowbus_outbox', '')")
    finally:
        await conn.close()

    alerts = await d.read_events(
        [d.settings.topics.deadletter], until=lambda e: len(e) >= 2, timeout=60
    )
    refused = {rows[1][0]: 50_000, rows[2][0]: 1_200_000}
    assert {a["data"]["eventId"] for a in alerts} == set(refused)
    for alert in alerts:
        assert alert["type"] == "flowbus.outbox.parked"
        assert alert["data"]["reason"] == "MessageSizeTooLargeError"
        assert alert["data"]["bytes"] > refused[alert["data"]["eventId"]]
        assert len(orjson.dumps(alert)) < 2000, "the alert does not carry the payload"
        validator_for(alert["type"]).validate(alert["data"])
    delivered = await d.read_events([tiny, instances], until=lambda e: len(e) >= 3)
    assert sorted(e["_key"] for e in delivered) == ["i-1", "i-1", "i-4"]
    assert [len(e["data"]) for e in delivered if e["_key"] == "i-1"] == [100, 200]
    parked = await d.fetch("SELECT event_id, topic, reason FROM outbox_parked ORDER BY seq")
    assert [(r["event_id"], r["topic"]) for r in parked] == [
        (rows[1][0], tiny),
        (rows[2][0], instances),
    ]
    await outbox_drained(d)

    await d.publish(d.topic("orders"), [{"type": "order.created", "order": "after"}])
    await d.read_events([instances], until=finished(1))


def test_writer_truncates_an_event_over_the_limit_keeping_its_id_and_number() -> None:
    batch = OutboxBatch(source="test", topics=TopicNames(), limits=Limits(max_event_bytes=4096))
    effect = EmitEvent(
        channel="instances",
        id="event-7",
        type="flowbus.instance.started",
        time="2024-05-06T07:08:09.123Z",
        seq=7,
        data={"instanceId": "i-1", "input": {"blob": "q" * 10_000}, "status": "running"},
    )

    batch.emit("i-1", effect)

    [row] = batch.rows
    event = orjson.loads(row["value"])
    assert len(row["value"]) <= 4096
    assert (event["id"], event["flowbusseq"]) == ("event-7", 7)
    original = len(orjson.dumps(effect.data["input"]))
    assert event["data"]["input"] == {"truncated": True, "bytes": original}
    assert event["data"]["instanceId"] == "i-1"
    assert batch.truncated == 1
