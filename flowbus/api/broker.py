"""The API's side of Kafka: a producer for commands and webhook events (acks=all,
idempotent), and topic metadata and end offsets for readiness and metrics.

Both clients connect on first use, so the API starts (and reports not ready) while the
broker is down. Only a broker that cannot be reached or cannot take a record now is
`BrokerUnavailable` (503, worth a retry); a record too large to ever be taken is
`RecordTooLarge` (413), checked before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata

from flowbus.api.problems import ApiProblem

CONNECT_TIMEOUT = 5.0
CHECK_TIMEOUT = 2.0


class BrokerUnavailable(ApiProblem):
    def __init__(self, detail: str) -> None:
        super().__init__(503, "broker-unavailable", detail, headers={"Retry-After": "5"})


class RecordTooLarge(ApiProblem):
    def __init__(self, detail: str) -> None:
        super().__init__(413, "too-large", detail, title="Request body too large")


class Broker:
    """Kafka clients shared by every request of the API process."""

    def __init__(self, bootstrap_servers: str, max_record_bytes: int) -> None:
        self._bootstrap = bootstrap_servers
        self._max_record_bytes = max_record_bytes
        self._producer: AIOKafkaProducer | None = None
        self._metadata: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=10_000,
                )
                try:
                    await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT)
                except (KafkaError, OSError, TimeoutError) as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise BrokerUnavailable(f"the broker is not reachable: {exc!r}") from None
                self._producer = producer
            return self._producer

    async def _started_metadata(self) -> AIOKafkaConsumer:
        async with self._lock:
            if self._metadata is None:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self._bootstrap, enable_auto_commit=False
                )
                try:
                    await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT)
                except (KafkaError, OSError, TimeoutError) as exc:
                    with contextlib.suppress(Exception):
                        await consumer.stop()
                    raise BrokerUnavailable(f"the broker is not reachable: {exc!r}") from None
                self._metadata = consumer
            return self._metadata

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> RecordMetadata:
        """Publish one record and wait until every in-sync replica has it.

        A record larger than the consumers take (`limits.max_record_bytes`) is refused
        unsent: it could only be dead-lettered.
        """
        if len(value) > self._max_record_bytes:
            raise RecordTooLarge(
                f"the record for {topic} would be {len(value)} bytes, over the limit of "
                f"{self._max_record_bytes}"
            )
        producer = await self._started_producer()
        try:
            return await producer.send_and_wait(
                topic,
                value=value,
                key=key.encode() if key is not None else None,
                headers=list(headers),
            )
        except MessageSizeTooLargeError as exc:
            raise RecordTooLarge(f"the broker refused the record for {topic}: {exc!r}") from None
        except KafkaError as exc:
            raise BrokerUnavailable(f"publishing to {topic} failed: {exc!r}") from None

    async def reachable(self) -> bool:
        """Whether the broker answers a metadata request within a couple of seconds."""
        try:
            producer = await self._started_producer()
            update = producer.client.force_metadata_update()
            return bool(await asyncio.wait_for(update, CHECK_TIMEOUT))
        except (ApiProblem, KafkaError, OSError, TimeoutError):
            return False

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids (empty when it does not exist)."""
        consumer = await self._started_metadata()
        ids = consumer.partitions_for_topic(topic)
        if ids is None:
            await consumer._client.force_metadata_update()
            ids = consumer.partitions_for_topic(topic)
        return sorted(ids or ())

    async def offset_ranges(self, topics: Sequence[str]) -> dict[TopicPartition, tuple[int, int]]:
        """(first offset, next offset) of every partition of `topics`."""
        consumer = await self._started_metadata()
        partitions = [TopicPartition(t, p) for t in topics for p in await self.partitions(t)]
        if not partitions:
            return {}
        first = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        return {tp: (first[tp], end[tp]) for tp in partitions}

    async def close(self) -> None:
        for client in (self._producer, self._metadata):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._producer = self._metadata = None
