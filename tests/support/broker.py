"""What the broker holds: a topic's partitions, every record of a topic (duplicates
included), which member of a consumer group holds which partitions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment


async def partition_count(broker_url: str, topic: str, timeout: float = 10) -> int:
    """How many partitions `topic` has, once the broker's metadata shows it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker_url, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                return len(partitions)
            if time.monotonic() > deadline:
                raise AssertionError(f"no partitions of {topic} in the metadata after {timeout}s")
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


async def read_to_end(
    broker_url: str, topics: Iterable[str], timeout: float = 30
) -> list[dict[str, Any]]:
    """Every record of `topics`, from the beginning up to the end offsets they have now.

    Each is the decoded value plus `_topic`, `_partition`, `_offset`, `_key` and
    `_timestamp` (the producer's, in ms since the epoch), so a record written twice shows
    up twice.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=broker_url, enable_auto_commit=False)
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"{sorted(map(str, remaining))} not read to their end")
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, batch_records in batch.items():
                for record in batch_records:
                    if record.offset >= ends[tp]:
                        continue
                    value = orjson.loads(record.value) if record.value is not None else None
                    records.append(
                        {
                            **(value if isinstance(value, dict) else {"_value": value}),
                            "_topic": record.topic,
                            "_partition": record.partition,
                            "_offset": record.offset,
                            "_key": record.key.decode() if record.key is not None else None,
                            "_timestamp": record.timestamp,
                        }
                    )
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records


async def group_members(broker_url: str, group: str) -> dict[str, set[TopicPartition]]:
    """The partitions each member of `group` holds now, by member id."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_url)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members: dict[str, set[TopicPartition]] = {}
    for response in responses:
        for described in response.to_object()["groups"]:
            for member in described["members"]:
                raw = member["member_assignment"]
                held = ConsumerProtocolMemberAssignment.decode(raw).partitions() if raw else []
                members[member["member_id"]] = set(held)
    return members
