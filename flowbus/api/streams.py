"""Live outcome events for Server-Sent Events streams.

Each stream has its own Kafka consumer without a group (assign + seek, nothing committed)
that reads the outcome topics into a bounded queue: a slow client makes it stop fetching,
not drop events, and it is stopped when the client goes away.

One instance's events are keyed by its id, so they sit in one partition per topic (Kafka's
default partitioning, as the outbox relay produces them); the stream reads those from the
instance's creation time and releases them in `flowbusseq` order, 1..n without gaps or
repeats, across topics (unnumbered notices, such as a refused decision, pass as they come).
A workflow's stream reads every partition from now on.

Every stream ends within a second of the API process being asked to stop, so that open
streams never hold up its shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import anyio
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from flowbus.engine.state import InstanceStatus

log = structlog.get_logger(__name__)

FINAL_EVENT_TYPES = frozenset(f"flowbus.instance.{s.value}" for s in InstanceStatus if s.is_final)
# Records carry the relay's clock, instances the worker's: allow for skew between hosts.
CLOCK_SKEW = timedelta(minutes=5)
# A gap in flowbusseq that outlives this (events lost to retention) is skipped over.
GAP_PATIENCE = 5.0
_POLL_MS = 500
_END = object()


class StreamBroken(Exception):
    """The stream cannot go on (its consumer failed, or the process is stopping); it ends
    and the client may reconnect."""


class SequenceOrder:
    """Releases one instance's events in `flowbusseq` order, dropping repeats."""

    def __init__(self, after: int = 0) -> None:
        self.next = after + 1
        self._held: dict[int, dict[str, Any]] = {}

    @property
    def waiting(self) -> bool:
        return bool(self._held)

    def push(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Take an event; return the events now due, in order."""
        seq = event.get("flowbusseq")
        if not isinstance(seq, int) or seq < self.next:
            return []
        self._held.setdefault(seq, event)
        return self._release()

    def skip_gap(self) -> list[dict[str, Any]]:
        """Give up on the missing events before the earliest held one."""
        if self._held:
            self.next = min(self._held)
        return self._release()

    def _release(self) -> list[dict[str, Any]]:
        due = []
        while self.next in self._held:
            due.append(self._held.pop(self.next))
            self.next += 1
        return due


def partition_for(key: str, partitions: Sequence[int]) -> int:
    """The partition Kafka's default partitioner gives a record with this key."""
    chosen: int = DefaultPartitioner()(key.encode(), sorted(partitions), [])
    return chosen


def _event(record: Any) -> dict[str, Any] | None:
    try:
        value = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and "specversion" in value else None


class OutcomeReader:
    """A group-less consumer of outcome topics feeding a bounded queue."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        wanted: Callable[[dict[str, Any]], bool],
        queue_size: int,
        stopping: asyncio.Event,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False
        )
        self._topics = list(topics)
        self._wanted = wanted
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._stopping = stopping

    async def start_for_instance(self, instance_id: str, created_at: datetime) -> None:
        """Read the instance's partition of each topic from its creation on."""
        await self._consumer.start()
        chosen = []
        for topic in self._topics:
            ids = await self._partitions(topic)
            if ids:
                chosen.append(TopicPartition(topic, partition_for(instance_id, ids)))
        self._consumer.assign(chosen)
        since = int((created_at - CLOCK_SKEW).timestamp() * 1000)
        found = await self._consumer.offsets_for_times({tp: since for tp in chosen})
        for tp in chosen:
            hit = found.get(tp)
            if hit is None:
                await self._consumer.seek_to_end(tp)
            else:
                self._consumer.seek(tp, hit.offset)
        self._task = asyncio.create_task(self._read())

    async def start_from_now(self) -> None:
        """Read every partition of the topics, from their ends."""
        await self._consumer.start()
        chosen = [TopicPartition(t, p) for t in self._topics for p in await self._partitions(t)]
        self._consumer.assign(chosen)
        if chosen:
            await self._consumer.seek_to_end(*chosen)
        self._task = asyncio.create_task(self._read())

    async def _partitions(self, topic: str) -> list[int]:
        ids = self._consumer.partitions_for_topic(topic)
        if ids is None:
            await self._consumer._client.force_metadata_update()
            ids = self._consumer.partitions_for_topic(topic)
        return sorted(ids or ())

    async def _read(self) -> None:
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=_POLL_MS)
                for records in batch.values():
                    for record in records:
                        event = _event(record)
                        if event is not None and self._wanted(event):
                            await self.queue.put(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("stream.read_failed", error=str(exc))
            await self.queue.put(_END)

    async def next(self) -> dict[str, Any] | None:
        """The next event, or None when none came within a second (`StreamBroken` when the
        consumer failed or the process is stopping)."""
        if self._stopping.is_set():
            raise StreamBroken
        try:
            item = await asyncio.wait_for(self.queue.get(), 1.0)
        except TimeoutError:
            if self._stopping.is_set():
                raise StreamBroken from None
            return None
        if item is _END:
            raise StreamBroken
        event: dict[str, Any] = item
        return event

    async def stop(self) -> None:
        # Shielded: this runs while the request that owned the stream is being cancelled.
        with anyio.CancelScope(shield=True):
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        log.info("stream.closed")


async def instance_events(
    reader: OutcomeReader, instance_id: str, created_at: datetime, after: int, follow: bool
) -> AsyncIterator[dict[str, Any]]:
    """One instance's events in order; ends after its final event unless `follow`."""
    order = SequenceOrder(after)
    try:
        await reader.start_for_instance(instance_id, created_at)
        gap_since: float | None = None
        while True:
            event = await reader.next()
            if event is not None and not isinstance(event.get("flowbusseq"), int):
                # Notices about the instance (a refused decision) are outside the sequence.
                yield event
                continue
            due = order.push(event) if event is not None else []
            if not due and order.waiting:
                gap_since = gap_since or time.monotonic()
                if time.monotonic() - gap_since > GAP_PATIENCE:
                    log.warning("stream.gap_skipped", instance_id=instance_id, next=order.next)
                    due = order.skip_gap()
            if due:
                gap_since = None
            for item in due:
                yield item
                if not follow and item.get("type") in FINAL_EVENT_TYPES:
                    return
    except StreamBroken:
        return
    finally:
        await reader.stop()


async def workflow_events(reader: OutcomeReader) -> AsyncIterator[dict[str, Any]]:
    """Every event the reader takes, from now on, as it arrives."""
    try:
        await reader.start_from_now()
        while True:
            event = await reader.next()
            if event is not None:
                yield event
    except StreamBroken:
        return
    finally:
        await reader.stop()
