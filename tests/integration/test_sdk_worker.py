"""The SDK worker on the real broker: hand-made task records in, result records out."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from flowbus.sdk import TaskContext, Topics, Worker, WorkflowContext, task, workflow
from tests.support.stack import Stack

ran: list[str] = []


@workflow("sdk-orders", version=1, triggers=[{"topic": "orders", "type": "order.created"}])
async def orders(ctx: WorkflowContext, input: dict[str, Any]) -> dict[str, Any]:
    first = await ctx.step("reserve", ran.append, "reserve").run()
    await ctx.step("charge", ran.append, "charge").run()
    await ctx.sleep("PT2S", name="nap")
    return {"first": first}


@task("charge-card")
async def charge(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    return {"charged": input["amount"], "key": ctx.idempotency_key}


def cloudevent(event_type: str, subject: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "test",
            "type": event_type,
            "subject": subject,
            "data": data,
        }
    )


async def read(broker: str, topic: str, count: int, deadline: float = 30) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        end = time.monotonic() + deadline
        while len(found) < count and time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    event = orjson.loads(record.value)
                    assert record.key == event["subject"].encode()
                    found.append(event)
    finally:
        await consumer.stop()
    return found


async def test_worker_answers_workflow_and_activity_tasks(stack: Stack) -> None:
    broker = stack.broker.bootstrap_servers
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(
        tasks=f"{suffix}.tasks", results=f"{suffix}.results", commands=f"{suffix}.commands"
    )
    instance = str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        workflow_task = {
            "taskId": f"{instance}:1",
            "instanceId": instance,
            "workflowId": "sdk-orders",
            "version": 1,
            "input": {},
            "startedAt": "2026-12-01T10:00:00.000Z",
            "now": "2026-12-01T10:00:00.000Z",
            "reason": "start",
            "history": [],
        }
        activity_task = {
            "taskId": f"{instance}:charge:1",
            "instanceId": instance,
            "workflowId": "orders",
            "stepId": "charge",
            "taskType": "charge-card",
            "input": {"amount": 7},
            "attempt": 1,
            "idempotencyKey": f"{instance}:charge",
            "heartbeatTimeout": "PT10S",
        }
        for event_type, data in (
            ("flowbus.task.workflow", workflow_task),
            ("flowbus.task.activity", activity_task),
        ):
            await producer.send_and_wait(
                topics.tasks, cloudevent(event_type, instance, data), key=instance.encode()
            )
    finally:
        await producer.stop()

    worker = Worker(
        broker=broker, workflows=[orders], tasks=[charge], group=f"sdk-{suffix}", topics=topics
    )
    await worker.start()
    try:
        results = await read(broker, topics.results, 6)
        commands = await read(broker, topics.commands, 1)
    finally:
        await worker.stop()

    assert ran == ["reserve", "charge"]
    summary = [
        (e["type"], e["data"].get("name") or e["data"].get("outcome"), e["data"].get("status"))
        for e in results
    ]
    assert summary == [
        ("flowbus.result.step", "reserve", "started"),
        ("flowbus.result.step", "reserve", "completed"),
        ("flowbus.result.step", "charge", "started"),
        ("flowbus.result.step", "charge", "completed"),
        ("flowbus.result.workflow", "waiting", None),
        ("flowbus.result.activity", None, "completed"),
    ]
    nap = {"name": "nap", "seq": 3, "kind": "timer", "duration": "PT2S"}
    assert results[4]["data"]["wait"] == nap
    assert results[5]["data"]["output"] == {"charged": 7, "key": f"{instance}:charge"}
    for event in results:
        assert event["specversion"] == "1.0"
        assert event["source"].startswith("flowbus-sdk/")
        assert event["data"]["taskId"].startswith(instance)
    assert commands[0]["type"] == "flowbus.command.register"
    assert commands[0]["data"]["definition"] == orders.definition()
