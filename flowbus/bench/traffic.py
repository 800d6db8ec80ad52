"""The benchmarks' Kafka side: publishing triggers, reading instance outcomes back, and
measuring the consumer lag of the workers.

Every trigger carries the time it was sent (`sent`, epoch seconds) and the bench
workflows put it in their output, so an outcome read off `flowbus.instances` gives the
whole trigger-to-outcome latency, split on the event's `time` (when the worker applied
the change) into send-to-applied and applied-to-relayed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from flowbus.bench.measure import consumer_lag
from flowbus.bench.stack import GROUP, SOURCE_TOPIC
from flowbus.config import Settings

_ENDED = {"flowbus.instance.completed": True, "flowbus.instance.failed": False}


@dataclass(frozen=True, slots=True)
class Outcome:
    """A bench instance that ended, as read off the instances topic."""

    instance_id: str
    completed: bool
    """False: the instance failed."""
    received: float
    """Epoch seconds when the bench read the event."""
    applied: float
    """The event's `time`: when a worker applied the change (millisecond precision)."""
    output: Any


class OutcomeReader:
    """Reads the outcomes of one workflow's instances, from the topic's end when entered.

    Every outcome goes to `on_outcome`; `ended`, `failed` and `last_received` count them.
    """

    def __init__(
        self, settings: Settings, workflow_id: str, on_outcome: Callable[[Outcome], None]
    ) -> None:
        self._settings = settings
        self._workflow_id = workflow_id
        self._on_outcome = on_outcome
        self._seen: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.ended = 0
        self.failed = 0
        self.last_received = 0.0

    async def __aenter__(self) -> OutcomeReader:
        # No group: every partition is assigned at once and its end resolved before anything
        # is sent, so no outcome is missed while a group would still be forming.
        consumer = AIOKafkaConsumer(
            self._settings.topics.instances,
            bootstrap_servers=self._settings.broker_url,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            for _ in range(600):  # up to 30 s
                if consumer.assignment():
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the outcome reader found no partitions in 30 s")
            for partition in consumer.assignment():
                await consumer.position(partition)
        except BaseException:
            await consumer.stop()
            raise
        self._task = asyncio.create_task(self._read(consumer))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for records in batch.values():
                    for record in records:
                        self._take(orjson.loads(record.value), now)
        finally:
            await consumer.stop()

    def _take(self, event: dict[str, Any], now: float) -> None:
        completed = _ENDED.get(event["type"])
        data = event["data"]
        if completed is None or data.get("workflowId") != self._workflow_id:
            return
        if event["subject"] in self._seen:
            return
        self._seen.add(event["subject"])
        self.ended += 1
        self.failed += not completed
        self.last_received = now
        applied = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        self._on_outcome(Outcome(event["subject"], completed, now, applied, data.get("output")))

    async def wait_for(self, ended: int, seconds: float) -> None:
        """Wait until `ended` outcomes were read (TimeoutError after `seconds`)."""
        async with asyncio.timeout(seconds):
            while self.ended < ended:
                if self._task is not None and self._task.done():
                    await self._task  # the reader failed: raise why
                await asyncio.sleep(0.02)


@dataclass
class Latencies:
    """Trigger-to-outcome latencies in seconds, whole and split on the applied time."""

    total: list[float]
    applied: list[float]
    relayed: list[float]

    @classmethod
    def empty(cls) -> Latencies:
        return cls([], [], [])

    def add(self, outcome: Outcome) -> None:
        """Record a completed instance whose output carries `sent`."""
        if not outcome.completed:
            return
        sent = float(outcome.output["sent"])
        self.total.append(outcome.received - sent)
        self.applied.append(outcome.applied - sent)
        self.relayed.append(outcome.received - outcome.applied)


class Publisher:
    """Sends trigger events to the source topic; `sent` counts those handed to the producer."""

    def __init__(self, settings: Settings, topic: str = SOURCE_TOPIC) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=2)
        self._topic = topic
        self.sent = 0

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(
        self, body: Callable[[int], dict[str, Any]], count: int, rate: float | None = None
    ) -> float:
        """Send `body(n)` for n in range(count), stamped with `sent`, at `rate` per second
        (as fast as possible when None); return the seconds it took until all were acked."""
        started = time.perf_counter()
        pending: list[asyncio.Future[Any]] = []
        for n in range(count):
            if rate:
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            value = body(n)
            value["sent"] = time.time()
            pending.append(await self._producer.send(self._topic, orjson.dumps(value)))
            self.sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return time.perf_counter() - started


async def publish(
    settings: Settings,
    body: Callable[[int], dict[str, Any]],
    count: int,
    rate: float | None = None,
) -> float:
    """Send `count` triggers (see :meth:`Publisher.send`); return the seconds it took."""
    async with Publisher(settings) as publisher:
        return await publisher.send(body, count, rate)


def order(kind: str) -> Callable[[int], dict[str, Any]]:
    """The bench's trigger events of type `kind`: an order `o-<n>` of amount n % 200."""
    return lambda n: {"type": kind, "id": f"o-{n}", "amount": n % 200}


class LagProbe:
    """The workers' consumer lag on the source topic: its end offsets (Kafka) minus the
    next offsets stored with the state (PostgreSQL), summed over the partitions."""

    def __init__(self, settings: Settings, dsn: str, topic: str = SOURCE_TOPIC) -> None:
        self._settings = settings
        self._dsn = dsn
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._conn: asyncpg.Connection | None = None
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> LagProbe:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._settings.broker_url)
        await admin.start()
        try:
            described = await admin.describe_topics([self._topic])
        finally:
            await admin.close()
        numbers = sorted(p["partition"] for t in described for p in t["partitions"])
        if not numbers:
            raise RuntimeError(f"topic {self._topic} has no partitions")
        self._partitions = [TopicPartition(self._topic, p) for p in numbers]
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._settings.broker_url)
        await self._consumer.start()
        self._conn = await asyncpg.connect(self._dsn)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._conn is not None:
            await self._conn.close()
        if self._consumer is not None:
            await self._consumer.stop()

    async def lag(self) -> int:
        assert self._consumer is not None
        assert self._conn is not None
        ends = await self._consumer.end_offsets(self._partitions)
        rows = await self._conn.fetch(
            "SELECT partition, next_offset FROM consumer_offsets"
            " WHERE consumer_group = $1 AND topic = $2",
            GROUP,
            self._topic,
        )
        return consumer_lag(
            {tp.partition: end for tp, end in ends.items()},
            {row["partition"]: row["next_offset"] for row in rows},
        )
