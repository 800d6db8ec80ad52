"""Every consumed topic (domain events, commands, decisions) holds its records to the
record limits before parsing them: a hostile record lands on the dead-letter topic with a
reason naming the limit, the dead-letter event stays small, and the good event published
right after it is applied. Commands that change nothing are dead-lettered with a reason."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest_asyncio
from pydantic import SecretStr

from flowbus.approvals.tokens import sign_decision
from flowbus.config import ApprovalSettings
from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.envelope import RecordLimits
from flowbus.ingest.records import ConsumedRecord
from flowbus.ingest.triggers import TriggerIngest
from flowbus.limits import JsonLimits
from flowbus.outbox.writer import OutboxBatch
from flowbus.store.database import create_engine
from tests.support.stack import Deployment, Stack

SECRET = "limits-" + "s" * 32
KEYS = ApprovalSettings(hs256_secret=SecretStr(SECRET))
MAX_RECORD_BYTES = 300_000
ENV = {
    "FLOWBUS_APPROVALS__HS256_SECRET": SECRET,
    "FLOWBUS_LIMITS__MAX_RECORD_BYTES": str(MAX_RECORD_BYTES),
}
# Far below the broker's 1 MiB message size, whatever the dead-lettered record was.
SMALL_DEAD_LETTER = 80_000

DEFINITIONS: list[dict[str, Any]] = [
    {
        "id": "quick",
        "triggers": [{"topic": "orders", "type": "quick", "transform": {"expression": "data"}}],
        "steps": [
            {"id": "note", "type": "action", "action": "set_variables", "config": {"ok": True}}
        ],
    },
    {
        "id": "approve",
        "triggers": [{"topic": "orders", "type": "approve", "transform": {"expression": "data"}}],
        "steps": [{"id": "approve", "type": "approval", "assignees": ["user:alice"]}],
    },
]

BINARY = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"hostile"),
    ("ce_source", b"/tests"),
    ("ce_type", b"quick"),
]


def hostile() -> list[tuple[str, bytes, list[tuple[str, bytes]], str]]:
    """(name, value, headers, what the dead-letter reason must say)."""
    oversize = b'{"type": "quick", "pad": "' + b"x" * 500_000 + b'"}'
    return [
        (
            "oversize",
            oversize,
            [],
            f"value is {len(oversize)} bytes, over the limit of {MAX_RECORD_BYTES}",
        ),
        ("deep-300", b"[" * 300 + b"]" * 300, [], "nested deeper than the limit of 64"),
        (
            "deep-100000",
            b"[" * 100_000 + b"]" * 100_000,
            [],
            "nested deeper than the limit of 64",
        ),
        ("not-json", b"this is not JSON {", [], "value is not JSON"),
        (
            "huge-header",
            b"{}",
            [*BINARY, ("ce_subject", b"s" * 200_000)],
            "bytes, over the limit of 65536",
        ),
    ]


class Limits:
    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment

    async def publish_hostile(self, topic: str) -> dict[str, str]:
        """Publish every hostile record (each under its own key); key -> expected reason."""
        expected = {}
        for name, value, headers, reason in hostile():
            key = f"{name}-{uuid.uuid4().hex[:8]}"
            await self.d.publish(topic, [value], key=key, headers=headers)
            expected[key] = reason
        return expected

    async def dead_letters(self, keys: set[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
        def mine(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            return {e["data"]["key"]: e for e in events if e["data"].get("key") in keys}

        seen = await self.d.read_events(
            [self.d.settings.topics.deadletter],
            until=lambda events: set(mine(events)) == keys,
            timeout=timeout,
        )
        return mine(seen)

    async def assert_dead_lettered(self, expected: dict[str, str], topic: str) -> None:
        letters = await self.dead_letters(set(expected))
        for key, reason in expected.items():
            letter = letters[key]
            assert reason in letter["data"]["reason"], (key, letter["data"]["reason"])
            assert letter["data"]["topic"] == topic
            written = {k: v for k, v in letter.items() if not k.startswith("_")}
            assert len(orjson.dumps(written)) < SMALL_DEAD_LETTER, key

    async def status(self, instance_id: str) -> str | None:
        rows = await self.d.fetch(
            "SELECT status FROM instances WHERE id = $1", uuid.UUID(instance_id)
        )
        return str(rows[0]["status"]) if rows else None

    async def status_by_order(self, order: str) -> tuple[str, str] | None:
        rows = await self.d.fetch("SELECT id, status FROM instances WHERE input->>'id' = $1", order)
        return (str(rows[0]["id"]), str(rows[0]["status"])) if rows else None

    async def eventually(self, check: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"not true after {timeout}s")

    async def completed(self, instance_id: str) -> None:
        await self.eventually(lambda: self._is(instance_id, "completed"))

    async def _is(self, instance_id: str, status: str) -> bool:
        return await self.status(instance_id) == status

    async def start_by_event(self, kind: str) -> str:
        order = uuid.uuid4().hex[:10]
        await self.d.publish(self.d.topic("orders"), [{"type": kind, "id": order}])
        found = await self.eventually(lambda: self.status_by_order(order))
        return str(found[0])

    async def approval_of(self, instance_id: str) -> str:
        async def pending() -> str | None:
            rows = await self.d.fetch(
                "SELECT approval_id FROM approvals WHERE instance_id = $1 AND status = 'pending'",
                uuid.UUID(instance_id),
            )
            return str(rows[0]["approval_id"]) if rows else None

        return str(await self.eventually(pending))


@pytest_asyncio.fixture(scope="module")
async def limits(stack: Stack) -> AsyncIterator[Limits]:
    deployment = await stack.deployment("consumed-limits", DEFINITIONS)
    await deployment.start_worker(extra_env=ENV)
    try:
        yield Limits(deployment)
    finally:
        deployment.stop_workers()


async def test_hostile_domain_events_are_dead_lettered_and_the_next_event_applies(
    limits: Limits,
) -> None:
    topic = limits.d.topic("orders")
    expected = await limits.publish_hostile(topic)
    instance_id = await limits.start_by_event("quick")

    await limits.assert_dead_lettered(expected, topic)
    await limits.completed(instance_id)


async def test_hostile_commands_are_dead_lettered_and_the_next_command_applies(
    limits: Limits,
) -> None:
    topic = limits.d.settings.topics.commands
    expected = await limits.publish_hostile(topic)
    instance_id = str(uuid.uuid4())
    start = {"command": "start", "workflowId": "quick", "instanceId": instance_id, "input": {}}
    await limits.d.publish(topic, [start], key=instance_id)

    await limits.assert_dead_lettered(expected, topic)
    await limits.completed(instance_id)


async def test_hostile_decisions_are_dead_lettered_and_the_next_decision_applies(
    limits: Limits,
) -> None:
    instance_id = await limits.start_by_event("approve")
    approval_id = await limits.approval_of(instance_id)
    topic = limits.d.settings.topics.decisions
    expected = await limits.publish_hostile(topic)
    token = sign_decision(KEYS, approval_id=approval_id, decision="approve", user="alice")
    decision = {"approvalId": approval_id, "decision": "approve", "token": token}
    await limits.d.publish(topic, [decision], key=approval_id)

    await limits.assert_dead_lettered(expected, topic)
    await limits.completed(instance_id)


async def test_a_command_for_an_ended_instance_is_dead_lettered_with_the_reason(
    limits: Limits,
) -> None:
    instance_id = await limits.start_by_event("quick")
    await limits.completed(instance_id)
    key = f"cancel-{instance_id}"
    cancel = {"command": "cancel", "instanceId": instance_id, "reason": "too late"}
    await limits.d.publish(limits.d.settings.topics.commands, [cancel], key=key)

    letter = (await limits.dead_letters({key}))[key]

    assert letter["data"]["reason"] == (
        f"instance {instance_id} is completed: cancel applies only to created, running, waiting or "
        "paused instances"
    )


async def test_commands_for_one_instance_in_one_batch_are_each_checked_in_turn(
    limits: Limits,
) -> None:
    instance_id = await limits.start_by_event("approve")
    await limits.approval_of(instance_id)
    commands = [
        {"command": "pause", "instanceId": instance_id},
        {"command": "resume", "instanceId": instance_id},
        {"command": "resume", "instanceId": instance_id},
        {"command": "cancel", "instanceId": instance_id, "compensate": False},
        {"command": "event", "instanceId": instance_id, "event": {"late": True}},
    ]
    key = f"turns-{instance_id}"
    await limits.d.publish(limits.d.settings.topics.commands, commands, key=key)

    await limits.eventually(lambda: limits._is(instance_id, "cancelled"))
    seen = await limits.d.read_events(
        [limits.d.settings.topics.deadletter],
        until=lambda evs: len([e for e in evs if e["data"].get("key") == key]) == 2,
    )
    reasons = [e["data"]["reason"] for e in seen if e["data"].get("key") == key]
    assert reasons == [
        f"instance {instance_id} is running: resume applies only to paused instances",
        f"instance {instance_id} is cancelled: event applies only to unfinished instances",
    ] or reasons == [
        f"instance {instance_id} is waiting: resume applies only to paused instances",
        f"instance {instance_id} is cancelled: event applies only to unfinished instances",
    ]


async def test_an_event_command_no_step_waits_for_is_dead_lettered(limits: Limits) -> None:
    instance_id = await limits.start_by_event("approve")
    await limits.approval_of(instance_id)
    key = f"event-{instance_id}"
    command = {"command": "event", "instanceId": instance_id, "event": {"x": 1}}
    await limits.d.publish(limits.d.settings.topics.commands, [command], key=key)

    letter = (await limits.dead_letters({key}))[key]

    assert letter["data"]["reason"] == (
        f"no step of instance {instance_id} is waiting for an event"
    )


async def test_a_batch_of_hostile_records_costs_milliseconds(limits: Limits) -> None:
    """Applied in this process against the deployment's database, under a group of its own."""
    settings = limits.d.settings
    engine = create_engine(settings.database_url)
    ingest = TriggerIngest(
        engine,
        catalog=DefinitionCatalog,
        outbox=lambda: OutboxBatch(source=settings.deployment, topics=settings.topics),
        consumer_group=f"measure-{uuid.uuid4().hex[:8]}",
        limits=RecordLimits(JsonLimits(MAX_RECORD_BYTES, 64)),
        clock=lambda: datetime.now(UTC),
    )
    records = [
        ConsumedRecord(f"measure.{name}", 0, 1, name.encode(), value, headers)
        for name, value, headers, _ in hostile()
    ]
    try:
        await ingest.apply(records[:1])  # warm the connection pool
        began = time.perf_counter()
        report = await ingest.apply(records[1:])
        seconds = time.perf_counter() - began
    finally:
        await engine.dispose()

    print(f"{len(records) - 1} hostile records applied in {seconds * 1000:.1f} ms")
    assert report.dead_lettered == len(records) - 1
    assert seconds < 0.5
