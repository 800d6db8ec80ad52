"""Triggers end to end: patterns, transitions, transforms, correlation, dead letters, hot
reload and schedule triggers, on the real broker and database with real workers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, TypeVar

import orjson
import pytest_asyncio

from flowbus.definitions.catalog import DefinitionCatalog
from flowbus.definitions.loader import validate_definition
from flowbus.outbox.writer import OutboxBatch
from flowbus.store.database import create_engine
from flowbus.store.definitions import active_definitions, save_definition
from flowbus.timers.schedules import ScheduleLoop
from tests.integration.conftest import REPO, DeploymentFactory
from tests.integration.test_api_support import start_api
from tests.support.stack import Deployment, Stack

T = TypeVar("T")


def note(step_id: str = "note", **values: Any) -> list[dict[str, Any]]:
    return [
        {"id": step_id, "type": "action", "action": "set_variables", "config": values or {"ok": 1}}
    ]


DEFINITIONS: list[dict[str, Any]] = [
    {
        "id": "notify-order",
        "triggers": [
            {
                "topic": "orders",
                "type": "order.placed",
                "transform": {
                    "type": "jsonata",
                    "expression": "{'orderId': data.order_id, 'amount': data.amount}",
                },
                "correlation": "data.order_id",
            }
        ],
        "inputSchema": {
            "type": "object",
            "required": ["orderId", "amount"],
            "properties": {"orderId": {"type": "string"}, "amount": {"type": "number"}},
        },
        "steps": note(seen="{{ input.orderId }}"),
    },
    {
        "id": "audit-order",
        "triggers": [{"topic": "orders", "type": "order.placed"}],
        "steps": note(),
    },
    {
        "id": "large-orders",
        "triggers": [
            {
                "topic": "orders",
                "type": "order.priced",
                "pattern": {"data": {"amount": [{"numeric": [">", 1000, "<=", 5000]}]}},
            }
        ],
        "steps": note(),
    },
    {
        "id": "ship-approved",
        "triggers": [{"topic": "records", "transition": "order:status:approved"}],
        "steps": note(),
    },
    {
        "id": "strict-input",
        "triggers": [
            {
                "topic": "orders",
                "type": "order.strict",
                "transform": {"type": "jsonata", "expression": "{'n': data.n}"},
            }
        ],
        "inputSchema": {
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "integer", "minimum": 0}},
        },
        "steps": note(),
    },
    {
        "id": "broken-transform",
        "triggers": [
            {
                "topic": "orders",
                "type": "order.broken",
                "transform": {
                    "type": "jsonata",
                    "expression": "$error('cannot map order ' & data.order_id)",
                },
            }
        ],
        "steps": note(),
    },
    {
        "id": "hot",
        "triggers": [{"topic": "orders", "type": "hot.one"}],
        "steps": note(version=1),
    },
]


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 20
) -> T:
    """Poll `probe` until `done` holds for its result (or fail with the last one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout}s: {value!r}")
        await asyncio.sleep(0.1)


class Shop:
    """Publishes CloudEvents (ids chosen here) and reads back what they started."""

    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment

    async def publish(
        self,
        topic: str,
        events: list[tuple[str, dict[str, Any]]],
        *,
        ids: list[str] | None = None,
        key: str = "k",
    ) -> list[str]:
        """Publish (type, data) pairs in order on one partition; returns their ids."""
        ids = ids or [uuid.uuid4().hex for _ in events]
        await self.d.publish(
            self.d.topic(topic),
            [
                {"specversion": "1.0", "id": i, "source": "shop", "type": t, "data": data}
                for i, (t, data) in zip(ids, events, strict=True)
            ],
            key=key,
        )
        return ids

    async def started_by(self, event_id: str) -> dict[str, dict[str, Any]]:
        rows = await self.d.fetch(
            "SELECT id, workflow_id, workflow_version, correlation_id, input FROM instances "
            "WHERE trigger_event_id = $1",
            event_id,
        )
        return {row["workflow_id"]: dict(row) for row in rows}

    async def wait_started(self, event_id: str, count: int) -> dict[str, dict[str, Any]]:
        return await eventually(lambda: self.started_by(event_id), lambda r: len(r) >= count)

    async def dead_letters(self, event_id: str) -> list[dict[str, Any]]:
        """The dead letters of one published event."""

        def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [e["data"] for e in events if event_id in (e["data"]["value"] or "")]

        return mine(
            await self.d.read_events(
                [self.d.settings.topics.deadletter], until=lambda seen: bool(mine(seen))
            )
        )


@pytest_asyncio.fixture(scope="module")
async def shop(stack: Stack) -> AsyncIterator[Shop]:
    deployment = await stack.deployment(
        "triggers", DEFINITIONS, source_topics=("orders", "records")
    )
    await deployment.start_worker()
    try:
        yield Shop(deployment)
    finally:
        deployment.stop_workers()


async def test_one_event_matching_two_definitions_starts_two_instances(shop: Shop) -> None:
    [event_id] = await shop.publish("orders", [("order.placed", {"order_id": "o-2", "amount": 20})])

    started = await shop.wait_started(event_id, 2)

    assert set(started) == {"notify-order", "audit-order"}
    assert started["notify-order"]["input"] == {"orderId": "o-2", "amount": 20}
    assert started["audit-order"]["input"] == {"order_id": "o-2", "amount": 20}


async def test_a_redelivered_event_starts_no_new_instance(shop: Shop) -> None:
    order = {"order_id": "o-3", "amount": 30}
    [event_id] = await shop.publish("orders", [("order.placed", order)])
    first = await shop.wait_started(event_id, 2)

    marker = uuid.uuid4().hex
    await shop.publish(
        "orders", [("order.placed", order), ("order.placed", order)], ids=[event_id, marker]
    )
    await shop.wait_started(marker, 2)

    again = await shop.started_by(event_id)
    assert {w: r["id"] for w, r in again.items()} == {w: r["id"] for w, r in first.items()}
    audit = str(again["audit-order"]["id"])
    lifecycle = await shop.d.read_events(
        [shop.d.settings.topics.instances],
        until=lambda seen: sum(e["subject"] == audit for e in seen) >= 2,
    )
    assert [e["type"] for e in lifecycle if e["subject"] == audit] == [
        "flowbus.instance.started",
        "flowbus.instance.completed",
    ]


async def test_an_event_delivered_twice_in_one_batch_starts_each_workflow_once(
    shop: Shop,
) -> None:
    event_id = uuid.uuid4().hex
    order = {"order_id": "o-6", "amount": 60}

    await shop.publish("orders", [("order.placed", order)] * 2, ids=[event_id] * 2)
    started = await shop.wait_started(event_id, 2)

    ids = {str(row["id"]) for row in started.values()}
    lifecycle = await shop.d.read_events(
        [shop.d.settings.topics.instances],
        until=lambda seen: sum(e["subject"] in ids for e in seen) >= 4,
    )
    assert sorted(e["type"] for e in lifecycle if e["subject"] in ids) == [
        "flowbus.instance.completed",
        "flowbus.instance.completed",
        "flowbus.instance.started",
        "flowbus.instance.started",
    ]


async def test_numeric_range_pattern_starts_only_matching_events(shop: Shop) -> None:
    ids = await shop.publish(
        "orders",
        [("order.priced", {"amount": a}) for a in (500, 5001, 1000, "2000", 1500, 5000)],
    )
    await shop.wait_started(ids[-1], 1)

    started = {i: await shop.started_by(i) for i in ids}
    assert [bool(started[i]) for i in ids] == [False, False, False, False, True, True]
    assert {w for s in started.values() for w in s} == {"large-orders"}


async def test_transition_trigger_starts_only_for_that_entity_field_and_state(
    shop: Shop,
) -> None:
    def transition(entity: str, field: str, to: str) -> tuple[str, dict[str, Any]]:
        record = {"id": "r-1", "status": to}
        return (
            "record.transitioned",
            {
                "entity": entity,
                "field": field,
                "from": "pending",
                "to": to,
                "record_id": "r-1",
                "record": record,
            },
        )

    ids = await shop.publish(
        "records",
        [
            transition("order", "status", "rejected"),
            transition("invoice", "status", "approved"),
            transition("order", "payment", "approved"),
            transition("order", "status", "approved"),
        ],
    )
    await shop.wait_started(ids[-1], 1)

    assert [list(await shop.started_by(i)) for i in ids] == [[], [], [], ["ship-approved"]]


async def test_transform_error_is_dead_lettered_with_reason_and_definition(shop: Shop) -> None:
    [event_id] = await shop.publish("orders", [("order.broken", {"order_id": "o-4"})])

    [dead] = await shop.dead_letters(event_id)

    assert dead["reason"].startswith("transform failed: ")
    assert "cannot map order o-4" in dead["reason"]
    assert (dead["definitionId"], dead["topic"]) == ("broken-transform", shop.d.topic("orders"))
    assert await shop.started_by(event_id) == {}


async def test_schema_violation_is_dead_lettered_with_the_violation(shop: Shop) -> None:
    [event_id] = await shop.publish("orders", [("order.strict", {"n": -5})])

    [dead] = await shop.dead_letters(event_id)

    assert dead["definitionId"] == "strict-input"
    assert dead["reason"] == (
        "input does not match inputSchema: n: -5 is less than the minimum of 0"
    )
    assert await shop.started_by(event_id) == {}


async def test_the_worker_goes_on_after_dead_letters(shop: Shop) -> None:
    ids = await shop.publish(
        "orders",
        [
            ("order.broken", {"order_id": "o-5"}),
            ("order.strict", {"n": "x"}),
            ("order.strict", {"n": 3}),
        ],
    )

    started = await shop.wait_started(ids[-1], 1)

    assert started["strict-input"]["input"] == {"n": 3}


async def test_correlation_id_is_recorded_and_found_by_the_cli(shop: Shop) -> None:
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    [event_id] = await shop.publish(
        "orders", [("order.placed", {"order_id": order_id, "amount": 1})]
    )
    started = await shop.wait_started(event_id, 2)
    assert started["notify-order"]["correlation_id"] == order_id
    assert started["audit-order"]["correlation_id"] is None

    api = await start_api(shop.d, {"FLOWBUS_API__AUTH__ENABLED": "false"})
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "flowbus",
                "instances",
                "list",
                "--correlation",
                order_id,
                "--json",
            ],
            cwd=REPO,
            env={**shop.d.env(), "FLOWBUS_API_URL": api.url},
            capture_output=True,
            timeout=60,
        )
    finally:
        api.stop()

    assert result.returncode == 0, result.stderr.decode()
    [found] = orjson.loads(result.stdout)
    assert found["instanceId"] == str(started["notify-order"]["id"])
    assert (found["workflowId"], found["correlationId"]) == ("notify-order", order_id)


async def test_a_new_version_applies_to_the_next_event_without_restart(shop: Shop) -> None:
    [before] = await shop.publish("orders", [("hot.one", {})])
    assert (await shop.wait_started(before, 1))["hot"]["workflow_version"] == 1

    v2 = {
        "id": "hot",
        "triggers": [{"topic": shop.d.topic("orders"), "type": "hot.two"}],
        "steps": note(version=2),
    }
    engine = create_engine(shop.d.settings.database_url, pool_size=1)
    async with engine.begin() as conn:
        stored, created = await save_definition(conn, validate_definition(v2))
    await engine.dispose()
    assert (stored.version, created) == (2, True)
    await shop.d.wait_for_log(shop.d.workers[0], "hot@v2", timeout=10)

    old_type, new_type = await shop.publish("orders", [("hot.one", {}), ("hot.two", {})])

    started = await shop.wait_started(new_type, 1)
    assert started["hot"]["workflow_version"] == 2
    assert await shop.started_by(old_type) == {}


def definition_with_schedule(workflow_id: str, **schedule: Any) -> dict[str, Any]:
    return {"id": workflow_id, "triggers": [{"schedule": schedule}], "steps": note()}


async def store(deployment: Deployment, *documents: dict[str, Any]) -> None:
    engine = create_engine(deployment.settings.database_url, pool_size=1)
    try:
        for document in documents:
            async with engine.begin() as conn:
                await save_definition(conn, validate_definition(document))
    finally:
        await engine.dispose()


def fired_ticks(log_text: str) -> list[str]:
    ticks: list[str] = []
    for line in log_text.splitlines():
        if '"schedule.fired"' in line:
            ticks.extend(orjson.loads(line)["ticks"])
    return ticks


async def test_schedule_fires_once_per_tick_with_two_workers(deploy: DeploymentFactory) -> None:
    d = await deploy("schedules", [])
    await store(
        d, definition_with_schedule("tick-tock", cron="*/2 * * * * *", timezone="Europe/Berlin")
    )
    workers = [await d.start_worker(wait_assigned=False) for _ in range(2)]
    for worker in workers:
        await d.wait_for_log(worker, "definitions.loaded")

    async def scheduled() -> list[str]:
        rows = await d.fetch(
            "SELECT input->>'scheduledTime' AS at FROM instances WHERE workflow_id = 'tick-tock'"
        )
        return sorted(row["at"] for row in rows)

    ticks = await eventually(scheduled, lambda found: len(found) >= 5, timeout=30)

    moments = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in ticks]
    assert all(m.second % 2 == 0 and m.microsecond == 0 for m in moments)
    gaps = {b - a for a, b in pairwise(moments)}
    assert gaps == {timedelta(seconds=2)}, "no tick skipped"

    async def claimed() -> list[str]:
        return [t for worker in workers for t in fired_ticks(worker.log_text())]

    logged = await eventually(claimed, lambda found: set(ticks) <= set(found), timeout=5)
    assert len(set(logged)) == len(logged), "no tick claimed by both workers"
    assert all(w.process.poll() is None for w in workers)


class Scheduler:
    """Schedule loops on a deployment's database, on a clock the test moves."""

    def __init__(self, deployment: Deployment, now: datetime) -> None:
        self.d = deployment
        self.now = now
        self.engine = create_engine(deployment.settings.database_url, pool_size=4)
        self.catalog = DefinitionCatalog()

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            self.catalog.replace_active(await active_definitions(conn))

    def loop(self) -> ScheduleLoop:
        return ScheduleLoop(
            self.engine,
            catalog=lambda: self.catalog,
            outbox=lambda: OutboxBatch(source="test", topics=self.d.settings.topics),
            clock=lambda: self.now,
        )

    async def next_due(self) -> list[tuple[str, int, datetime]]:
        rows = await self.d.fetch(
            "SELECT workflow_id, trigger_index, next_due FROM schedules "
            "ORDER BY workflow_id, trigger_index"
        )
        return [(r["workflow_id"], r["trigger_index"], r["next_due"]) for r in rows]


@pytest_asyncio.fixture
async def scheduler(deploy: DeploymentFactory) -> AsyncIterator[Scheduler]:
    made = Scheduler(await deploy("schedules-db", []), datetime(2026, 1, 1, 10, 30, tzinfo=UTC))
    try:
        yield made
    finally:
        await made.engine.dispose()


async def test_a_tick_missed_while_no_worker_ran_fires_once_on_recovery(
    scheduler: Scheduler,
) -> None:
    await store(
        scheduler.d,
        definition_with_schedule("catch-up", cron="0 * * * *", misfire="fire_once"),
        definition_with_schedule("no-catch-up", cron="0 * * * *", misfire="skip"),
    )
    await scheduler.load()
    first, second = scheduler.loop(), scheduler.loop()
    await first.sync()
    scheduler.now = datetime(2026, 1, 1, 14, 30, tzinfo=UTC)  # every worker was down
    await second.sync()  # a restarted worker keeps the ticks that were due

    await asyncio.gather(first.fire_due(), second.fire_due(), first.fire_due())
    await second.fire_due()

    rows = await scheduler.d.fetch("SELECT workflow_id, input FROM instances")
    assert [(r["workflow_id"], r["input"]) for r in rows] == [
        (
            "catch-up",
            {
                "scheduledTime": "2026-01-01T11:00:00.000Z",
                "cron": "0 * * * *",
                "timezone": "UTC",
                "misfired": True,
            },
        )
    ]
    assert await scheduler.next_due() == [
        ("catch-up", 0, datetime(2026, 1, 1, 15, tzinfo=UTC)),
        ("no-catch-up", 0, datetime(2026, 1, 1, 15, tzinfo=UTC)),
    ]


async def test_two_schedule_triggers_ticking_together_start_one_instance(
    scheduler: Scheduler,
) -> None:
    await store(
        scheduler.d,
        {
            "id": "twin",
            "triggers": [
                {"schedule": {"cron": "0 * * * *", "input": {"from": "first"}}},
                {"schedule": {"cron": "0 * * * *", "input": {"from": "second"}}},
            ],
            "steps": note(),
        },
    )
    await scheduler.load()
    loop = scheduler.loop()
    await loop.sync()
    scheduler.now = datetime(2026, 1, 1, 11, 0, 0, 500000, tzinfo=UTC)

    await loop.fire_due()

    rows = await scheduler.d.fetch("SELECT input FROM instances")
    assert [r["input"] for r in rows] == [{"from": "first"}]
    assert await scheduler.next_due() == [
        ("twin", 0, datetime(2026, 1, 1, 12, tzinfo=UTC)),
        ("twin", 1, datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ]


async def test_a_changed_schedule_restarts_from_now_and_a_removed_one_is_dropped(
    scheduler: Scheduler,
) -> None:
    await store(scheduler.d, definition_with_schedule("report", cron="0 * * * *"))
    loop = scheduler.loop()
    await loop.sync()
    assert await scheduler.next_due() == [("report", 0, datetime(2026, 1, 1, 11, tzinfo=UTC))]

    scheduler.now = datetime(2026, 1, 1, 13, 30, tzinfo=UTC)
    await store(scheduler.d, definition_with_schedule("report", cron="*/15 * * * *"))
    await loop.sync()
    assert await scheduler.next_due() == [("report", 0, datetime(2026, 1, 1, 13, 45, tzinfo=UTC))]

    await store(
        scheduler.d,
        {"id": "report", "triggers": [{"topic": "orders", "type": "x"}], "steps": note()},
    )
    await loop.sync()
    assert await scheduler.next_due() == []
