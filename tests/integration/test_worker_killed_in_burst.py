"""Two workers share a burst; one is SIGKILLed while its instances are in flight (webhook
calls leased, durable waits pending, outbox rows unsent, source records unapplied), and the
survivor alone finishes the job: one instance per event, each completed, each outcome event
once, each call repeated only under its own idempotency key."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from flowbus.devstack.ports import free_port
from flowbus.engine.ids import event_id, published_event_id
from tests.integration.conftest import DeploymentFactory
from tests.support.broker import group_members, partition_count, read_to_end
from tests.support.stack import Deployment, Worker

EVENTS = 600
WAVES = 20
# Waves published only after the kill.
HELD_BACK = 4
CONCURRENCY = 32
WORKER_ENV = {
    "FLOWBUS_WORKER__ACTION_CONCURRENCY": str(CONCURRENCY),
    # Short leases: the survivor reruns the calls the killed worker held within seconds.
    "FLOWBUS_WORKER__ACTION_LEASE": "6",
}
# Topics every worker consumes besides the source topic.
CONSUMED = ("commands", "decisions", "results")
APPLIED = "SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1"
PROGRESS = """
SELECT (SELECT count(*) FROM instances) AS started,
       (SELECT count(*) FROM instances WHERE status = 'completed') AS completed,
       (SELECT count(*) FROM timers WHERE kind = 'action' AND locked_until > now()) AS leased,
       (SELECT count(*) FROM timers WHERE kind = 'wait') AS waiting,
       (SELECT count(*) FROM outbox) AS unsent
"""


@dataclass
class Call:
    key: str | None
    attempt: str | None
    body: Any


@dataclass
class GatedHooks:
    """`/call` answers after `delay` seconds; a call for an even-numbered order answers
    only once the gate is open, besides."""

    delay: float = 0.2
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    held: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        headers = request.headers
        self.calls.append(
            Call(headers.get("Idempotency-Key"), headers.get("Flowbus-Attempt"), body)
        )
        await asyncio.sleep(self.delay)
        if int(body["order"].removeprefix("o-")) % 2 == 0 and not self.gate.is_set():
            self.held += 1
            try:
                await self.gate.wait()
            finally:
                self.held -= 1
        return web.json_response({"ok": True})


@pytest.fixture
async def hooks() -> AsyncIterator[GatedHooks]:
    server = GatedHooks()
    server.gate.set()
    app = web.Application()
    app.router.add_post("/call", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    server.port = free_port()
    await web.TCPSite(runner, "127.0.0.1", server.port).start()
    try:
        yield server
    finally:
        server.gate.set()
        await runner.cleanup()


def call_wait_announce(hooks_url: str) -> dict[str, Any]:
    """Per order: a webhook call (a leased action job), a 1 s durable wait (a timer), then
    a `send_event` to `orders-done`."""
    return {
        "id": "burst",
        "triggers": [{"topic": "orders", "type": "order.placed", "correlation": "data.order"}],
        "steps": [
            {
                "id": "call",
                "type": "action",
                "action": "webhook",
                "config": {"url": f"{hooks_url}/call", "body": {"order": "{{ input.order }}"}},
                "next": "nap",
            },
            {"id": "nap", "type": "wait", "duration": "PT1S", "next": "announce"},
            {
                "id": "announce",
                "type": "action",
                "action": "send_event",
                "config": {
                    "topic": "orders-done",
                    "type": "order.done",
                    "key": "{{ input.order }}",
                    "subject": "{{ input.order }}",
                    "data": {"order": "{{ input.order }}"},
                },
            },
        ],
    }


def order_placed(n: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{n}",
        "source": "test/shop",
        "type": "order.placed",
        "data": {"order": f"o-{n}"},
    }


async def publish_in_waves(
    d: Deployment, topic: str, events: list[dict[str, Any]], killed: asyncio.Event
) -> None:
    """Keyed by order, so the burst spreads over every partition; in waves, the last of
    them only once the worker is dead, so the kill always lands mid-burst."""
    producer = AIOKafkaProducer(bootstrap_servers=d.settings.broker_url, acks="all")
    await producer.start()
    try:
        size = len(events) // WAVES
        for wave, start in enumerate(range(0, len(events), size)):
            if wave == WAVES - HELD_BACK:
                await killed.wait()
            sends = [
                await producer.send(topic, orjson.dumps(e), key=e["data"]["order"].encode())
                for e in events[start : start + size]
            ]
            await asyncio.gather(*sends)
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()


def assignments(worker: Worker) -> list[int]:
    """The partition counts of each assignment the worker logged, in order."""
    counts = []
    for line in worker.log_text().splitlines():
        if "worker.partitions_assigned" in line:
            counts.append(int(json.loads(line)["partitions"]))
    return counts


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout}s"
        await asyncio.sleep(0.05)


async def stuck(d: Deployment, source: str) -> str:
    """What is left to do, for the message of a test that timed out."""
    lines = [str(dict((await d.fetch(PROGRESS))[0]))]
    for query in (
        "SELECT status, count(*) AS n FROM instances GROUP BY status",
        "SELECT kind, count(*) AS n, min(due_at) AS due, max(locked_until) AS locked,"
        " now() AS now FROM timers GROUP BY kind",
        "SELECT id, correlation_id, status, state FROM instances"
        " WHERE status <> 'completed' LIMIT 3",
        "SELECT topic, count(*) AS n, min(created_at) AS oldest FROM outbox GROUP BY topic",
    ):
        lines.append(str([dict(r) for r in await d.fetch(query)]))
    lines.append(str([dict(r) for r in await d.fetch(APPLIED, source)]))
    members = await group_members(d.settings.broker_url, d.settings.consumer_group)
    lines.append(str({m: sorted(map(str, held)) for m, held in members.items()}))
    return "\n".join(lines)


async def test_a_worker_killed_mid_burst_leaves_one_instance_and_one_outcome_per_event(
    deploy: DeploymentFactory, hooks: GatedHooks
) -> None:
    d = await deploy("burst-kill", [call_wait_announce(hooks.url)])
    source, done_topic = d.topic("orders"), d.topic("orders-done")
    assert await partition_count(d.settings.broker_url, source) >= 4
    consumed = [source, *(getattr(d.settings.topics, t) for t in CONSUMED)]
    total = sum([await partition_count(d.settings.broker_url, t) for t in consumed])
    first = await d.start_worker(extra_env=WORKER_ENV)
    second = await d.start_worker(extra_env=WORKER_ENV)

    # The group has settled once both hold a share of the partitions. The victim is the
    # one holding the outbox relay: its death hands the relay over as well.
    async def shared() -> bool:
        held = [assignments(w)[-1] for w in (first, second)]
        return sum(held) == total and min(held) > 0

    def relaying() -> list[Worker]:
        return [w for w in (first, second) if "outbox.relay_active" in w.log_text()]

    async def one_relay() -> bool:
        return len(relaying()) == 1

    await until(shared, "a rebalance sharing the partitions between both workers", 60)
    await until(one_relay, "one worker holding the outbox relay", 30)
    victim = relaying()[0]
    survivor = second if victim is first else first
    broker, group = d.settings.broker_url, d.settings.consumer_group
    members = await group_members(broker, group)
    assert len(members) == 2
    assert all(any(tp.topic == source for tp in held) for held in members.values())

    events = [order_placed(n) for n in range(EVENTS)]
    killed_event = asyncio.Event()
    publishing = asyncio.create_task(publish_in_waves(d, source, events, killed_event))

    async def under_way() -> bool:
        now = (await d.fetch(PROGRESS))[0]
        return bool(now["started"] >= EVENTS // 5 and now["waiting"])

    # Calls for even orders pile up behind the shut gate while the others flow on (and
    # their instances go on to wait): once more are held than one worker may run at once,
    # the victim holds calls it will never see answered.
    async def victim_holds_calls() -> bool:
        now = (await d.fetch(PROGRESS))[0]
        return bool(hooks.held > CONCURRENCY and now["waiting"])

    try:
        await until(under_way, "instances started and waiting", 60)
        hooks.gate.clear()
        await until(victim_holds_calls, "calls held by both workers", 60)
    finally:
        victim.kill()
        killed, killed_ms = time.monotonic(), time.time() * 1000
        held_by_victim = hooks.held - CONCURRENCY
        killed_event.set()
        hooks.gate.set()
    at_kill = (await d.fetch(PROGRESS))[0]
    applied_at_kill = await d.fetch(APPLIED, source)
    print(f"at the kill: {dict(at_kill)}, victim holding {held_by_victim}+ calls")
    assert at_kill["started"] < EVENTS
    assert at_kill["completed"] < EVENTS
    assert at_kill["leased"] >= held_by_victim > 0
    assert at_kill["waiting"] > 0
    await publishing

    async def all_done() -> bool:
        now = (await d.fetch(PROGRESS))[0]
        return bool(now["completed"] == EVENTS and now["unsent"] == 0)

    try:
        await until(all_done, "every instance completed and relayed by the survivor", 90)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n{await stuck(d, source)}\n{survivor.log_text()[-6000:]}"
        ) from None
    print(f"survivor finished {time.monotonic() - killed:.1f}s after the kill")
    assert survivor.process.poll() is None
    assert "outbox.relay_active" in survivor.log_text(), "the relay was handed over"

    # The rebalance handed the victim's partitions to the survivor, which applied the
    # records the victim had left on them.
    (remaining, survivor_held), *others = (await group_members(broker, group)).items()
    assert others == []
    assert remaining in members
    assert len(survivor_held) == total
    assert assignments(survivor)[-1] == total
    handed_over = {
        tp.partition
        for member, victim_held in members.items()
        if member != remaining
        for tp in victim_held
        if tp.topic == source
    }
    applied = {r["partition"]: r["next_offset"] for r in await d.fetch(APPLIED, source)}
    assert sum(applied.values()) == EVENTS
    left_by_victim = {r["partition"]: r["next_offset"] for r in applied_at_kill}
    assert sum(applied[p] - left_by_victim.get(p, 0) for p in handed_over) > 0

    # One instance per trigger event, each completed.
    rows = await d.fetch(
        "SELECT id::text AS id, status, correlation_id, trigger_event_id, state FROM instances"
    )
    assert len(rows) == EVENTS
    assert sorted(r["trigger_event_id"] for r in rows) == sorted(e["id"] for e in events)
    orders = sorted(e["data"]["order"] for e in events)
    assert sorted(r["correlation_id"] for r in rows) == orders
    assert {r["status"] for r in rows} == {"completed"}
    order_of = {r["id"]: r["correlation_id"] for r in rows}

    # Nothing left queued, parked or running.
    assert await d.fetch("SELECT 1 FROM outbox") == []
    assert await d.fetch("SELECT 1 FROM outbox_parked") == []
    assert await d.fetch("SELECT kind, instance_id FROM timers") == []
    executions = await d.fetch(
        "SELECT instance_id::text AS id, step_id, attempt, status FROM step_executions"
    )
    assert Counter((r["id"], r["step_id"]) for r in executions) == {
        (instance, step): 1 for instance in order_of for step in ("call", "nap", "announce")
    }
    assert {(r["attempt"], r["status"]) for r in executions} == {(1, "completed")}

    # Each outcome event once by id. The relay publishes at least once: a row the victim
    # had sent but not yet deleted is sent again by the survivor, the same record under
    # the same id; nothing else may repeat.
    topics = d.settings.topics
    records = await read_to_end(
        d.settings.broker_url, [topics.instances, topics.steps, done_topic, topics.deadletter]
    )
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_id[record["id"]].append(record)
    for copies in by_id.values():
        if len(copies) == 1:
            continue
        first_sent, *again = sorted(copies, key=lambda c: c["_offset"])
        assert len(again) == 1, f"sent more than twice: {copies}"
        assert first_sent["_timestamp"] <= killed_ms, f"re-sent without a relay death: {copies}"
        contents = {
            orjson.dumps({k: v for k, v in c.items() if k not in ("_offset", "_timestamp")})
            for c in copies
        }
        assert len(contents) == 1, f"one id, different events: {copies}"
    resent = Counter(c[0]["_topic"] for c in by_id.values() for _ in c[1:])
    print(f"{len(records)} outcome records; re-sent under their id: {dict(resent)}")
    assert [r for r in records if r["_topic"] == topics.deadletter] == []

    # No outcome lost, none invented: per instance, its numbered events and its one
    # published event, under the ids derived from it.
    ids_by_instance: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record["_topic"] in (topics.instances, topics.steps):
            ids_by_instance[record["subject"]].add(record["id"])
    assert set(ids_by_instance) == set(order_of)
    for row in rows:
        numbered = {event_id(row["id"], n) for n in range(1, row["state"]["seq"] + 1)}
        assert ids_by_instance[row["id"]] == numbered, row["id"]

    completions: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record["type"] == "flowbus.instance.completed":
            completions[record["subject"]].add(record["id"])
    assert {instance: len(ids) for instance, ids in completions.items()} == dict.fromkeys(
        order_of, 1
    )

    announced = {r["id"]: r for r in records if r["_topic"] == done_topic}
    assert sorted(r["subject"] for r in announced.values()) == orders
    assert set(announced) == {published_event_id(instance, 1) for instance in order_of}
    for instance, order in order_of.items():
        record = announced[published_event_id(instance, 1)]
        assert (record["_key"], record["data"]) == (order, {"order": order})

    # Every step execution called, a call cut off by the kill run again under the same key
    # and attempt number, with the same body.
    keys = Counter(call.key for call in hooks.calls)
    assert set(keys) == {f"{instance}:call" for instance in order_of}
    for call in hooks.calls:
        instance = str(call.key).removesuffix(":call")
        assert (call.attempt, call.body) == ("1", {"order": order_of[instance]})
    reruns = sum(n - 1 for n in keys.values())
    print(f"{len(hooks.calls)} calls, {reruns} run again")
    assert reruns >= held_by_victim
