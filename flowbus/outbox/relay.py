"""Publishes committed outbox rows to Kafka, in commit order, then deletes them.

One relay at a time holds a PostgreSQL advisory lock, so events of an instance reach
Kafka in the order they were written; every worker runs a relay and a standby takes over
within a second or two if the holder dies. A row is deleted only after the broker has
acknowledged it: a crash in between republishes it with the same event id (consumers
deduplicate on the CloudEvents id), and nothing committed is ever lost.

No row can wedge the outbox. Each row's outcome is its own:

- acknowledged rows are deleted at once, and never sent again because a neighbour failed;
- a row that fails for a passing reason (broker or partition leader unavailable, a
  timeout) stays, and is sent again after the worker's backoff (0.1 s doubling up to 5 s);
- a row the broker refuses for good (too large, invalid topic name, not authorized) is
  moved to `outbox_parked` with the reason, announced by a `flowbus.outbox.parked` event
  on the dead-letter topic (the row's topic, key, event id and size, never its payload)
  and counted by `flowbus_outbox_parked_total`; the rows after it flow on. When a
  refused batch held other rows, each is tried alone first, so only the row the broker
  refuses on its own is parked;
- rows of a topic whose metadata cannot be had (the topic does not exist and is not
  auto-created) are left out of the rounds, probed again with a backoff up to 30 s and
  logged, while every other topic flows: a missing topic looks the same as a broker
  outage, so its rows wait instead of being parked.

Order: rows are sent in `seq` order through one idempotent producer, so the events of an
instance (one key, one partition) arrive in the order they were written; a passing
failure hits every row of a partition alike, so they are retried together, oldest
first. A parked row is a missing event, not a held-up instance: the instance's later
events still go out, consumers see the gap in `flowbusseq`, and the alert names the
parked event's id. Parked rows keep their value: once the cause is fixed, they can be
published again under their ids (`flowbus.store.outbox` says how).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from flowbus import metrics
from flowbus.envelope import STRUCTURED_CONTENT_TYPE, cloudevent, encode
from flowbus.service.supervision import Backoff
from flowbus.store.outbox import DATABASE_ERRORS, Parking, RelayStore, relay_connection
from flowbus.times import rfc3339

log = structlog.get_logger(__name__)

RELAY_INTERRUPTIONS: tuple[type[Exception], ...] = (OSError, *DATABASE_ERRORS)

RELAY_LOCK_KEY = 0x466C6F77  # "Flow": one relay per database
PARKED_NAMESPACE = uuid.UUID("7d0f4b1e-3a52-4f5e-8a0c-5b1d2e6f9c47")
PARKED_EVENT_TYPE = "flowbus.outbox.parked"
# Errors about the row itself: sending it again gives the same answer.
REFUSED = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    CorruptRecordException,
)
# Refusals of a whole batch by size: a neighbour of the large row shares its fate.
BATCH_SIZE_REFUSED = (MessageSizeTooLargeError, RecordListTooLargeError)
PROBE_DELAY_MIN, PROBE_DELAY_MAX = 1.0, 30.0
_HEADERS = orjson.dumps([["content-type", STRUCTURED_CONTENT_TYPE]]).decode()


class OutboxRelay:
    """Moves outbox rows onto their topics."""

    def __init__(
        self,
        database_url: str,
        bootstrap_servers: str,
        *,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
        standby_interval: float = 1.0,
        source: str = "flowbus",
        deadletter_topic: str = "flowbus.deadletter",
        send_timeout: float = 5.0,
    ) -> None:
        self._database_url = database_url
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._standby_interval = standby_interval
        self._source = source
        self._deadletter = deadletter_topic
        self._send_timeout = send_timeout
        self._wake = asyncio.Event()
        self._retry = Backoff()
        self._interrupted = Backoff(first=standby_interval)
        self._retrying = False
        # Topics whose metadata could not be had: when to probe again, and the delay.
        self._missing: dict[str, tuple[float, float]] = {}
        self._producer: AIOKafkaProducer | None = None
        self.published = 0
        self.parked = 0

    def wake(self) -> None:
        """Ask for a round now (called after a local commit that wrote outbox rows)."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled; survives database and broker outages by retrying."""
        await self._renew_producer()
        try:
            while True:
                try:
                    await self._hold_lock_and_relay()
                except RELAY_INTERRUPTIONS as exc:
                    log.warning("outbox.relay_interrupted", error=str(exc))
                    await self._interrupted.pause()
        finally:
            await self._stop_producer()

    async def _renew_producer(self) -> AIOKafkaProducer:
        await self._stop_producer()
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_batch_size=1 << 20,
        )
        await producer.start()
        self._producer = producer
        return producer

    async def _stop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _hold_lock_and_relay(self) -> None:
        async with relay_connection(self._database_url) as store:
            # A standby polls: PostgreSQL has no "lock released" notification.
            while not await store.try_lock(RELAY_LOCK_KEY):  # noqa: ASYNC110
                await asyncio.sleep(self._standby_interval)
            log.info("outbox.relay_active")
            self._interrupted.reset()
            await store.listen(self._wake.set)
            while True:
                self._wake.clear()
                producer = self._producer or await self._renew_producer()
                moved = await self.relay_once(store, producer)
                if self._retrying:
                    await self._retry.pause()
                elif moved < self._batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def relay_once(self, store: RelayStore, producer: AIOKafkaProducer) -> int:
        """Publish up to one batch of rows; delete the acknowledged ones and park the
        refused ones. Returns how many rows left the outbox."""
        now = time.monotonic()
        missing = [topic for topic, (due, _) in self._missing.items() if due > now]
        rows = await store.pending(self._batch_size, missing)
        if not rows:
            return 0
        reachable = await self._probe_topics(producer, {row["topic"] for row in rows})
        sent: list[tuple[Any, asyncio.Future[Any]]] = []
        failed: dict[int, BaseException] = {}
        sendable = [row for row in rows if row["topic"] in reachable]
        try:
            # One deadline for handing the whole round to the producer: a timer per row
            # cost a third of the relay's throughput.
            async with asyncio.timeout(self._send_timeout):
                for row in sendable:
                    try:
                        sent.append((row, await self._send(producer, row)))
                    except KafkaError as exc:
                        failed[row["seq"]] = exc
        except TimeoutError as exc:
            handed = {row["seq"] for row, _ in sent} | set(failed)
            failed.update((row["seq"], exc) for row in sendable if row["seq"] not in handed)
        outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        acknowledged: list[int] = []
        alone: list[Any] = []
        for (row, _), outcome in zip(sent, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                acknowledged.append(row["seq"])
            elif isinstance(outcome, BATCH_SIZE_REFUSED):
                alone.append(row)
            else:
                failed[row["seq"]] = outcome
        if alone or any(_spoils_producer(o) for o in outcomes if isinstance(o, BaseException)):
            producer = await self._renew_producer()
        for row in alone:
            try:
                async with asyncio.timeout(self._send_timeout * 2):
                    await (await self._send(producer, row))
                acknowledged.append(row["seq"])
            except (KafkaError, TimeoutError) as exc:
                failed[row["seq"]] = exc
                if _spoils_producer(exc):
                    producer = await self._renew_producer()
        refused = {seq: error for seq, error in failed.items() if isinstance(error, REFUSED)}
        await store.delete(acknowledged)
        if refused:
            await self._park(store, [row for row in rows if row["seq"] in refused], refused)
        passing = len(failed) - len(refused)
        if passing:
            first = next(e for s, e in failed.items() if s not in refused)
            log.warning("outbox.publish_retry", rows=passing, error=repr(first))
            self._retrying = True
        else:
            self._retrying = False
            self._retry.reset()
        self.published += len(acknowledged)
        return len(acknowledged) + len(refused)

    async def _send(self, producer: AIOKafkaProducer, row: Any) -> asyncio.Future[Any]:
        headers = (
            orjson.loads(row["headers"]) if isinstance(row["headers"], str) else row["headers"]
        )
        future: asyncio.Future[Any] = await producer.send(
            row["topic"],
            value=bytes(row["value"]),
            key=bytes(row["key"]) if row["key"] is not None else None,
            headers=[(name, value.encode()) for name, value in headers],
        )
        return future

    async def _probe_topics(self, producer: AIOKafkaProducer, topics: set[str]) -> set[str]:
        """The topics rows can be sent to now; the others are left out for a while."""
        unknown = sorted(topics - producer.client.cluster.topics())
        if not unknown:
            return topics
        answers = await asyncio.gather(
            *(asyncio.wait_for(producer.partitions_for(t), self._send_timeout) for t in unknown),
            return_exceptions=True,
        )
        reachable = set(topics)
        now = time.monotonic()
        for topic, answer in zip(unknown, answers, strict=True):
            if not isinstance(answer, BaseException):
                self._missing.pop(topic, None)
                continue
            reachable.discard(topic)
            _, delay = self._missing.get(topic, (0.0, 0.0))
            delay = min(PROBE_DELAY_MAX, max(PROBE_DELAY_MIN, delay * 2))
            self._missing[topic] = (now + delay, delay)
            log.warning("outbox.topic_unavailable", topic=topic, error=repr(answer), retry_in=delay)
        return reachable

    async def _park(
        self, store: RelayStore, rows: list[Any], errors: dict[int, BaseException]
    ) -> None:
        """Move refused rows to `outbox_parked` and announce each on the dead-letter topic,
        in one transaction."""
        moment = datetime.now(UTC)
        parkings = []
        for row in rows:
            error = errors[row["seq"]]
            reason, text = type(error).__name__, str(error)[:1000]
            announcement = None
            if row["topic"] != self._deadletter:
                announcement = self._announcement(row, reason, text, moment)
            parkings.append(Parking(row["seq"], reason, text, announcement))
        await store.park(parkings, moment, _HEADERS)
        for row in rows:
            error = errors[row["seq"]]
            reason = type(error).__name__
            metrics.OUTBOX_PARKED.labels(reason).inc()
            log.error(
                "outbox.row_parked",
                seq=row["seq"],
                event_id=row["event_id"],
                topic=row["topic"],
                bytes=len(row["value"]),
                reason=reason,
                error=str(error)[:300],
            )
        self.parked += len(rows)

    def _announcement(
        self, row: Any, reason: str, error: str, moment: datetime
    ) -> tuple[str, str, bytes | None, bytes]:
        """The `flowbus.outbox.parked` event for a parked row: (id, topic, key, value)."""
        key = _text(row["key"])
        event_id = str(uuid.uuid5(PARKED_NAMESPACE, f"{row['event_id']}|{row['seq']}"))
        at = rfc3339(moment)
        event = cloudevent(
            id=event_id,
            source=self._source,
            type=PARKED_EVENT_TYPE,
            time=at,
            subject=key,
            data={
                "eventId": row["event_id"],
                "topic": row["topic"],
                "key": key,
                "bytes": len(row["value"]),
                "reason": reason,
                "error": error,
                "outboxSeq": row["seq"],
                "parkedAt": at,
            },
        )
        return event_id, self._deadletter, row["key"], encode(event)


def _spoils_producer(error: BaseException) -> bool:
    """Whether a failed send leaves the idempotent producer unusable: a batch the broker
    refused still counted towards the producer's sequence numbers, so every later batch of
    its partition would fail as out of sequence. A fresh producer starts the count anew."""
    return isinstance(error, KafkaError) and not error.retriable


def _text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return bytes(key).decode()
    except UnicodeDecodeError:
        return bytes(key).hex()
