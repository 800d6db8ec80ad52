"""Dead letters through the API, end to end on the real broker and database: records the
worker dead-letters are recorded from the dead-letter topic, listed and filtered, and
replayed to their source topic (byte for byte, headers included) with an audit row."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from flowbus.api.recorder import Recorder, start_recorder
from flowbus.store.database import create_engine
from tests.integration.test_api_support import (
    AUTH_ENV,
    ApiServer,
    bearer,
    problem,
    start_api,
)
from tests.support.stack import Deployment, Stack

STRICT = {
    "id": "dl-strict",
    "triggers": [{"topic": "orders", "type": "strict"}],
    "inputSchema": {"type": "object", "properties": {"amount": {"type": "number", "minimum": 0}}},
    "steps": [{"id": "note", "type": "action", "action": "log", "config": {"message": "ok"}}],
}


@dataclass
class Desk:
    d: Deployment
    api: ApiServer
    client: httpx.AsyncClient
    engine: Any

    @property
    def orders(self) -> str:
        return self.d.topic("orders")

    async def bad_order(
        self, mark: str, headers: list[tuple[str, bytes]] | None = None, **extra: Any
    ) -> None:
        body = {"type": "strict", "amount": -5, "mark": mark, **extra}
        await self.d.publish(self.orders, [body], key=f"k-{mark}", headers=headers)

    async def listed(
        self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20, **params: Any
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        items: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            response = await self.client.get(
                "/v1/dead-letters", params=params, headers=bearer("viewer")
            )
            assert response.status_code == 200, response.text
            items = response.json()["items"]
            if check(items):
                return items
            await asyncio.sleep(0.1)
        raise AssertionError(f"dead letters never got there; last seen: {items}")

    async def dead_letter_of(self, mark: str) -> dict[str, Any]:
        items = await self.listed(lambda i: any(x["key"] == f"k-{mark}" for x in i), limit=500)
        return next(x for x in items if x["key"] == f"k-{mark}")

    async def replay(self, dead_letter_id: int, role: str = "operator", **body: Any) -> Any:
        return await self.client.post(
            f"/v1/dead-letters/{dead_letter_id}/replay", json=body or None, headers=bearer(role)
        )


@pytest_asyncio.fixture(scope="module")
async def desk(stack: Stack) -> AsyncIterator[Desk]:
    d = await stack.deployment("dead-letters", [STRICT])
    await d.start_worker()
    api = await start_api(d, AUTH_ENV)
    # Stands in for the API's own recorder until its lifespan starts one.
    engine = create_engine(d.settings.database_url, pool_size=2)
    recorder: Recorder = start_recorder(d.settings, engine)
    client = httpx.AsyncClient(base_url=api.url, timeout=20)
    try:
        yield Desk(d, api, client, engine)
    finally:
        await client.aclose()
        await recorder.stop()
        await engine.dispose()
        api.stop()
        d.stop_workers()


async def read_at(d: Deployment, topic: str, partition: int, offset: int) -> Any:
    consumer = AIOKafkaConsumer(bootstrap_servers=d.settings.broker_url, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        return await asyncio.wait_for(consumer.getone(tp), 10)
    finally:
        await consumer.stop()


async def drop_records(d: Deployment, topic: str, partition: int, before: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=d.settings.broker_url)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before)})
    finally:
        await admin.close()


async def test_a_dead_letter_is_recorded_listed_replayed_and_audited(desk: Desk) -> None:
    mark = uuid.uuid4().hex[:8]
    await desk.bad_order(mark)

    found = await desk.dead_letter_of(mark)
    detail = (
        await desk.client.get(f"/v1/dead-letters/{found['id']}", headers=bearer("viewer"))
    ).json()
    replayed = await desk.replay(found["id"])

    assert (found["kind"], found["sourceTopic"], found["definitionId"]) == (
        "deadletter",
        desk.orders,
        "dl-strict",
    )
    assert "less than the minimum of 0" in found["reason"]
    assert (found["eventType"], found["valueComplete"], found["replayable"]) == (
        "strict",
        True,
        True,
    )
    assert orjson.loads(detail["value"])["mark"] == mark
    assert replayed.status_code == 202, replayed.text
    accepted = replayed.json()
    assert (accepted["topic"], accepted["copy"], accepted["replayedBy"]) == (
        desk.orders,
        "original",
        "ada",
    )
    again = await desk.listed(
        lambda i: any(x["sourceOffset"] == accepted["offset"] for x in i), sourceTopic=desk.orders
    )
    assert any(x["key"] == f"k-{mark}" and x["id"] != found["id"] for x in again)
    after = (
        await desk.client.get(f"/v1/dead-letters/{found['id']}", headers=bearer("viewer"))
    ).json()
    assert after["replays"] == 1
    assert [(h["replayedBy"], h["offset"]) for h in after["history"]] == [
        ("ada", accepted["offset"])
    ]
    audit = await desk.d.fetch(
        "SELECT actor, details FROM audit_log WHERE action = 'dead_letter.replay' AND subject = $1",
        str(found["id"]),
    )
    assert [(a["actor"], a["details"]["offset"]) for a in audit] == [("ada", accepted["offset"])]


async def test_a_second_replay_needs_again_and_viewers_cannot_replay(desk: Desk) -> None:
    mark = uuid.uuid4().hex[:8]
    await desk.bad_order(mark)
    found = await desk.dead_letter_of(mark)

    viewer = await desk.replay(found["id"], role="viewer")
    first = await desk.replay(found["id"])
    second = await desk.replay(found["id"])
    forced = await desk.replay(found["id"], again=True)

    problem(viewer, 403, "forbidden")
    assert first.status_code == 202
    assert "was replayed at" in problem(second, 409, "already-replayed")["detail"]
    assert forced.status_code == 202
    assert forced.json()["offset"] > first.json()["offset"]


async def test_a_binary_cloudevent_is_replayed_byte_for_byte_with_its_headers(desk: Desk) -> None:
    mark = uuid.uuid4().hex[:8]
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"shop-{mark}".encode()),
        ("ce_source", b"shop"),
        ("ce_type", b"strict"),
    ]
    await desk.bad_order(mark, headers=headers)
    found = await desk.dead_letter_of(mark)
    original = await read_at(desk.d, desk.orders, found["sourcePartition"], found["sourceOffset"])

    accepted = (await desk.replay(found["id"])).json()

    copy = await read_at(desk.d, desk.orders, accepted["partition"], accepted["offset"])
    assert (copy.value, copy.key) == (original.value, original.key)
    assert list(copy.headers) == list(original.headers)


async def test_once_the_record_is_gone_only_a_whole_copy_is_replayed(desk: Desk) -> None:
    whole, cut = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    await desk.bad_order(whole)
    await desk.bad_order(cut, pad="x" * 70_000)
    small, large = await desk.dead_letter_of(whole), await desk.dead_letter_of(cut)
    for found in (small, large):
        await drop_records(desk.d, desk.orders, found["sourcePartition"], found["sourceOffset"] + 1)

    from_copy = await desk.replay(small["id"])
    refused = await desk.replay(large["id"])

    assert large["valueComplete"] is False
    assert large["valueBytes"] <= 65536
    assert from_copy.status_code == 202, from_copy.text
    assert from_copy.json()["copy"] == "dead-letter copy"
    replayed = await read_at(
        desk.d, desk.orders, from_copy.json()["partition"], from_copy.json()["offset"]
    )
    assert orjson.loads(replayed.value)["mark"] == whole
    assert replayed.key == f"k-{whole}".encode()
    assert "not the whole value" in problem(refused, 409, "value-not-whole")["detail"]


async def test_what_is_not_a_dead_lettered_record_is_listed_but_not_replayed(desk: Desk) -> None:
    await desk.d.publish(desk.d.settings.topics.deadletter, [b"\xffgarbage"])

    items = await desk.listed(lambda i: any(x["kind"] == "unreadable" for x in i))

    odd = next(x for x in items if x["kind"] == "unreadable")
    assert odd["reason"] == "not a flowbus dead-letter event: the value is not JSON"
    assert odd["replayable"] is False
    problem(await desk.replay(odd["id"]), 409, "not-replayable")


async def test_dead_letters_are_paged_newest_first_and_filtered(desk: Desk) -> None:
    began = datetime.now(UTC) - timedelta(seconds=1)
    marks = [uuid.uuid4().hex[:8] for _ in range(3)]
    for mark in marks:
        await desk.bad_order(mark)
    for mark in marks:
        await desk.dead_letter_of(mark)
    query = {"sourceTopic": desk.orders, "reason": "MINIMUM OF 0", "since": began.isoformat()}

    pages, cursor = [], None
    while True:
        params = {**query, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await desk.client.get("/v1/dead-letters", params=params, headers=bearer("viewer"))
        ).json()
        pages.append(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break

    listed = [item for p in pages for item in p]
    assert {f"k-{m}" for m in marks} <= {i["key"] for i in listed}
    newest_first = sorted(listed, key=lambda i: (i["deadLetteredAt"], i["id"]), reverse=True)
    assert [i["id"] for i in listed] == [i["id"] for i in newest_first]
    none = await desk.client.get(
        "/v1/dead-letters", params={**query, "until": began.isoformat()}, headers=bearer("viewer")
    )
    assert none.json() == {"items": [], "nextCursor": None}
    bad = await desk.client.get(
        "/v1/dead-letters", params={"cursor": "garbage"}, headers=bearer("viewer")
    )
    assert problem(bad, 400, "invalid-cursor")["errors"][0]["parameter"] == "cursor"
    problem(
        await desk.client.get("/v1/dead-letters/999999999", headers=bearer("viewer")),
        404,
        "not-found",
    )


async def test_recording_again_from_the_start_adds_nothing(desk: Desk) -> None:
    mark = uuid.uuid4().hex[:8]
    await desk.bad_order(mark)
    await desk.dead_letter_of(mark)
    [before] = await desk.d.fetch("SELECT count(*) AS n FROM dead_letters")

    other = desk.d.settings.model_copy(update={"consumer_group": f"again-{mark}"})
    again = start_recorder(other, desk.engine)
    try:
        await asyncio.sleep(5)
    finally:
        await again.stop()

    [after] = await desk.d.fetch("SELECT count(*) AS n FROM dead_letters")
    assert after["n"] == before["n"]
